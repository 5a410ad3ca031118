"""``perdure state get|set|clear`` against real servers: a handler sees what the CLI writes, and
the CLI sees what a handler wrote; stale edits, bad JSON and unkeyed services are refused."""

from __future__ import annotations

import json

import httpx
import pytest

from perdure.cli import state as state_module
from perdure.cli.state import state_version
from perdure.server.engine.state_edits import state_version as server_state_version
from tests.cli.conftest import Deployed
from tests.cli.test_commands import cli, cli_json

pytestmark = pytest.mark.interop


def add(d: Deployed, key: str, n: int) -> int:
    resp = httpx.post(f"{d.ingress}/Counter/{key}/add", json=n, timeout=30.0)
    resp.raise_for_status()
    total: int = resp.json()
    return total


def test_the_version_hash_is_the_servers() -> None:
    assert state_version({"name": b"bob"}) == "tDqA04Lj3_qJ-PgNPTecXDGZgpwy6jm2Ni2BYqJIthM"
    state = {"b": b"2", "a": b"\x00\xff", "ab": b""}
    assert state_version(state) == server_state_version([(k.encode(), v) for k, v in state.items()])


def test_get_shows_what_a_handler_wrote(any_server: Deployed) -> None:
    add(any_server, "sam", 3)
    got = cli_json(any_server, "state", "get", "Counter", "sam")
    assert got["state"] == {"total": 3} and got["binary"] == {}
    assert got["version"] == state_version({"total": b"3"})
    code, text = cli(any_server, "state", "get", "Counter", "sam")
    assert code == 0 and "total\t3" in text
    code, text = cli(any_server, "state", "get", "Counter", "nobody-here")
    assert code == 0 and "Counter/nobody-here has no state" in text


def test_set_and_clear_round_trip(any_server: Deployed) -> None:
    code, text = cli(any_server, "state", "set", "Counter", "ron", "total", "40")
    assert code == 0 and "set Counter/ron total = 40" in text
    assert add(any_server, "ron", 2) == 42  # the handler reads what the CLI wrote
    assert cli_json(any_server, "state", "set", "Counter", "ron", "note", '{"a": "é"}')[
        "value"
    ] == {"a": "é"}
    assert cli_json(any_server, "state", "get", "Counter", "ron")["state"] == {
        "total": 42,
        "note": {"a": "é"},
    }
    cleared = cli_json(any_server, "state", "clear", "Counter", "ron", "note")
    assert cleared["removed"] == ["note"]
    assert cli_json(any_server, "state", "get", "Counter", "ron")["state"] == {"total": 42}
    code, text = cli(any_server, "state", "clear", "Counter", "ron")
    assert code == 0 and "cleared Counter/ron: total" in text
    assert cli_json(any_server, "state", "get", "Counter", "ron")["state"] == {}
    assert add(any_server, "ron", 1) == 1


def test_binary_values_are_shown_as_bytes(perdure: Deployed) -> None:
    body = {"object_key": "bin", "new_state": {"raw": [0, 255, 16], "ok": list(b'"x"')}}
    resp = httpx.post(f"{perdure.admin}/v4/services/Counter/state", json=body, timeout=30.0)
    assert resp.status_code == 202
    got = cli_json(perdure, "state", "get", "Counter", "bin", "--bytes", "base64")
    assert got["state"] == {"ok": "x"} and got["binary"] == {"raw": {"base64": "AP8Q"}}
    code, text = cli(perdure, "state", "get", "Counter", "bin")
    assert code == 0 and "(3 bytes, not JSON; hex) 00ff10" in text


def test_a_stale_version_is_refused(perdure: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    add(perdure, "vic", 1)
    seen = cli_json(perdure, "state", "get", "Counter", "vic")["version"]
    add(perdure, "vic", 1)  # a concurrent change after the read
    code, _ = cli(perdure, "state", "set", "Counter", "vic", "total", "100", "--version", seen)
    assert code == 1
    err = capsys.readouterr().err
    assert "changed since it was read" in err and "perdure state get Counter vic" in err
    assert cli_json(perdure, "state", "get", "Counter", "vic")["state"] == {"total": 2}
    current = cli_json(perdure, "state", "get", "Counter", "vic")["version"]
    args = ("state", "set", "Counter", "vic", "total", "100", "--version", current)
    assert cli(perdure, *args)[0] == 0
    assert add(perdure, "vic", 0) == 100


def test_bad_json_says_where_and_how_to_quote(
    perdure: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _ = cli(perdure, "state", "set", "Counter", "x", "name", "text")
    assert code == 1
    err = capsys.readouterr().err
    assert "'text' is not valid JSON" in err and "line 1 column 1" in err
    assert "quote it: '\"text\"'" in err
    code, _ = cli(perdure, "state", "set", "Counter", "x", "obj", '{"a": 1,}')
    assert code == 1 and "column 9" in capsys.readouterr().err


def test_unkeyed_and_unknown_services(
    perdure: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(perdure, "state", "get", "Greeter", "x")[0] == 1
    assert "Greeter is a plain service: it has no state" in capsys.readouterr().err
    assert cli(perdure, "state", "set", "Greeter", "x", "k", "1")[0] == 1
    assert "plain service" in capsys.readouterr().err
    assert cli(perdure, "state", "clear", "Nope", "x")[0] == 1
    assert "`perdure services list`" in capsys.readouterr().err
    code, _ = cli(perdure, "state", "clear", "Counter", "empty", "missing")
    assert code == 1 and "has no entry 'missing'" in capsys.readouterr().err


def test_workflow_state(perdure: Deployed) -> None:
    resp = httpx.post(f"{perdure.ingress}/Signup/w1/run", json="a@b.c", timeout=30.0)
    assert resp.status_code == 200
    assert cli_json(perdure, "state", "get", "Signup", "w1")["state"] == {"email": "a@b.c"}
    code, text = cli(perdure, "state", "get", "Signup", "w1", "--json")
    assert code == 0 and json.loads(text)["key"] == "w1"


def test_an_edit_behind_a_running_handler_says_what_it_waits_for(
    perdure: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(state_module, "CONFIRM_SECONDS", 0.5)
    holder = perdure.send("Counter/joy/wait")
    perdure.wait_status(holder, "running")
    assert cli(perdure, "state", "set", "Counter", "joy", "total", "9")[0] == 1
    assert f"waits behind invocation {holder}" in capsys.readouterr().err
    assert httpx.patch(f"{perdure.admin}/invocations/{holder}/kill", timeout=30.0
                       ).status_code == 200  # fmt: skip
    perdure.wait_status(holder, "completed")
    assert add(perdure, "joy", 1) == 10  # the queued edit applied before the next invocation
