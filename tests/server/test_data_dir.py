"""The data directory belongs to one server at a time, and a store perdure cannot read is refused
with a message that says what to do (not a traceback)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.perdure_server import PerdureServer
from tests.support.processes import free_port

pytestmark = pytest.mark.interop


def _server(data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable, "-m", "perdure.cli", "server", "--data-dir", str(data),
            "--ingress-bind", f"127.0.0.1:{free_port()}",
            "--admin-bind", f"127.0.0.1:{free_port()}",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_a_second_server_on_the_same_data_dir_is_refused(tmp_path: Path) -> None:
    with PerdureServer.start(tmp_path) as server:
        second = _server(server.data_dir)
        assert second.returncode == 1
        assert "is in use by pid" in second.stderr
        assert "--data-dir" in second.stderr
        assert "Traceback" not in second.stderr
        server.kill()  # SIGKILL: the kernel drops the lock with the process
        server.restart()
        server.http.get(f"{server.admin}/health").raise_for_status()


def test_a_store_from_a_newer_perdure_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = sqlite3.connect(data / "perdure.sqlite3")
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta VALUES ('schema_version', '999')")
    db.commit()
    db.close()
    result = _server(data)
    assert result.returncode == 1
    assert "written by a newer perdure" in result.stderr
    assert "Traceback" not in result.stderr
