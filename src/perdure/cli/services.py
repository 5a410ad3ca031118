"""``perdure services list|describe NAME`` (``GET /services``, ``GET /services/{name}``)."""

from __future__ import annotations

import argparse
from typing import Any

from perdure.cli.admin_client import AdminClient, CliError
from perdure.cli.common import management_flags, run
from perdure.cli.render import Output


def add_parser(sub: Any) -> None:
    flags = management_flags()
    parser = sub.add_parser("services", help="list and describe registered services")
    actions = parser.add_subparsers(dest="action", required=True)
    actions.add_parser("list", parents=[flags], help="every registered service")
    describe = actions.add_parser("describe", parents=[flags], help="a service and its handlers")
    describe.add_argument("name")


def main(args: argparse.Namespace, out: Any) -> int:
    return run(_list if args.action == "list" else _describe, args, out)


def _list(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    services = sorted(client.get("/services")["services"], key=lambda s: s["name"])
    if output.as_json:
        output.json(services)
        return 0
    output.table(
        ("name", "type", "revision", "handlers", "deployment"),
        [
            (
                s["name"],
                s["ty"],
                s["revision"],
                ", ".join(sorted(h["name"] for h in s["handlers"])),
                s["deployment_id"],
            )
            for s in services
        ],
    )
    return 0


def _describe(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    try:
        service = client.get(f"/services/{args.name}")
    except CliError as exc:
        if exc.status == 404:
            raise CliError(
                f"service {args.name!r} not found; `perdure services list` shows "
                "the registered ones",
                status=404,
            ) from None
        raise
    if output.as_json:
        output.json(service)
        return 0
    output.markup(
        f"[bold]{service['name']}[/] ({service['ty']}), revision "
        f"{service['revision']}, deployment {service['deployment_id']}"
    )
    for field in (
        "public",
        "idempotency_retention",
        "journal_retention",
        "workflow_completion_retention",
        "inactivity_timeout",
        "abort_timeout",
    ):
        if service.get(field) is not None:
            output.line(f"  {field}: {service[field]}")
    output.table(
        ("handler", "type", "input", "output"),
        [
            (
                h["name"],
                h.get("ty", ""),
                h.get("input_description", ""),
                h.get("output_description", ""),
            )
            for h in service["handlers"]
        ],
    )
    return 0
