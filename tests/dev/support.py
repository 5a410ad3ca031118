"""``perdure dev`` as a real subprocess for tests: free ports, a tmp data dir, its output (stdout
and stderr) in a log file that tests wait on; always killed at the end."""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.support.postgres import shared_server, wanted_store
from tests.support.processes import Child, free_port

REPO = Path(__file__).resolve().parents[2]
_databases: dict[Path, str] = {}
"""With $PERDURE_TEST_STORE=postgres: the database of each data dir, so that a ``perdure dev``
started again on the same data dir finds what the last one stored."""


def _store_args(data_dir: Path, args: Sequence[str]) -> tuple[str, ...]:
    """``--store`` on the session's PostgreSQL when the tests run on it (unless a test chose)."""
    if wanted_store() != "postgres" or "--store" in args:
        return ()
    if data_dir not in _databases:
        _databases[data_dir] = shared_server().create_database("dev")
    return ("--store", _databases[data_dir])


@dataclass
class DevProcess:
    child: Child
    ingress: str
    admin: str

    @classmethod
    @contextmanager
    def start(
        cls, target: str, tmp: Path, *, cwd: Path, data_dir: Path | None = None,
        args: Sequence[str] = (), log_name: str = "dev.log",
    ) -> Iterator[DevProcess]:  # fmt: skip
        ingress_port, admin_port = free_port(), free_port()
        data = data_dir or tmp / "data"
        child = Child(
            "perdure dev",
            [
                sys.executable, "-m", "perdure.cli", "dev", target,
                "--data-dir", str(data), *_store_args(data.resolve(), args),
                "--ingress-bind", f"127.0.0.1:{ingress_port}",
                "--admin-bind", f"127.0.0.1:{admin_port}",
                *args,
            ],
            tmp / log_name,
            cwd=cwd,
        )  # fmt: skip
        dev = cls(child, f"http://127.0.0.1:{ingress_port}", f"http://127.0.0.1:{admin_port}")
        try:
            dev.wait_output("Ctrl-C stops.")
            yield dev
        finally:
            child.stop()

    def output(self) -> str:
        try:
            return self.child.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def wait_output(self, pattern: str, *, after: int = 0, timeout: float = 30.0) -> int:
        """Wait until ``pattern`` (a regex) appears in the output past ``after``; returns the
        offset just past the match."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.output()[after:])
            if found:
                return after + found.end()
            if not self.child.alive():
                raise AssertionError(f"perdure dev exited early:\n{self.output()[-3000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {pattern!r} within {timeout} s:\n{self.output()[-3000:]}")
            time.sleep(0.05)

    def call(self, path: str, body: Any = None) -> httpx.Response:
        return httpx.post(f"{self.ingress}/{path}", json=body, timeout=30)

    def curl_lines(self) -> list[str]:
        return [line.strip() for line in self.output().splitlines() if line.startswith("  curl ")]


def run_curl(line: str, timeout: float = 30.0) -> httpx.Response:
    """Run one printed curl line with httpx (the flags ``perdure dev`` prints)."""
    words = shlex.split(line)
    assert words[0] == "curl", line
    url, method, body, headers = "", "GET", b"", {}
    rest = iter(words[1:])
    for word in rest:
        if word == "-X":
            method = next(rest)
        elif word == "--json":
            method, body = "POST", next(rest).encode()
            headers.setdefault("content-type", "application/json")
            headers.setdefault("accept", "application/json")
        elif word == "--data-binary":
            method, body = "POST", next(rest).encode()
        elif word == "-H":
            name, _, value = next(rest).partition(":")
            headers[name.strip().lower()] = value.strip()
        elif word.startswith("http"):
            url = word
        else:
            raise AssertionError(f"unexpected curl argument {word!r} in {line}")
    return httpx.request(method, url, content=body, headers=headers, timeout=timeout)
