"""Noticing edits to the user's files by polling their modification stamps.

Polling a few files a few times a second costs nothing measurable and needs no dependency; a
stamp is (mtime in ns, size), so an edit within one mtime tick that changes the length is still
seen. A file that disappears (an editor's save-by-rename) or reappears counts as changed.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

Stamp = tuple[int, int] | None


def stamp(path: Path) -> Stamp:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_size)


class Watcher:
    """Remembers the stamps of a set of files; ``changed()`` says which differ since last asked."""

    def __init__(self, files: Iterable[Path] = ()) -> None:
        self._stamps: dict[Path, Stamp] = {}
        self.watch(files)

    @property
    def files(self) -> frozenset[Path]:
        return frozenset(self._stamps)

    def watch(self, files: Iterable[Path]) -> None:
        """Watch exactly ``files`` from now on; files watched already keep their last stamp (so
        an edit made while a reload ran is still noticed)."""
        self._stamps = {f: self._stamps[f] if f in self._stamps else stamp(f) for f in files}

    def changed(self) -> list[Path]:
        """The watched files whose stamp changed since the last call (or ``watch``)."""
        found = []
        for path, old in self._stamps.items():
            new = stamp(path)
            if new != old:
                self._stamps[path] = new
                found.append(path)
        return sorted(found)
