"""``perdure server`` command-line handling."""

from __future__ import annotations

import pytest

from perdure.cli import main


@pytest.mark.parametrize("bind", ["nonsense", "127.0.0.1:\u00b2", "127.0.0.1:70000", ":8080"])
def test_server_rejects_a_bad_bind_address(bind: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--ingress-bind", bind]) == 2
    assert f"bad address {bind!r}" in capsys.readouterr().err


def test_server_flags_have_the_documented_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["server", "--help"])
    help_text = capsys.readouterr().out
    for text in ("--data-dir", "./.perdure", "127.0.0.1:8080", "127.0.0.1:9070"):
        assert text in help_text


def test_server_rejects_a_bad_inactivity_timeout(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["server", "--inactivity-timeout", "soon"]) == 2
    assert "--inactivity-timeout" in capsys.readouterr().err
