"""The tables of a benchmark report.

The main table: per case, per stack, throughput and latency percentiles, the ratios to the
official stack (throughput: above 1 is better; p50: below 1 is better), and the CPU each process
spent per invocation. Then a compact matrix of the throughput ratios, case by stack.
"""

from __future__ import annotations

import math

from bench.runner import Report
from bench.targets import BASELINE, STACKS

PERCENTILES = ("p50", "p90", "p99")


def _ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or not (a > 0 and b > 0):
        return "-"
    return f"{a / b:.2f}x"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _numbers(report: Report, case: str, stack: str) -> list[float]:
    """[req/s, p50, p90, p99 in ms] of one case on one stack (nan when it did not run)."""
    outcome = report.get(case, stack)
    if outcome is None or outcome.result is None:
        return [math.nan] * (1 + len(PERCENTILES))
    r = outcome.result
    return [r.throughput, *(r.percentile(float(p[1:])) * 1000 for p in PERCENTILES)]


def _cpu(report: Report, case: str, stack: str) -> str:
    """CPU use of server/deployment/loadgen during the run, in % of one core."""
    outcome = report.get(case, stack)
    if outcome is None or outcome.result is None or not outcome.cpu:
        return "-"
    elapsed = outcome.result.elapsed
    names = ("server", "deployment", "loadgen")
    return "/".join(
        f"{outcome.cpu[n] / elapsed:.0%}".rstrip("%") if n in outcome.cpu else "-" for n in names
    )


def _per_invocation(report: Report, case: str, stack: str) -> str:
    """CPU ms per invocation: server/SDK (the SDK's share is inside the server's for dev)."""
    outcome = report.get(case, stack)
    if outcome is None:
        return "-"
    cells = []
    for process in ("server", "deployment"):
        per = outcome.cpu_ms_per_invocation(process)
        cells.append("-" if per is None else f"{per:.2f}")
    return "/".join(cells)


def _align(rows: list[list[str]], left: int) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) if i < left else cell.rjust(w) for i, (cell, w) in
                  enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]  # fmt: skip


def table(report: Report) -> str:
    stacks = report.plan.stacks
    baseline = BASELINE if BASELINE in stacks else None
    rows = [["case", "stack", "req/s", "vs off", *(f"{p} ms" for p in PERCENTILES), "p50 vs off",
             "cpu ms/inv srv/sdk", "cpu% srv/dep/gen"]]  # fmt: skip
    for case in report.plan.cases:
        numbers = {stack: _numbers(report, case, stack) for stack in stacks}
        base = numbers[baseline] if baseline else [math.nan] * 4
        for i, stack in enumerate(stacks):
            n = numbers[stack]
            rows.append([
                case if i == 0 else "", stack, _num(n[0]),
                "" if stack == baseline else _ratio(n[0], base[0]),
                *map(_num, n[1:]),
                "" if stack == baseline else _ratio(n[1], base[1]),
                _per_invocation(report, case, stack), _cpu(report, case, stack),
            ])  # fmt: skip
    lines = _align(rows, 2)
    lines.append(
        "(vs off: ratio to the official stack; cpu ms/inv: CPU milliseconds per invocation of "
        "the server and the deployment (for dev, both in the server); cpu%: of one core)"
    )
    if baseline and len(stacks) > 1:
        lines += ["", "throughput vs the official stack:", *_matrix(report, baseline)]
    problems = [f"  {o.stack}/{o.case}: {o.problem}" for o in report.outcomes if o.problem]
    if problems:
        lines += ["", "problems:", *problems]
    return "\n".join(lines)


def _matrix(report: Report, baseline: str) -> list[str]:
    """Case by stack: the official stack's req/s (and p50) and every other stack's ratio."""
    others = [s for s in report.plan.stacks if s != baseline]
    rows = [["case", f"{baseline} req/s, p50", *others]]
    for case in report.plan.cases:
        base = _numbers(report, case, baseline)
        rows.append(
            [case, f"{_num(base[0])}/s, {_num(base[1])} ms",
             *(_ratio(_numbers(report, case, s)[0], base[0]) for s in others)]
        )  # fmt: skip
    legend = "; ".join(f"{s}: {STACKS[s].title}" for s in report.plan.stacks)
    return [*_align(rows, 1), f"  {legend}"]
