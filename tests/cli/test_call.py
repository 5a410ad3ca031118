"""``perdure call`` against perdure's server and the official one: calls, sends, delays,
idempotency, keys and workflows, terminal errors and their exit code, and the ``--json`` shapes."""

from __future__ import annotations

import json
import uuid

import pytest

from tests.cli.conftest import Deployed
from tests.cli.test_commands import cli, cli_json
from tests.support.processes import free_port

pytestmark = pytest.mark.interop


def unique(prefix: str) -> str:
    """A fresh object key: the session's servers are shared by every test."""
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_request_response_prints_the_raw_output(any_server: Deployed) -> None:
    # no --ingress: the CLI asks the admin API (--admin) for its ingress endpoint
    code, text = cli(any_server, "call", "Greeter/greet", '"Ann"')
    assert (code, text) == (0, '"Hello Ann!"\n')
    shape = cli_json(any_server, "call", "Greeter/greet", '"Bo"')
    assert shape["status"] == "succeeded" and shape["output"] == "Hello Bo!"
    assert shape["invocation_id"].startswith("inv_1")


def test_object_keys_and_no_input(any_server: Deployed) -> None:
    key = unique("cal")
    assert cli(any_server, "call", f"Counter/{key}/add", "2") == (0, "2\n")
    assert cli(any_server, "call", f"Counter/{key}/add", "3") == (0, "5\n")
    assert cli(any_server, "call", f"Counter/{key}/get") == (0, "5\n")


def test_workflow_run_once(any_server: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    key = unique("wf")
    assert cli(any_server, "call", f"Signup/{key}/run", '"e@x.io"') == (0, '"signed up e@x.io"\n')
    code, text = cli(any_server, "call", f"Signup/{key}/run", '"e@x.io"', "--json")
    assert code == 1
    shape = json.loads(text)
    assert shape["status"] == "failed" and shape["error"]["code"] == 409
    assert "terminal error [409]" in capsys.readouterr().err


def test_send_prints_the_invocation_id(any_server: Deployed) -> None:
    key = unique("sue")
    code, text = cli(any_server, "call", f"Counter/{key}/add", "5", "--send")
    invocation_id = text.strip()
    assert code == 0 and invocation_id.startswith("inv_1") and len(invocation_id) == 38
    any_server.wait_status(invocation_id, "completed")
    assert cli(any_server, "call", f"Counter/{key}/get") == (0, "5\n")


def test_a_delayed_send_waits_for_its_delay(any_server: Deployed) -> None:
    key = unique("del")
    shape = cli_json(any_server, "call", f"Counter/{key}/add", "7", "--send", "--delay", "2s")
    assert shape["status"] == "accepted" and shape["output"] is None
    assert shape["execution_time"]
    invocation_id = shape["invocation_id"]
    assert any_server.status(invocation_id) == "scheduled"
    assert cli(any_server, "call", f"Counter/{key}/get") == (0, "0\n")  # not run yet
    any_server.wait_status(invocation_id, "completed", timeout=30.0)
    assert cli(any_server, "call", f"Counter/{key}/get") == (0, "7\n")
    code, text = cli(any_server, "call", f"Counter/{key}/add", "1", "--send", "--delay", "1h")
    assert code == 0 and "runs at " in text


def test_an_idempotency_key_runs_once(any_server: Deployed) -> None:
    key = unique("ida")
    first = cli_json(any_server, "call", f"Counter/{key}/add", "1", "--idempotency-key", "k1")
    again = cli_json(any_server, "call", f"Counter/{key}/add", "1", "--idempotency-key", "k1")
    assert first["output"] == again["output"] == 1
    assert first["invocation_id"] == again["invocation_id"]
    sent = cli_json(any_server, "call", f"Counter/{key}/add", "1", "--idempotency-key", "k1",
                    "--send")  # fmt: skip
    assert sent["status"] == "previously_accepted"
    assert cli(any_server, "call", f"Counter/{key}/get") == (0, "1\n")


def test_a_terminal_error_exits_1_with_code_and_message(
    any_server: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    code, text = cli(any_server, "call", "Greeter/refuse", '"no way"')
    assert (code, text) == (1, "")
    assert "Greeter/refuse failed with a terminal error [422]: no way" in capsys.readouterr().err
    code, text = cli(any_server, "call", "Greeter/refuse", '"no"', "--json")
    shape = json.loads(text)
    assert code == 1 and shape["status"] == "failed" and shape["output"] is None
    assert shape["error"]["code"] == 422 and shape["error"]["message"] == "no"
    assert shape["invocation_id"].startswith("inv_1")


def test_headers_reach_the_handler(any_server: Deployed) -> None:
    code, text = cli(any_server, "call", "Greeter/whoami", "--header", "x-who: ann")
    assert (code, text) == (0, '"ann"\n')


def test_unknown_targets_point_to_services_list(
    any_server: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(any_server, "call", "Nope/greet", '"x"')[0] == 1
    assert "[404]" in (err := capsys.readouterr().err) and "`perdure services list`" in err
    assert cli(any_server, "call", "Greeter/nope")[0] == 1
    assert "`perdure services describe Greeter`" in capsys.readouterr().err


def test_the_ingress_url_comes_from_the_flag_or_the_environment(
    perdure: Deployed, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    monkeypatch.setenv("PERDURE_ADMIN_URL", nowhere)  # no admin API to ask
    code, _ = cli(None, "call", "Greeter/greet", '"E"', "--ingress", perdure.ingress)
    assert code == 0
    monkeypatch.setenv("PERDURE_INGRESS_URL", perdure.ingress)
    assert cli(None, "call", "Greeter/greet", '"E"') == (0, '"Hello E!"\n')
    monkeypatch.setenv("PERDURE_INGRESS_URL", nowhere)
    assert cli(None, "call", "Greeter/greet", '"E"')[0] == 1
    err = capsys.readouterr().err
    assert f"cannot reach the ingress at {nowhere}" in err and "`perdure server`" in err


def test_bad_arguments(perdure: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(perdure, "call", "Greeter/greet", "Ann")[0] == 1
    assert "quote it: '\"Ann\"'" in capsys.readouterr().err
    assert cli(perdure, "call", "Greeter/greet", '"A"', "--delay", "1s")[0] == 1
    assert "--delay needs --send" in capsys.readouterr().err
    assert cli(perdure, "call", "Greeter", '"A"')[0] == 1
    assert "expected SERVICE/HANDLER" in capsys.readouterr().err
    assert cli(perdure, "call", "Greeter/greet", '"A"', "--send", "--delay", "soon")[0] == 1
    assert "[400]" in capsys.readouterr().err


def test_pretty_output_on_a_terminal(perdure: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    code, raw = cli(perdure, "call", "Greeter/card", '"Ann"')
    assert code == 0 and json.loads(raw) == {"name": "Ann", "letters": 3} and raw.count("\n") == 1
    monkeypatch.setenv("PERDURE_FORCE_TERMINAL", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    code, pretty = cli(perdure, "call", "Greeter/card", '"Ann"')
    assert code == 0 and pretty == '{\n  "name": "Ann",\n  "letters": 3\n}\n'
