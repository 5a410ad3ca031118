"""The store's files are the operator's alone: the data directory is made 0700 and the files in
it 0600, whatever the umask. They hold every handler's inputs, results and object state.

SQLite creates its ``-wal`` and ``-shm`` files with the database file's permissions, so making the
database file 0600 before SQLite opens it covers them too.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600


def private_dir(path: Path) -> None:
    """Create ``path`` (and missing parents) if needed; a directory this makes is 0700."""
    if path.is_dir():
        return
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, DIR_MODE)  # mkdir's mode is filtered by the umask; chmod's is not


def private_file(path: Path) -> None:
    """Create ``path`` if missing and make it (and an existing SQLite WAL/SHM beside it) 0600."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm"):
        with contextlib.suppress(FileNotFoundError):
            os.chmod(f"{path}{suffix}", FILE_MODE)
