"""The management commands against perdure's server and the official one (in-process via
``main([...], out=buf)``, plus one real run of the ``perdure`` console script)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from perdure.cli.main import main
from tests.cli.conftest import Deployed
from tests.support.processes import free_port

pytestmark = pytest.mark.interop


def cli(d: Deployed | None, *argv: str) -> tuple[int, str]:
    out = io.StringIO()
    admin = ["--admin", d.admin] if d is not None else []
    code = main([*argv, *admin], out=out)
    return code, out.getvalue()


def cli_json(d: Deployed, *argv: str) -> Any:
    code, text = cli(d, *argv, "--json")
    assert code == 0, text
    return json.loads(text)


def test_services_and_deployments_list(any_server: Deployed) -> None:
    services = cli_json(any_server, "services", "list")
    assert [s["name"] for s in services] == ["Counter", "Flaky", "Greeter", "Pauser", "Signup"]
    counter = cli_json(any_server, "services", "describe", "Counter")
    assert counter["ty"] == "VirtualObject"
    assert {"add", "get", "wait"} <= {h["name"] for h in counter["handlers"]}
    [deployment] = cli_json(any_server, "deployments", "list")
    assert deployment["uri"] == any_server.url + "/"


def test_invocations_list_hides_completed_unless_asked(any_server: Deployed) -> None:
    rows = cli_json(any_server, "invocations", "list")
    by_id = {r["id"]: r["status"] for r in rows}
    assert by_id[any_server.ids["pending"]] == "pending"
    assert by_id[any_server.ids["scheduled"]] == "scheduled"
    assert by_id[any_server.ids["paused"]] == "paused"
    assert any_server.ids["completed"] not in by_id
    everything = cli_json(any_server, "invocations", "list", "--all", "--service", "Greeter")
    assert any_server.ids["completed"] in {r["id"] for r in everything}
    assert {r["target"].split("/")[0] for r in everything} == {"Greeter"}
    paused = cli_json(any_server, "invocations", "list", "--status", "paused")
    assert [r["id"] for r in paused] == [any_server.ids["paused"]]


def test_invocations_describe_shows_the_journal_as_a_timeline(any_server: Deployed) -> None:
    caller = any_server.ids["caller"]
    any_server.wait_status(caller, "running", "suspended")
    described = cli_json(any_server, "invocations", "describe", caller)
    assert described["invocation"]["target"] == "Greeter/relay"
    journal = described["journal"]
    assert journal[0]["entry_type"] == "Command: Input" and journal[0]["index"] == 0
    call = next(e for e in journal if e["entry_type"] == "Command: Call")
    assert call["detail"] == "calls Counter/dan/wait"
    assert all(e["at"].startswith("+") for e in journal)


def test_cancel_and_kill(any_server: Deployed) -> None:
    scheduled = any_server.send("Greeter/greet", "Zed", "?delay=1h")
    running = any_server.send("Counter/kim/wait")
    any_server.wait_status(running, "running")
    results = cli_json(any_server, "invocations", "cancel", scheduled)
    assert results == [{"id": scheduled, "ok": True, "status_code": 200}]
    assert cli_json(any_server, "invocations", "kill", running)[0]["ok"] is True
    any_server.wait_status(running, "completed")
    # operating on a completed invocation fails with the server's message and its state
    code, text = cli(any_server, "invocations", "kill", running, "--json")
    assert code == 1
    [refused] = json.loads(text)
    assert refused["status_code"] == 409 and "the invocation is completed" in refused["error"]


def test_purge_pause_resume_on_perdure(perdure: Deployed) -> None:
    finished = perdure.send("Greeter/greet", "Pat")
    perdure.wait_status(finished, "completed")
    assert cli(perdure, "invocations", "purge", finished)[0] == 0
    assert perdure.status(finished) is None
    flaky = perdure.send("Flaky/fail")
    perdure.wait_status(flaky, "backing-off")
    assert cli(perdure, "invocations", "pause", flaky)[0] == 0
    perdure.wait_status(flaky, "paused")
    code, text = cli(perdure, "invocations", "resume", flaky)
    assert code == 0 and f"resume {flaky}: done" in text
    perdure.wait_status(flaky, "running", "backing-off")
    code, text = cli(perdure, "invocations", "purge", flaky)
    assert code == 1 and "cannot purge it in that state" in text


def test_deployments_register_and_remove(perdure: Deployed) -> None:
    again = cli_json(perdure, "deployments", "register", perdure.url)
    assert {s["name"] for s in again["services"]} >= {"Counter", "Greeter"}
    code, _ = cli(perdure, "deployments", "register", "http://127.0.0.1:1/", "--header", "bad")
    assert code == 1
    code, _ = cli(perdure, "deployments", "remove", "dp_11nGQpCRmau6ypL82KH2TnP")
    assert code == 1


def test_errors_say_what_to_do(perdure: Deployed, capsys: pytest.CaptureFixture[str]) -> None:
    out = io.StringIO()
    code = main(["services", "list", "--admin", f"http://127.0.0.1:{free_port()}"], out=out)
    assert code == 1
    assert "Is the server running? Start one with `perdure server`" in capsys.readouterr().err
    assert cli(perdure, "services", "describe", "Nope")[0] == 1
    assert "not found; `perdure services list`" in capsys.readouterr().err
    assert cli(perdure, "invocations", "describe", "inv_1aOmQMs5i9fV508iWbxEh1UJEeYys8pLRK")[0] == 1
    assert "not found" in capsys.readouterr().err
    code, text = cli(perdure, "invocations", "cancel", "nope")
    assert code == 1 and "inv_1..." in text
    with pytest.raises(SystemExit) as usage:
        main(["invocations", "frobnicate"], out=io.StringIO())
    assert usage.value.code == 2


def test_terminal_rendering(perdure: Deployed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PERDURE_FORCE_TERMINAL", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    code, text = cli(perdure, "invocations", "list")
    assert code == 0
    assert "ID" in text and "STATUS" in text and "│" in text
    assert perdure.ids["paused"] in text and "paused" in text


def test_the_console_script(perdure: Deployed, tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "perdure"
    result = subprocess.run(
        [str(script), "services", "list", "--json"],
        env={"PERDURE_ADMIN_URL": perdure.admin, "PATH": "/usr/bin:/bin"},
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "Counter" in [s["name"] for s in json.loads(result.stdout)]


def test_invocations_list_says_the_total_when_it_truncates(
    any_server: Deployed, capsys: pytest.CaptureFixture[str]
) -> None:
    total = len(any_server.query("SELECT id FROM sys_invocation"))
    assert total > 3
    code, text = cli(any_server, "invocations", "list", "--all", "--limit", "2")
    assert code == 0 and len(text.splitlines()) == 3  # the header and two rows
    shown = capsys.readouterr().err
    assert f"showing 2 of {total} invocations (the newest)" in shown
    rows = cli_json(any_server, "invocations", "list", "--all", "--limit", str(total + 50))
    assert len(rows) >= total and "showing" not in capsys.readouterr().err


def test_many_ids_on_a_terminal_leave_one_line_each(
    perdure: Deployed, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PERDURE_FORCE_TERMINAL", "1")
    monkeypatch.setenv("NO_COLOR", "1")
    ids = [perdure.send("Greeter/greet", f"Ida{n}", "?delay=1h") for n in range(3)]
    code, text = cli(perdure, "invocations", "cancel", *ids)
    assert code == 0
    assert [line for line in text.splitlines() if line.startswith("cancel ")] == [
        f"cancel {i}: done" for i in ids
    ]
