"""The README's first command: ``perdure dev`` on the embedded store with the example services,
called through the ingress (``scripts/demo.py --once``, on free ports)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[1]


def test_demo_serves_the_examples_with_perdure_dev(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "demo.py"),
            "--once",
            "--data-dir", str(tmp_path / "data"),
            "--ingress-bind", f"127.0.0.1:{free_port()}",
            "--admin-bind", f"127.0.0.1:{free_port()}",
        ],
        capture_output=True,
        text=True,
        timeout=150,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out = proc.stdout
    assert "perdure dev: serving examples/all_services.py as local://all-services" in out
    assert "  curl http://127.0.0.1:" in out  # the handlers' curl lines
    assert "OrderProcess, Reminders, Sensor" in out
    assert '200 {"user":"ann","total":10,"items":["tea","cake"]}' in out
    assert '200 {"a":7,"b":7,"c":7}' in out
    assert '200 ["reminder: tea at' in out
    # The store is SQLite in the data directory.
    assert any((tmp_path / "data").iterdir())
