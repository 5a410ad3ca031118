"""``perdure dev`` as a user runs it: a real process on free ports serving a service file; edits
are served after a reload, in-flight invocations finish on the new code without repeating journaled
steps, a broken edit keeps the last good code, the printed curl lines work, SIGTERM stops cleanly
and a restart on the same data dir finishes what was pending."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.dev.support import REPO, DevProcess, run_curl

SERVICE = """
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import perdure
from perdure import Context, ObjectContext

HERE = Path(__file__).parent
VERSION = "v1"

greeter = perdure.Service("Greeter")
counter = perdure.VirtualObject("Counter")


@dataclass
class Greeting:
    name: str
    times: int


def count_step() -> int:
    with open(HERE / "steps.txt", "a") as f:
        f.write(VERSION + "\\n")
    return 1


@greeter.handler()
async def greet(ctx: Context, greeting: Greeting) -> str:
    return f"{VERSION} " + " ".join([greeting.name] * greeting.times)


@greeter.handler()
async def wait(ctx: Context, name: str) -> str:
    await ctx.run("step", count_step)
    awakeable_id, done = ctx.awakeable(type_hint=str)
    (HERE / "awakeable.txt").write_text(awakeable_id)
    return f"{VERSION} {name} {await done}"


@greeter.handler()
async def nap(ctx: Context, name: str) -> str:
    await ctx.run("step", count_step)
    await ctx.sleep(timedelta(seconds=1))
    return f"{VERSION} rested {name}"


@counter.handler()
async def add(ctx: ObjectContext, delta: int) -> int:
    total = (await ctx.get("total", type_hint=int) or 0) + delta
    ctx.set("total", total)
    return total
