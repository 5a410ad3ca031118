"""Entry point of the ``perdure`` command and its subcommands.

``perdure version``, ``perdure decode`` (print a framed protocol stream, or every exchange of a
recorded fixture, as one line per message), ``perdure server``, ``perdure dev``, and the management
commands (``services``, ``deployments``, ``invocations``, ``state``, ``call``) of the
``MANAGEMENT`` dict.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO

from google.protobuf.json_format import MessageToDict

import perdure
from perdure.cli import call, cluster, deployments, dev, invocations, services, state
from perdure.cli.server_flags import (
    FlagError,
    add_server_flags,
    inactivity_ms,
    partition_count,
    protection,
    setup_logging,
    store_url,
)
from perdure.protocol import ProtocolError, decode_frames
from perdure.server.bind import split_bind

# Management command groups, one module each: ``add_parser(sub)`` and ``main(args, out)``.
MANAGEMENT = {
    "services": services,
    "deployments": deployments,
    "invocations": invocations,
    "state": state,
    "call": call,
    "cluster": cluster,
}


def main(argv: Sequence[str] | None = None, *, out: TextIO | None = None) -> int:
    """Run the command line; returns the process exit code."""
    out = out or sys.stdout
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "version":
        print(f"perdure {perdure.__version__}", file=out)
        return 0
    if args.command == "decode":
        return _decode(Path(args.file), out)
    if args.command == "server":
        return _server(args, list(argv) if argv is not None else sys.argv[1:])
    if args.command == "dev":
        return dev.run(args)
    if args.command in MANAGEMENT:
        code: int = MANAGEMENT[args.command].main(args, out)
        return code
    parser.print_help(out)
    return 2


def run() -> None:
    """Console-script entry point."""
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:  # the reader (e.g. `| head`) stopped early: not an error
        sys.stdout = None  # nothing left to flush at exit
        code = 0
    sys.exit(code)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="perdure", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("version", help="print perdure's version")
    decode = sub.add_parser(
        "decode",
        help="print the protocol messages of a framed byte stream or a recorded fixture (.json)",
    )
    decode.add_argument("file", help="a file of framed messages, or a golden fixture JSON file")
    server = sub.add_parser("server", help="run the perdure server (ingress, admin, engine)")
    add_server_flags(server)
    server.add_argument(
        "--workers",
        type=_positive,
        default=1,
        metavar="N",
        help="worker processes (1): N > 1 runs N workers sharing the ports, each owning a share "
        "of the partitions and its own store in the data dir (fixed when the data dir is created)",
    )
    node = server.add_argument_group("cluster (with --store postgresql://...; docs/scaling.md)")
    node.add_argument(
        "--node-name",
        metavar="NAME",
        help="run as a node of the cluster on the --store database, under this unique name "
        "($PERDURE_NODE_NAME)",
    )
    node.add_argument(
        "--advertise",
        metavar="HOST",
        help="the host the other nodes reach this one at, with the ingress and admin ports "
        "(default: the bind host, or this machine's name when bound to 0.0.0.0; "
        "$PERDURE_ADVERTISE)",
    )
    dev.add_parser(sub)
    for group in MANAGEMENT.values():
        group.add_parser(sub)
    return parser


def _positive(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 256:
        raise argparse.ArgumentTypeError(f"expected a whole number from 1 to 256, got {text!r}")
    return int(text)


def _server(args: argparse.Namespace, argv: list[str]) -> int:
    try:  # lazily: the server's modules are heavier than the other commands need
        from perdure.server import ServerConfig, serve  # noqa: PLC0415
    except ImportError as exc:  # a broken install
        print(f"perdure server: missing dependency {exc.name}; reinstall perdure "
              "(pip install -U perdure)", file=sys.stderr)  # fmt: skip
        return 1
    setup_logging(args)
    for bind in (args.ingress_bind, args.admin_bind):
        if split_bind(bind) is None:
            print(f"perdure server: bad address {bind!r}, expected HOST:PORT", file=sys.stderr)
            return 2
    try:
        inactivity = inactivity_ms(args)
        guards = protection(args)
        partitions = partition_count(args)
        store = store_url(args)
        cluster = _cluster(args, store)
    except FlagError as exc:
        print(f"perdure server: {exc}", file=sys.stderr)
        return 2
    config = ServerConfig(
        data_dir=Path(args.data_dir),
        store=store,
        ingress_bind=args.ingress_bind,
        admin_bind=args.admin_bind,
        inactivity_timeout=inactivity,
        ui=args.ui,
        protection=guards,
        partitions=partitions,
        workers=args.workers,
        cluster=cluster,
    )
    from perdure.gc_tuning import tune_gc  # noqa: PLC0415
    from perdure.server.partitions import PartitionCountMismatch  # noqa: PLC0415
    from perdure.server.routing.layout import LayoutError, claim  # noqa: PLC0415
    from perdure.server.routing.supervisor import Supervisor  # noqa: PLC0415
    from perdure.server.routing.worker import WorkerSpec, die_with_supervisor  # noqa: PLC0415
    from perdure.server.storage import SchemaError  # noqa: PLC0415
    from perdure.server.storage.lock import StoreInUse  # noqa: PLC0415
    from perdure.server.storage.postgres import StoreUnavailable  # noqa: PLC0415

    worker = WorkerSpec.from_env() if config.workers > 1 else None
    try:
        if worker is not None:
            die_with_supervisor(worker)
            tune_gc()
            asyncio.run(serve(config, worker=worker))
        elif config.workers > 1:
            return asyncio.run(Supervisor(config, config.workers, argv).run())
        else:
            claim(config.data_dir, 1)
            tune_gc()
            asyncio.run(serve(config))
    except (SchemaError, StoreInUse, LayoutError, PartitionCountMismatch, StoreUnavailable) as exc:
        print(f"perdure server: {exc}", file=sys.stderr)
        return 1
    return 0


def _cluster(args: argparse.Namespace, store: str | None) -> Any:
    """``--node-name``/``--advertise`` (or their environment variables), checked: the node's
    ``ClusterSettings``, None when this server is no cluster node."""
    try:
        from perdure.server.cluster.wiring import settings_from  # noqa: PLC0415
    except ImportError:
        if args.node_name is None and not os.environ.get("PERDURE_NODE_NAME"):
            return None
        raise FlagError(
            "--node-name needs the PostgreSQL driver: pip install 'perdure[postgres]'"
        ) from None

    try:
        settings = settings_from(args.node_name, args.advertise)
    except ValueError as exc:
        raise FlagError(str(exc)) from None
    if settings is None:
        return None
    if store is None:
        raise FlagError("--node-name: a cluster runs on PostgreSQL; add --store postgresql://...")
    if args.workers > 1:
        raise FlagError("--node-name and --workers N: run one node per process (start more "
                        "nodes instead of workers)")  # fmt: skip
    return settings


def _decode(path: Path, out: TextIO) -> int:
    try:
        data = path.read_bytes()
    except OSError as exc:
        print(f"perdure decode: cannot read {path}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        if path.suffix == ".json":
            _print_recording(json.loads(data), out)
        else:
            _print_stream(data, out, indent="")
    except (ProtocolError, ValueError, KeyError) as exc:
        print(f"perdure decode: {path}: {exc}", file=sys.stderr)
        return 1
    return 0


def _print_recording(recording: dict[str, object], out: TextIO) -> None:
    exchanges = recording["exchanges"]
    assert isinstance(exchanges, list)
    for number, exchange in enumerate(exchanges):
        print(
            f"#{number} {exchange['via']} {exchange['method']} {exchange['path']} "
            f"-> {exchange['status']}",
            file=out,
        )
        if exchange["via"] != "deployment" or not exchange["path"].rstrip("/").split("/")[-3:][
            0
        ].startswith("invoke"):
            continue
        print("  server -> sdk:", file=out)
        _print_stream(base64.b64decode(exchange["request_body"]), out, indent="    ")
        print("  sdk -> server:", file=out)
        _print_stream(base64.b64decode(exchange["response_body"]), out, indent="    ")


def _print_stream(data: bytes, out: TextIO, *, indent: str) -> None:
    for frame in decode_frames(data):
        body = MessageToDict(frame.message(), preserving_proto_field_name=True)
        flags = " [ack]" if frame.requested_ack else ""
        text = json.dumps(body, separators=(",", ":")) if body else ""
        print(f"{indent}0x{frame.type:04X} {frame.type.name}{flags} {text}".rstrip(), file=out)
