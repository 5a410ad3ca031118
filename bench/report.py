"""The side-by-side table of a benchmark report: per case, throughput and latency percentiles on
each server, then the perdure/official ratio (throughput: above 1 is better for perdure; latency:
below 1 is better for perdure).
"""

from __future__ import annotations

import math

from bench.runner import Report

PERCENTILES = ("p50", "p90", "p99")


def _ratio(a: float, b: float) -> str:
    if math.isnan(a) or math.isnan(b) or not (a > 0 and b > 0):
        return "-"
    return f"{a / b:.2f}x"


def _num(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _numbers(report: Report, case: str, server: str) -> list[float]:
    """[req/s, p50, p90, p99 in ms] of one case on one server (nan when it did not run)."""
    outcome = report.get(case, server)
    if outcome is None or outcome.result is None:
        return [math.nan] * (1 + len(PERCENTILES))
    r = outcome.result
    return [r.throughput, *(r.percentile(float(p[1:])) * 1000 for p in PERCENTILES)]


def _cpu(report: Report, case: str, server: str) -> str:
    """CPU use of server/deployment/loadgen during the run, in % of one core."""
    outcome = report.get(case, server)
    if outcome is None or outcome.result is None or not outcome.cpu:
        return "-"
    elapsed = outcome.result.elapsed
    names = ("server", "deployment", "loadgen")
    return "/".join(
        f"{outcome.cpu[n] / elapsed:.0%}".rstrip("%") if n in outcome.cpu else "?" for n in names
    )


def table(report: Report) -> str:
    servers = report.plan.servers
    rows = [["case", "server", "req/s", *(f"{p} ms" for p in PERCENTILES), "cpu% srv/dep/gen"]]
    for case in report.plan.cases:
        numbers = {server: _numbers(report, case, server) for server in servers}
        for i, server in enumerate(servers):
            cells = [*map(_num, numbers[server]), _cpu(report, case, server)]
            rows.append([case if i == 0 else "", server, *cells])
        if set(servers) == {"perdure", "official"}:
            ratios = map(_ratio, numbers["perdure"], numbers["official"])
            rows.append(["", "perdure/official", *ratios, ""])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in
                  enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]  # fmt: skip
    lines.append("(cpu%: of one core, for the server, the deployment and the load generator)")
    problems = [f"  {o.server}/{o.case}: {o.problem}" for o in report.outcomes if o.problem]
    if problems:
        lines += ["", "problems:", *problems]
    return "\n".join(lines)
