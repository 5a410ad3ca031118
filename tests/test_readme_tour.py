"""The README's tour, as written: its service file, its curl lines (sent with httpx to a
``perdure dev`` on free ports), a SIGKILL during the sleep, the restart, the attach, the CLI's
describe, and its client snippet. Only the sleep is shortened (10 s -> 2 s)."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.dev.support import DevProcess
from tests.support.official import REPO

pytestmark = pytest.mark.interop


def _tour() -> tuple[str, list[str], str]:
    """The service file, the shell lines and the client snippet of the README's tour."""
    text = (REPO / "README.md").read_text()
    section = text.split("## Tour", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w+)\n(.*?)```", section, re.S)
    (service,) = [b for lang, b in blocks if lang == "python" and b.startswith("# greeter.py")]
    (client,) = [b for lang, b in blocks if lang == "python" and "Client(" in b]
    (shell,) = [b for lang, b in blocks if lang == "sh"]
    lines = [line.split("#", 1)[0].strip() for line in shell.splitlines()]
    return service, [line for line in lines if line], client


def _curl(dev: DevProcess, line: str, invocation_id: str | None) -> httpx.Response:
    words = shlex.split(line.replace("inv_1…", invocation_id or "inv_1…"))
    assert words[0] == "curl"
    url = words[1].replace("localhost:8080", dev.ingress.removeprefix("http://"))
    url = url if url.startswith("http") else f"http://{url}"
    if "--json" in words:
        body = json.loads(words[words.index("--json") + 1])
        return httpx.post(url, json=body, timeout=30)
    return httpx.get(url, timeout=30)


def _wait_until_sleeping(dev: DevProcess, invocation_id: str) -> None:
    """Until the sleep is journaled (so the step before it is durable, not just printed)."""
    sql = f"SELECT entry_type FROM sys_journal WHERE id = '{invocation_id}'"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        response = httpx.post(f"{dev.admin}/query", json={"query": sql}, timeout=30,
                              headers={"accept": "application/json"})  # fmt: skip
        if any("Sleep" in row.get("entry_type", "") for row in response.json()["rows"]):
            return
        time.sleep(0.05)
    raise AssertionError(f"{invocation_id} never reached its sleep")


def test_the_readme_tour(tmp_path: Path) -> None:
    service, shell, client = _tour()
    assert "seconds=10" in service
    (tmp_path / "greeter.py").write_text(service.replace("seconds=10", "seconds=2"))
    start, call_ann, send_bo, crash, attach, describe = shell
    assert start.startswith("perdure dev greeter.py")
    assert crash.startswith("kill -9 %1; perdure dev greeter.py")
    data = tmp_path / ".perdure"

    with DevProcess.start("greeter.py", tmp_path, cwd=tmp_path, data_dir=data) as dev:
        answer = _curl(dev, call_ann, None)
        assert (answer.status_code, answer.json()) == (200, "Hello, Ann!")
        sent = _curl(dev, send_bo, None)
        assert sent.status_code == 202
        assert sent.json()["status"] == "Accepted"
        invocation_id = sent.json()["invocationId"]
        _wait_until_sleeping(dev, invocation_id)
        dev.child.kill()  # SIGKILL, mid-sleep
        first_log = dev.output()
    with DevProcess.start(
        "greeter.py", tmp_path, cwd=tmp_path, data_dir=data, log_name="dev-2.log"
    ) as dev:
        attached = _curl(dev, attach, invocation_id)
        assert (attached.status_code, attached.json()) == (200, "Hello, Bo!")
        assert (first_log + dev.output()).count("greeting Bo") == 1

        command = shlex.split(describe.replace("inv_1…", invocation_id))
        assert command[:3] == ["perdure", "invocations", "describe"]
        described = subprocess.run(
            [sys.executable, "-m", "perdure.cli", *command[1:], "--admin", dev.admin, "--json"],
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert "announce" in described.stdout
        assert "completed" in described.stdout

        (tmp_path / "client.py").write_text(client.replace("http://localhost:8080", dev.ingress))
        printed = subprocess.run(
            [sys.executable, "client.py"], cwd=tmp_path,
            capture_output=True, text=True, timeout=60, check=True,
        )  # fmt: skip
        assert printed.stdout.strip() == "Hello, Cy!"
