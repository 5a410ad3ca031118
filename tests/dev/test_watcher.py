"""Noticing edits by polling stamps: a change is reported once; a vanished or new file counts."""

from __future__ import annotations

import os
from pathlib import Path

from perdure.dev.watcher import Watcher


def test_edits_are_reported_once(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 1\n")
    watcher = Watcher([a, b])
    assert watcher.changed() == []
    a.write_text("x = 2\n")
    os.utime(a, ns=(1, 1))  # a different stamp even within one mtime tick
    assert watcher.changed() == [a]
    assert watcher.changed() == []


def test_same_length_edits_within_a_tick_need_a_new_mtime(tmp_path: Path) -> None:
    a = tmp_path / "a.py"
    a.write_text("x = 1\n")
    watcher = Watcher([a])
    a.write_text("x = 22\n")  # a different size is enough
    assert watcher.changed() == [a]


def test_a_file_that_vanishes_or_appears_counts_as_changed(tmp_path: Path) -> None:
    a, later = tmp_path / "a.py", tmp_path / "later.py"
    a.write_text("x = 1\n")
    watcher = Watcher([a, later])
    a.unlink()
    assert watcher.changed() == [a]
    later.write_text("z = 1\n")
    assert watcher.changed() == [later]


def test_rewatching_keeps_the_stamps_of_files_watched_already(tmp_path: Path) -> None:
    a, b = tmp_path / "a.py", tmp_path / "b.py"
    a.write_text("x = 1\n")
    b.write_text("y = 1\n")
    watcher = Watcher([a])
    a.write_text("x = 22\n")  # edited while a reload ran
    watcher.watch([a, b])
    assert watcher.files == {a, b}
    assert watcher.changed() == [a]
