"""docs/testing.md's example runs as written, in a pytest run of its own: a user's suite with
no conftest gets the perdure_harness fixture from the installed plugin, warnings as errors."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.support.official import REPO


def test_the_documented_example_passes(tmp_path: Path) -> None:
    page = (REPO / "docs" / "testing.md").read_text()
    example = re.search(r"## A test\n.*?```python\n(.*?)```", page, re.DOTALL)
    assert example is not None, "docs/testing.md lost its example"
    (tmp_path / "test_documented.py").write_text(example.group(1))
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_default_fixture_loop_scope = function\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-W", "error", "-p", "no:cacheprovider"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout
