"""``perdure server`` command-line handling."""

from __future__ import annotations

import pytest

from perdure.cli import main


def test_server_rejects_a_bad_bind_address(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--ingress-bind", "nonsense"]) == 2
    assert "bad address 'nonsense'" in capsys.readouterr().err


def test_server_flags_have_the_documented_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["server", "--help"])
    help_text = capsys.readouterr().out
    for text in ("--data-dir", "./.perdure", "127.0.0.1:8080", "127.0.0.1:9070"):
        assert text in help_text


def test_server_rejects_a_bad_inactivity_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--inactivity-timeout", "soon"]) == 2
    assert "--inactivity-timeout" in capsys.readouterr().err
