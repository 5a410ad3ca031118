"""``perdure deployments register URI|list|remove ID`` (the admin API's ``/deployments``)."""

from __future__ import annotations

import argparse
from typing import Any

from perdure.cli.admin_client import AdminClient, CliError
from perdure.cli.common import management_flags, run
from perdure.cli.render import Output


def add_parser(sub: Any) -> None:
    flags = management_flags()
    parser = sub.add_parser("deployments", help="register, list and remove deployments")
    actions = parser.add_subparsers(dest="action", required=True)
    register = actions.add_parser("register", parents=[flags], help="discover and register")
    register.add_argument("uri", help="the deployment's base URL, e.g. http://localhost:9080")
    register.add_argument("--use-http-11", action="store_true", help="HTTP/1.1, not h2c")
    register.add_argument("--force", action="store_true", help="overwrite an existing one")
    register.add_argument(
        "--header",
        action="append",
        default=[],
        metavar="K:V",
        help="header sent with discovery and invocations (repeatable)",
    )
    actions.add_parser("list", parents=[flags], help="every registered deployment")
    remove = actions.add_parser("remove", parents=[flags], help="remove a deployment")
    remove.add_argument("id")


def main(args: argparse.Namespace, out: Any) -> int:
    commands = {"register": _register, "list": _list, "remove": _remove}
    return run(commands[args.action], args, out)


def _register(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    headers: dict[str, str] = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header {header!r}: expected NAME:VALUE, e.g. x-api-key:secret")
        headers[name.strip()] = value.strip()
    body: dict[str, Any] = {"uri": args.uri, "use_http_11": args.use_http_11, "force": args.force}
    if headers:
        body["additional_headers"] = headers
    if output.terminal:
        with output.console.status(f"discovering {args.uri} ..."):
            resp = _post(client, body, args.uri)
    else:
        resp = _post(client, body, args.uri)
    registered = resp.json()
    if output.as_json:
        output.json(registered)
        return 0
    verb = "registered" if resp.status_code == 201 else "already registered (unchanged)"
    output.line(f"{verb}: {registered['id']} at {args.uri}")
    output.table(
        ("service", "type", "handlers"),
        [
            (s["name"], s["ty"], ", ".join(h["name"] for h in s["handlers"]))
            for s in registered.get("services", [])
        ],
    )
    return 0


def _post(client: AdminClient, body: dict[str, Any], uri: str) -> Any:
    try:
        return client.request("POST", "/deployments", json=body)
    except CliError as exc:
        hint = {
            409: "pass --force to overwrite the existing deployment",
            400: "check the URI (http://host:port) and that it serves a Restate-compatible "
            "endpoint",
            500: f"is the deployment running at {uri}? (use --use-http-11 for an HTTP/1.1-only "
            "endpoint)",
        }.get(exc.status or 0)
        message = f"registering {uri} failed: {exc.message}" + (f"; {hint}" if hint else "")
        raise CliError(message, status=exc.status) from None


def _list(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    deployments = sorted(client.get("/deployments")["deployments"], key=lambda d: d["created_at"])
    if output.as_json:
        output.json(deployments)
        return 0
    output.table(
        ("id", "uri", "protocol", "created", "services"),
        [
            (
                d["id"],
                d.get("uri", d.get("arn", "")),
                d.get("protocol_type", ""),
                d["created_at"],
                ", ".join(sorted(s["name"] for s in d.get("services", []))),
            )
            for d in deployments
        ],
    )
    return 0


def _remove(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    try:
        client.request("DELETE", f"/deployments/{args.id}", params={"force": "true"})
    except CliError as exc:
        if exc.status == 404:
            raise CliError(
                f"deployment {args.id} not found; `perdure deployments list` shows "
                "the registered ones",
                status=404,
            ) from None
        raise
    if output.as_json:
        output.json({"id": args.id, "removed": True})
    else:
        output.line(f"removed {args.id}")
    return 0
