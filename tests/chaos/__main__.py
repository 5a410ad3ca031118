"""python -m tests.chaos --server-kills 100 --deployment-kills 30 --both-kills 10 ... (see
docs/chaos.md); exits 0 when every check passed, 1 otherwise, and prints the summary."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

from tests.chaos.runner import Config, run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__)
    p.add_argument("--server-kills", type=int, default=10, help="SIGKILL + restart the server")
    p.add_argument("--deployment-kills", type=int, default=3, help="the same for the deployment")
    p.add_argument("--both-kills", type=int, default=1, help="both at once")
    p.add_argument(
        "--blackholes",
        type=int,
        default=1,
        help="silence the deployment's open connections (held silent to the end)",
    )
    p.add_argument(
        "--goaways",
        type=int,
        default=1,
        help="periods where the deployment sends GOAWAY every --goaway-after requests",
    )
    p.add_argument("--hangs", type=int, default=1, help="SIGSTOP the deployment, then SIGCONT")
    p.add_argument(
        "--workers", type=int, default=1, help="run the server with --workers N (default 1)"
    )
    p.add_argument(
        "--worker-kills",
        type=int,
        default=0,
        help="SIGKILL one worker of --workers N (its supervisor restarts it)",
    )
    p.add_argument("--actors", type=int, default=6, help="concurrent clients")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--min-gap", type=float, default=0.5, help="least workload time before a fault")
    p.add_argument("--max-gap", type=float, default=2.5, help="most workload time before a fault")
    p.add_argument("--hang-seconds", type=float, default=2.0)
    p.add_argument("--goaway-seconds", type=float, default=3.0)
    p.add_argument("--goaway-after", type=int, default=10)
    p.add_argument(
        "--stuck-timeout",
        type=float,
        default=60.0,
        help="how long after the faults everything must have completed",
    )
    p.add_argument(
        "--dir", type=Path, help="keep logs, data dir and ledger here (default: a temp dir)"
    )
    args = p.parse_args(argv)
    counts = {
        "server": args.server_kills,
        "deployment": args.deployment_kills,
        "both": args.both_kills,
        "blackhole": args.blackholes,
        "goaway": args.goaways,
        "hang": args.hangs,
        "worker": args.worker_kills,
    }
    tmp = args.dir or Path(tempfile.mkdtemp(prefix="perdure-chaos-"))
    cfg = Config(
        tmp,
        counts,
        seed=args.seed,
        actors=args.actors,
        gap=(args.min_gap, args.max_gap),
        hang_seconds=args.hang_seconds,
        goaway_seconds=args.goaway_seconds,
        goaway_after=args.goaway_after,
        progress=lambda line: print(line, file=sys.stderr, flush=True),
        stuck_timeout=args.stuck_timeout,
    )
    if args.workers > 1:
        cfg.server_args = (*cfg.server_args, "--workers", str(args.workers))
    outcome = asyncio.run(run(cfg))
    print(outcome.summary())
    print(f"logs, data dir and ledger: {tmp}")
    return 0 if outcome.ok else 1


if __name__ == "__main__":
    sys.exit(main())
