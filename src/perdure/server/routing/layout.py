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

LAYOUT_FILE = "workers.json"
SINGLE_STORE = "perdure.sqlite3"


class LayoutError(Exception):
    """The data directory was created with another number of workers."""


def worker_dir(data_dir: Path, index: int) -> Path:
    return data_dir / f"worker-{index}"


def recorded_workers(data_dir: Path) -> int:
    """How many workers the data directory was created for (1 when not recorded)."""
    try:
        data = json.loads((data_dir / LAYOUT_FILE).read_text())
    except FileNotFoundError:
        return 1
    except (OSError, ValueError) as exc:
        raise LayoutError(f"cannot read {data_dir / LAYOUT_FILE}: {exc}") from None
    workers = data.get("workers") if isinstance(data, dict) else None
    if not isinstance(workers, int) or workers < 1:
        raise LayoutError(f"{data_dir / LAYOUT_FILE} is damaged: no worker count in it")
    return workers


def claim(data_dir: Path, workers: int) -> None:
    """Check that ``data_dir`` fits ``workers`` (recording it for a new directory), or raise."""
    recorded = recorded_workers(data_dir)
    single = (data_dir / SINGLE_STORE).exists()
    if workers == 1:
        if recorded > 1:
            raise LayoutError(
                f"the data directory {data_dir} was created with --workers {recorded}; start it "
                f"with --workers {recorded} (its partitions are split that way)"
            )
        return
    if recorded != workers and (recorded > 1 or single):
        raise LayoutError(
            f"the data directory {data_dir} was created with --workers {recorded}; start it "
            f"with --workers {recorded} (its partitions are split that way), or use a new "
            "data directory"
        )
    if recorded == 1:
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = data_dir / LAYOUT_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"workers": workers}) + "\n")
        tmp.replace(path)
