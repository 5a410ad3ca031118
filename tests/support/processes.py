"""Real processes for tests: free ports, child processes that are always cleaned up, servers that
tests kill and start again, waiting for a port or an HTTP endpoint to answer."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Child:
    """A child process in its own process group, logging to a file; stop() ends the whole group."""

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        log_path: Path,
        *,
        cwd: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen(
                list(args),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                cwd=cwd,
                env={**os.environ, **(env or {})},
            )

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def signal(self, signum: int) -> None:
        """Send ``signum`` to the whole group (SIGSTOP/SIGCONT to freeze and thaw it)."""
        os.killpg(self.proc.pid, signum)

    def kill(self) -> None:
        """SIGKILL the whole group (crash tests)."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self, timeout: float = 10.0) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.kill()


class Restartable:
    """A server that a test starts, kills and starts again: it owns the current ``Child`` (a new
    one per start, logging to ``{log_stem}-{n}.log`` so that a killed run's log outlives the
    restart) and the faults done to it. Before the first start there is no process: ``kill``,
    ``stop`` and ``alive`` see nothing to end, ``child`` and ``signal`` fail an assertion."""

    starts: int = 0
    """How many times it was started."""
    _child: Child | None = None

    def spawn(
        self, name: str, args: Sequence[str], log_stem: Path, *, cwd: Path | None = None
    ) -> Child:
        """Start the next run (the previous one must have ended: ``kill`` or ``stop`` it)."""
        self.starts += 1
        log = log_stem.with_name(f"{log_stem.name}-{self.starts}.log")
        self._child = Child(name, args, log, cwd=cwd)
        return self._child

    @property
    def child(self) -> Child:
        """The current run (or the last one, once it ended)."""
        assert self._child is not None, "the process was never started"
        return self._child

    def alive(self) -> bool:
        return self._child is not None and self._child.alive()

    def kill(self) -> None:
        """SIGKILL (no graceful stop)."""
        if self._child is not None:
            self._child.kill()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 10 s."""
        if self._child is not None:
            self._child.stop()

    def signal(self, signum: int) -> None:
        self.child.signal(signum)

    def thaw(self) -> None:
        """SIGCONT the run if there is one (a test may have left it frozen by SIGSTOP)."""
        if self._child is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                self._child.signal(signal.SIGCONT)

    def exit_code(self) -> int | None:
        """The last run's exit status; None while it runs (or before the first start)."""
        return None if self._child is None else self._child.proc.poll()

    def log_tail(self, lines: int = 80) -> str:
        return "" if self._child is None else self._child.log_tail(lines)


def wait_http(url: str, what: str, child: Child | None = None, timeout: float = 30.0) -> None:
    """Wait until GET url answers with a status below 500."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while True:
            if child is not None and not child.alive():
                raise RuntimeError(f"{what} exited early:\n{child.log_tail()}")
            try:
                if client.get(url).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                tail = child.log_tail() if child else ""
                raise TimeoutError(f"{what} did not answer at {url}\n{tail}")
            time.sleep(0.05)


def wait_tcp(port: int, what: str, child: Child | None = None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        if child is not None and not child.alive():
            raise RuntimeError(f"{what} exited early:\n{child.log_tail()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} did not listen on {port}") from None
            time.sleep(0.05)
