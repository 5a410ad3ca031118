"""Static typing as users see it: mypy (strict) checks the files in typing_checks/, which use
``assert_type`` on the public API; a wrong or missing type fails this test."""

from __future__ import annotations

from pathlib import Path

import pytest
from mypy import api

CHECKS = Path(__file__).parent / "typing_checks"


@pytest.mark.parametrize("name", sorted(p.name for p in CHECKS.glob("*.py")))
def test_public_api_types(name: str, tmp_path: Path) -> None:
    stdout, stderr, status = api.run(
        [
            "--strict",
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "mypy-cache"),
            "--config-file",
            "",
            str(CHECKS / name),
        ]
    )
    assert status == 0, stdout + stderr
