"""Sampling profiles of a server process with py-spy while a case runs, and a text summary of the
hottest functions, so a profile can be read (and quoted) without a browser.

py-spy writes "raw" collapsed stacks: one line per distinct stack, ``frame;frame;...;leaf count``,
outermost frame first. Self time is what the leaf frame got; total time counts a function once per
stack it appears in.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


class ProfilerUnavailable(Exception):
    """py-spy is not installed (``pip install py-spy``)."""


def find_py_spy() -> str:
    here = Path(sys.executable).parent / "py-spy"  # the venv's own copy first
    found = str(here) if here.exists() else shutil.which("py-spy")
    if found is None:
        raise ProfilerUnavailable("py-spy is not installed: pip install py-spy")
    return found


@contextmanager
def recording(pid: int, out: Path, *, rate: int = 200) -> Iterator[Path]:
    """Sample ``pid`` (and its native-free Python stacks) into ``out`` (raw format) until exit."""
    out.parent.mkdir(parents=True, exist_ok=True)
    log = open(out.with_suffix(".log"), "wb")  # noqa: SIM115 - closed in finally
    proc = subprocess.Popen(
        [find_py_spy(), "record", "--pid", str(pid), "--rate", str(rate), "--format", "raw",
         "--output", str(out), "--nonblocking"],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        yield out
    finally:
        # SIGINT makes py-spy stop sampling and write the file.
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


@dataclass(frozen=True)
class Hotspot:
    function: str
    self_share: float
    total_share: float


def _frame_name(frame: str) -> str:
    """``func (path/to/module.py:123)`` -> ``func (module.py)``: lines vary, functions do not."""
    name, _, where = frame.partition(" (")
    file = where.rsplit(":", 1)[0].rstrip(")")
    return f"{name} ({'/'.join(Path(file).parts[-2:])})" if file else name


def hotspots(raw: Path, top: int = 15) -> tuple[int, list[Hotspot]]:
    """(samples, the ``top`` functions by self time) of a raw py-spy profile."""
    self_counts: Counter[str] = Counter()
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(f) for f in stack.split(";") if f]
        if not frames:
            continue
        samples += count
        self_counts[frames[-1]] += count
        for name in set(frames):
            total_counts[name] += count
    spots = [
        Hotspot(name, n / samples, total_counts[name] / samples)
        for name, n in self_counts.most_common(top)
    ]
    return samples, spots


def top_by_total(raw: Path, top: int = 15) -> list[tuple[str, float]]:
    """The ``top`` functions by inclusive time (self plus callees), as shares of all samples."""
    total_counts: Counter[str] = Counter()
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        samples += count
        for name in {_frame_name(f) for f in stack.split(";") if f}:
            total_counts[name] += count
    return [(name, n / samples) for name, n in total_counts.most_common(top)] if samples else []


def render(raw: Path, top: int = 15) -> str:
    samples, spots = hotspots(raw, top)
    lines = [f"{raw.name}: {samples} samples", "  self%  total%  function (by self time)"]
    lines += [f"  {h.self_share:5.1%}  {h.total_share:6.1%}  {h.function}" for h in spots]
    lines.append("  total%  function (by inclusive time)")
    lines += [f"  {share:6.1%}  {name}" for name, share in top_by_total(raw, top)]
    return "\n".join(lines)