"""


def write_service(tmp: Path, version: str = "v1", extra: str = "") -> Path:
    path = tmp / "svc.py"
    path.write_text(SERVICE.replace('VERSION = "v1"', f'VERSION = "{version}"') + extra)
    return path


def greet(dev: DevProcess, name: str = "Ann") -> httpx.Response:
    return dev.call("Greeter/greet", {"name": name, "times": 1})


def steps(tmp: Path) -> list[str]:
    return (tmp / "steps.txt").read_text().split()


def test_an_edit_is_served_after_a_reload(tmp_path: Path) -> None:
    write_service(tmp_path)
    with DevProcess.start("svc.py", tmp_path, cwd=tmp_path) as dev:
        assert greet(dev).json() == "v1 Ann"
        mark = len(dev.output())
        write_service(tmp_path, "v2")
        dev.wait_output(r"perdure dev: reloaded svc\.py", after=mark)
        assert greet(dev).json() == "v2 Ann"


def test_an_invocation_in_flight_finishes_on_the_new_code_without_repeating_steps(
    tmp_path: Path,
) -> None:
    write_service(tmp_path)
    with DevProcess.start("svc.py", tmp_path, cwd=tmp_path) as dev:
        sent = dev.call("Greeter/wait/send", "Bo")
        assert sent.status_code == 202
        invocation = sent.json()["invocationId"]
        dev_wait_file(dev, tmp_path / "awakeable.txt")
        mark = len(dev.output())
        write_service(tmp_path, "v2")
        dev.wait_output(r"reloaded svc\.py; 1 running invocation starts over", after=mark)
        awakeable = (tmp_path / "awakeable.txt").read_text()
        resolved = httpx.post(f"{dev.ingress}/restate/awakeables/{awakeable}/resolve", json="ok")
        assert resolved.status_code == 202
        result = httpx.get(f"{dev.ingress}/restate/invocation/{invocation}/attach", timeout=30)
        assert result.json() == "v2 Bo ok"
        assert steps(tmp_path) == ["v1"]  # journaled before the edit: not executed again


def test_a_broken_edit_keeps_the_last_good_code_and_a_fix_recovers(tmp_path: Path) -> None:
    write_service(tmp_path)
    with DevProcess.start("svc.py", tmp_path, cwd=tmp_path) as dev:
        mark = len(dev.output())
        write_service(tmp_path, "v2", extra="\ndef broken(:\n    pass\n")
        line = len(SERVICE.splitlines()) + 2
        dev.wait_output(rf"syntax error in .*svc\.py:{line}: ", after=mark)
        dev.wait_output("still serving the last good code; fix the error and save", after=mark)
        assert greet(dev).json() == "v1 Ann"

        mark = len(dev.output())
        write_service(tmp_path, "v3", extra="\nraise RuntimeError('no config')\n")
        dev.wait_output(r"RuntimeError: no config\n.*still serving the last good code", after=mark)
        assert "Traceback" in dev.output()[mark:]
        assert greet(dev).json() == "v1 Ann"

        mark = len(dev.output())
        write_service(tmp_path, "v4")
        dev.wait_output(r"reloaded svc\.py", after=mark)
        assert greet(dev).json() == "v4 Ann"


def test_the_printed_curl_lines_work(tmp_path: Path) -> None:
    write_service(tmp_path)
    with DevProcess.start("svc.py", tmp_path, cwd=tmp_path) as dev:
        out = dev.output()
        assert f"  ingress  {dev.ingress}\n" in out
        assert f"  admin    {dev.admin}\n" in out
        greet_line, wait_line, nap_line, add_line = dev.curl_lines()
        assert greet_line == (
            f'curl {dev.ingress}/Greeter/greet --json \'{{"name": "name", "times": 1}}\''
        )
        assert wait_line == f"curl {dev.ingress}/Greeter/wait --json '\"text\"'"
        assert nap_line == f"curl {dev.ingress}/Greeter/nap --json '\"text\"'"
        assert add_line == f"curl {dev.ingress}/Counter/KEY/add --json 1"
        assert run_curl(greet_line).json() == "v1 name"
        assert run_curl(add_line).json() == 1
        assert run_curl(add_line).json() == 2
        assert run_curl(nap_line).json() == "v1 rested text"


@pytest.mark.parametrize(
    "example",
    sorted(p.name for p in (REPO / "examples").glob("*.py")),
)
def test_each_example_runs_under_perdure_dev_and_its_curl_lines_work(
    tmp_path: Path, example: str
) -> None:
    with DevProcess.start(f"examples/{example}", tmp_path, cwd=REPO) as dev:
        lines = dev.curl_lines()
        assert lines
        for line in lines:
            response = run_curl(line)
            assert response.status_code == 200, (line, response.text)


def test_a_module_target_with_an_attribute(tmp_path: Path) -> None:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "__init__.py").write_text("")
    write_service(tmp_path / "shop", extra="\nservices = perdure.app([greeter])\n")
    with DevProcess.start("shop.svc:services", tmp_path, cwd=tmp_path) as dev:
        assert "serving shop.svc:services as local://svc (Greeter)" in dev.output()
        assert greet(dev).json() == "v1 Ann"
        assert dev.call("Counter/k/add", 1).status_code == 404  # not in the named app


@pytest.mark.parametrize(
    ("files", "target", "message"),
    [
        ({}, "missing.py", "perdure dev: no such file: missing.py"),
        ({}, "missing_mod", "perdure dev: no module named 'missing_mod'"),
        ({"empty.py": "x = 1\n"}, "empty.py", "perdure dev: empty.py has nothing to serve"),
        ({"bad.py": "def f(:\n"}, "bad.py", r"perdure dev: syntax error in .*bad\.py:1: "),
    ],
)
def test_startup_errors_are_clear(
    tmp_path: Path, files: dict[str, str], target: str, message: str
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    proc = subprocess.run(
        [sys.executable, "-m", "perdure.cli", "dev", target, "--data-dir", str(tmp_path / "d")],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(message, proc.stdout), proc.stdout


def test_a_port_in_use_names_the_flag_to_change(tmp_path: Path) -> None:
    write_service(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "perdure.cli", "dev", "svc.py", "--data-dir",
             str(tmp_path / "d"), "--ingress-bind", f"127.0.0.1:{port}"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert proc.returncode == 1
    assert f"127.0.0.1:{port} is in use; stop what listens there or pass --ingress-bind" in (
        proc.stdout
    )
    proc = subprocess.run(
        [sys.executable, "-m", "perdure.cli", "dev", "svc.py", "--admin-bind", "9070"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 1
    assert "bad address '9070' for --admin-bind, expected HOST:PORT" in proc.stdout


def test_sigterm_exits_0_and_a_restart_finishes_what_was_pending(tmp_path: Path) -> None:
    write_service(tmp_path)
    data = tmp_path / "data"
    with DevProcess.start("svc.py", tmp_path, cwd=tmp_path, data_dir=data) as dev:
        sent = dev.call("Greeter/nap/send", "Cy")
        invocation = sent.json()["invocationId"]
        dev_wait_file(dev, tmp_path / "steps.txt")
        dev.child.proc.send_signal(signal.SIGTERM)
        assert dev.child.proc.wait(timeout=30) == 0, dev.output()[-2000:]
        assert "perdure dev: stopped" in dev.output()
    with DevProcess.start(
        "svc.py", tmp_path, cwd=tmp_path, data_dir=data, log_name="dev2.log"
    ) as again:
        result = httpx.get(f"{again.ingress}/restate/invocation/{invocation}/attach", timeout=30)
        assert result.json() == "v1 rested Cy"
        assert steps(tmp_path) == ["v1"]


def dev_wait_file(dev: DevProcess, path: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists() or not path.read_text():
        assert dev.child.alive(), dev.output()[-2000:]
        assert time.monotonic() < deadline, f"{path} was not written:\n{dev.output()[-2000:]}"
        time.sleep(0.02)


def test_dev_on_postgres_keeps_state_there_not_in_the_data_dir(tmp_path: Path) -> None:
    from tests.support.postgres import shared_server

    url = shared_server().create_database()
    write_service(tmp_path)
    store = ["--store", url]
    with DevProcess.start("svc.py", tmp_path, cwd=tmp_path, args=store) as dev:
        assert dev.call("Counter/a/add", 5).json() == 5
    # another data directory: what was durable must come from PostgreSQL
    with DevProcess.start("svc.py", tmp_path, cwd=tmp_path, args=store,
                          data_dir=tmp_path / "other", log_name="dev2.log") as again:  # fmt: skip
        assert again.call("Counter/a/add", 2).json() == 7
