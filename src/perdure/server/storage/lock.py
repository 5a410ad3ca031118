"""One server per data directory: an exclusive advisory lock held while a store is open.

Two engines on one SQLite file would each think they own every invocation (both would run the same
attempts and fire the same timers), so the second one must refuse to start. The lock is an
``flock`` on ``<db>.lock``: the kernel drops it when the process dies, even on SIGKILL, so a crash
never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class StoreInUse(Exception):
    """Another process has the store open."""


class StoreLock:
    def __init__(self, db_path: Path | str) -> None:
        self.path = Path(f"{db_path}.lock")
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        os.fchmod(self._fd, 0o600)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._fd)
            self._fd = None
            holder = self.path.read_text().strip() or "another process"
            raise StoreInUse(
                f"the data directory {self.path.parent} is in use by {holder}; stop it first, "
                "or pass another --data-dir"
            ) from None
        os.ftruncate(self._fd, 0)
        os.write(self._fd, f"pid {os.getpid()}".encode())

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None
