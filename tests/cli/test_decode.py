"""``perdure decode`` prints a framed stream one message per line; bad input fails clearly."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from perdure.cli import main
from perdure.protocol import encode_messages
from perdure.protocol import messages as m


def test_decode_prints_one_line_per_message(tmp_path: Path) -> None:
    stream = tmp_path / "attempt.bin"
    stream.write_bytes(
        encode_messages([m.OutputCommand(value=m.Value(content=b'"hi"')), m.EndMessage()])
    )
    out = io.StringIO()
    assert main(["decode", str(stream)], out=out) == 0
    assert out.getvalue().splitlines() == [
        '0x0401 OUTPUT {"value":{"content":"ImhpIg=="}}',
        "0x0003 END",
    ]


def test_decode_reports_a_truncated_stream(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stream = tmp_path / "cut.bin"
    stream.write_bytes(encode_messages([m.EndMessage()])[:5])
    assert main(["decode", str(stream)], out=io.StringIO()) == 1
    assert "stream ended inside a frame" in capsys.readouterr().err


def test_decode_reports_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["decode", str(tmp_path / "nope.bin")]) == 1
    assert "cannot read" in capsys.readouterr().err


def test_version() -> None:
    out = io.StringIO()
    assert main(["version"], out=out) == 0
    assert out.getvalue().startswith("perdure ")
