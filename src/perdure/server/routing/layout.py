"""How a data directory is laid out for ``--workers N``, and the check that N stays the same.

With one worker (the default) the store is ``DATA/perdure.sqlite3``, as it always was. With N > 1,
worker ``i`` keeps its store in ``DATA/worker-i/`` and ``DATA/workers.json`` records N: worker
``i`` owns the partitions ``p % N == i``, so the rows of a store belong to its worker for good,
and starting the same directory with another N would strand them. That is refused with a clear
error instead.
"""

from __future__ import annotations

import json
from pathlib import Path

from perdure.server.partitions import DEFAULT_PARTITIONS

LAYOUT_FILE = "workers.json"
SINGLE_STORE = "perdure.sqlite3"


class LayoutError(Exception):
    """The data directory was created with another number of workers."""


def worker_dir(data_dir: Path, index: int) -> Path:
    return data_dir / f"worker-{index}"


def recorded(data_dir: Path) -> tuple[int, int | None]:
    """How many workers and partitions the data directory was created for ((1, None) when not
    recorded: a single store, or a new directory)."""
    try:
        data = json.loads((data_dir / LAYOUT_FILE).read_text())
    except FileNotFoundError:
        return 1, None
    except (OSError, ValueError) as exc:
        raise LayoutError(f"cannot read {data_dir / LAYOUT_FILE}: {exc}") from None
    workers = data.get("workers") if isinstance(data, dict) else None
    partitions = data.get("partitions") if isinstance(data, dict) else None
    if not isinstance(workers, int) or workers < 1 or not isinstance(partitions, int):
        raise LayoutError(f"{data_dir / LAYOUT_FILE} is damaged: no worker count in it")
    return workers, partitions


def claim(data_dir: Path, workers: int, partitions: int | None = None) -> int | None:
    """Check that ``data_dir`` fits ``workers`` (recording it, with the partition count, for a
    new directory), or raise; returns the partition count the workers' stores use (None with
    one worker: its store keeps its own)."""
    recorded_workers, recorded_partitions = recorded(data_dir)
    single = (data_dir / SINGLE_STORE).exists()
    if workers == 1:
        if recorded_workers > 1:
            raise LayoutError(
                f"the data directory {data_dir} was created with --workers {recorded_workers}; "
                f"start it with --workers {recorded_workers} (its partitions are split that way)"
            )
        return None
    if recorded_workers != workers and (recorded_workers > 1 or single):
        raise LayoutError(
            f"the data directory {data_dir} was created with --workers {recorded_workers}; "
            f"start it with --workers {recorded_workers} (its partitions are split that way), "
            "or use a new data directory"
        )
    if recorded_partitions is not None:
        if partitions is not None and partitions != recorded_partitions:
            raise LayoutError(
                f"the data directory {data_dir} was created with {recorded_partitions} "
                f"partitions, not {partitions}: drop --partitions (or pass --partitions "
                f"{recorded_partitions}), or use a new data directory"
            )
        return recorded_partitions
    count = partitions if partitions is not None else DEFAULT_PARTITIONS
    if count < workers:
        raise LayoutError(f"--workers {workers} needs at least as many partitions, not {count}")
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = data_dir / LAYOUT_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"workers": workers, "partitions": count}) + "\n")
    tmp.replace(path)
    return count
