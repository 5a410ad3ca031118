"""``perdure cluster status``: the nodes of a cluster, every partition's owner, epoch and lease
age (the admin API's ``GET /cluster``; any node answers for the whole cluster)."""

from __future__ import annotations

import argparse
from typing import Any

from perdure.cli.admin_client import AdminClient, CliError
from perdure.cli.common import management_flags, run
from perdure.cli.render import Output


def add_parser(sub: Any) -> None:
    flags = management_flags()
    parser = sub.add_parser("cluster", help="the nodes and partition leases of a cluster")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser(
        "status", parents=[flags], help="nodes, partitions, owners, epochs and lease ages"
    )


def main(args: argparse.Namespace, out: Any) -> int:
    return run(_status, args, out)


def _status(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    try:
        status = client.get("/cluster")
    except CliError as exc:
        if exc.status == 404:
            raise CliError(
                f"{client.base} is not a cluster node (a cluster runs on PostgreSQL: "
                "perdure server --store postgresql://... --node-name NAME)"
            ) from None
        raise
    if output.as_json:
        output.json(status)
        return 0
    nodes = status["nodes"]
    live = sum(n["live"] for n in nodes)
    output.line(
        f"cluster: {live} live node(s) of {len(nodes)}, {status['partitions']} partitions, "
        f"lease TTL {status['lease_ttl_seconds']}s (asked {status['node']})"
    )
    output.table(
        ("node", "live", "heartbeat", "partitions", "ingress", "admin"),
        [
            (
                n["name"],
                "yes" if n["live"] else "NO",
                f"{n['heartbeat_age_seconds']:.1f}s ago",
                _ranges(n["partitions"]),
                n["ingress_url"],
                n["admin_url"],
            )
            for n in nodes
        ],
    )
    output.line()
    output.table(
        ("partition", "owner", "epoch", "state", "renewed", "expires in"),
        [
            (
                lease["partition"],
                lease["owner"] or f"({lease['last_owner'] or '-'})",
                lease["epoch"],
                lease["state"],
                "-"
                if lease["lease_age_seconds"] is None
                else f"{lease['lease_age_seconds']:.1f}s ago",
                f"{lease['expires_in_seconds']:.1f}s",
            )
            for lease in status["leases"]
        ],
    )
    return 0


def _ranges(partitions: list[int]) -> str:
    """``[0, 1, 2, 5]`` as ``0-2,5``."""
    out: list[str] = []
    for p in sorted(partitions):
        if out and out[-1].split("-")[-1] == str(p - 1):
            out[-1] = f"{out[-1].split('-')[0]}-{p}"
        else:
            out.append(str(p))
    return ",".join(out) or "-"
