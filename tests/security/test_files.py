"""The store is the operator's alone: the data directory is created 0700 and the store's files
0600, whatever the umask."""

from __future__ import annotations

import asyncio
import os
import stat
from pathlib import Path

from perdure.server.app import open_runtime


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_data_dir_and_the_store_files_are_private(tmp_path: Path) -> None:
    data = tmp_path / "nested" / "data"
    old = os.umask(0o022)  # the usual umask: 0755 directories, 0644 files
    try:
        runtime = open_runtime(data, inactivity_timeout=None, ingress_url="http://127.0.0.1:1")
        try:
            files = sorted(p.name for p in data.iterdir())
            assert {"perdure.sqlite3", "perdure.sqlite3.lock"} <= set(files)
            assert _mode(data) == 0o700
            for name in files:
                assert _mode(data / name) == 0o600, name
        finally:
            asyncio.run(runtime.stop(0))
    finally:
        os.umask(old)


def test_an_existing_stores_files_are_made_private(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "perdure.sqlite3").touch()
    os.chmod(data / "perdure.sqlite3", 0o644)
    runtime = open_runtime(data, inactivity_timeout=None, ingress_url="http://127.0.0.1:1")
    try:
        assert _mode(data / "perdure.sqlite3") == 0o600
        assert _mode(data / "perdure.sqlite3-wal") == 0o600
    finally:
        asyncio.run(runtime.stop(0))
