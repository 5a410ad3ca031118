"""What every management command shares: ``--admin``/``--json`` flags and error handling."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TextIO

from perdure.cli.admin_client import AdminClient, CliError, admin_token, admin_url
from perdure.cli.render import Output

Command = Callable[[argparse.Namespace, AdminClient, Output], int]


def management_flags() -> argparse.ArgumentParser:
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--admin",
        metavar="URL",
        help="admin API (default: $PERDURE_ADMIN_URL, else http://localhost:9070)",
    )
    parent.add_argument(
        "--token",
        metavar="TOKEN",
        help="the admin API's bearer token (default: $PERDURE_ADMIN_TOKEN)",
    )
    parent.add_argument("--json", action="store_true", help="print stable JSON for scripts")
    return parent


def run(command: Command, args: argparse.Namespace, out: TextIO) -> int:
    """Run one management command: exit 0 ok, 1 when the operation failed."""
    output = Output(out, as_json=args.json)
    try:
        with AdminClient(admin_url(args.admin), token=admin_token(args.token)) as client:
            return command(args, client, output)
    except CliError as exc:
        print(f"perdure {args.command}: {exc.message}", file=sys.stderr)
        return 1
