"""``python -m bench``: run the benchmark cases on every stack (official or perdure server, official
or perdure SDK, perdure dev), print the side-by-side table with ratios to the official stack, write
the results as JSON under bench/results/.

    python -m bench                    # all cases, all stacks, 10 s per case, 16 workers
    python -m bench --quick            # 3 s per case
    python -m bench --cases noop,steps3 --stacks perdure,dev --profile bench/results/profile
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from bench import profiling, targets
from bench.cases import CASES
from bench.loadgen import LoadConfig
from bench.report import table
from bench.runner import Plan, now_stamp, quick, run_plan

RESULTS = Path(__file__).resolve().parent / "results"


def _names(text: str, known: list[str], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise argparse.ArgumentTypeError(
            f"unknown {what} {', '.join(unknown) or '(none)'}; choose from {', '.join(known)}"
        )
    return names


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=" ".join(__doc__.split("\n\n")[0].split())
    )
    parser.add_argument("--quick", action="store_true", help="3 s per case, 20 warm-up requests")
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated (default: all)")
    parser.add_argument(
        "--stacks",
        default=",".join(targets.STACKS),
        help="comma-separated (default: all): "
        + "; ".join(f"{s.name} = {s.title}" for s in targets.STACKS.values()),
    )
    parser.add_argument("--concurrency", type=int, default=16, help="workers / in-flight cap")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per case")
    parser.add_argument("--requests", type=int, default=None, help="max requests per case")
    parser.add_argument("--rate", type=float, default=None, help="open loop: requests/s")
    parser.add_argument("--warmup", type=int, default=200, help="warm-up requests per case")
    parser.add_argument("--deployment-workers", type=int, default=1, help="hypercorn workers")
    parser.add_argument(
        "--loadgen-processes",
        type=int,
        default=2,
        help="load generator processes a measured run is split over (default 2)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="record py-spy profiles of perdure's processes (server, SDK) here",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="JSON path (default: bench/results/)"
    )
    args = parser.parse_args(argv)
    try:
        args.cases = _names(args.cases, list(CASES), "case")
        args.stacks = _names(args.stacks, list(targets.STACKS), "stack")
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        load = LoadConfig(args.concurrency, args.requests, args.duration, args.rate)
        warmup = LoadConfig(args.concurrency, max(1, args.warmup), 30.0)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.quick:
        load, warmup = quick(load)
    if args.profile is not None:
        try:
            profiling.find_py_spy()
        except profiling.ProfilerUnavailable as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if args.loadgen_processes < 1:
        print("error: --loadgen-processes must be at least 1", file=sys.stderr)
        return 2
    plan = Plan(
        args.cases, args.stacks, load, warmup, args.profile, args.deployment_workers,
        args.loadgen_processes,
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="perdure-bench-") as tmp:
        report = run_plan(plan, Path(tmp))
    print()
    print(table(report))
    out = args.out or RESULTS / f"{now_stamp()}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print(f"\nresults: {out}")
    if args.profile is not None:
        for outcome in report.outcomes:
            for profile in outcome.profiles:
                if Path(profile).exists():
                    print()
                    print(profiling.render(Path(profile)))
    return 1 if any(o.problem for o in report.outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
