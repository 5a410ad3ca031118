"""``perdure dev TARGET``: the server and the user's services in one process, reloaded on edit.

Registered by ``cli.main``; the work happens in ``perdure.dev`` (imported lazily: the server's
dependencies are an extra).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from perdure.cli.server_flags import (
    FlagError,
    add_server_flags,
    inactivity_ms,
    partition_count,
    protection,
    setup_logging,
    store_url,
)

HELP = "run the server and your services in one process, reloading them when files change"
EPILOG = """\
TARGET is path/to/app.py, package.module, or either with :NAME. Without :NAME, perdure dev serves
the module's `app` (perdure.app([...])), else its one App, else its Service, VirtualObject and
Workflow definitions."""


def add_parser(sub: Any) -> None:
    """Add the ``dev`` subcommand to the CLI's subparsers."""
    dev = sub.add_parser(
        "dev", help=HELP, description=HELP, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )  # fmt: skip
    dev.add_argument("target", metavar="TARGET", help="path/to/app.py[:NAME] or module[:NAME]")
    add_server_flags(dev)


def run(args: argparse.Namespace) -> int:
    try:  # lazily: the server's modules are heavier than the other commands need
        from perdure.dev import DevConfig  # noqa: PLC0415
        from perdure.dev import run as run_dev  # noqa: PLC0415
    except ImportError as exc:
        print(f"perdure dev: missing dependency {exc.name}; reinstall perdure "
              "(pip install -U perdure)", file=sys.stderr)  # fmt: skip
        return 1
    setup_logging(args)
    try:
        inactivity = inactivity_ms(args)
        guards = protection(args)
        store = store_url(args)
        partitions = partition_count(args)
    except FlagError as exc:
        print(f"perdure dev: {exc}", file=sys.stderr)
        return 2
    config = DevConfig(
        target=args.target,
        data_dir=Path(args.data_dir),
        store=store,
        ingress_bind=args.ingress_bind,
        admin_bind=args.admin_bind,
        inactivity_timeout=inactivity,
        ui=args.ui,
        protection=guards,
        partitions=partitions,
    )
    return asyncio.run(run_dev(config, sys.stdout))
