"""The flags ``perdure server`` and ``perdure dev`` share, defined once so they stay the same."""

from __future__ import annotations

import argparse
import logging


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=".perdure", help="storage directory (./.perdure)")
    parser.add_argument(
        "--ingress-bind", default="127.0.0.1:8080", help="ingress address (127.0.0.1:8080)"
    )
    parser.add_argument(
        "--admin-bind", default="127.0.0.1:9070", help="admin API address (127.0.0.1:9070)"
    )
    parser.add_argument(
        "--inactivity-timeout",
        default=None,
        help="how long an attempt may wait before the SDK is made to suspend, e.g. 1m or 0s "
        "(default 1m; 0s replays every handler at every await)",
    )
    parser.add_argument(
        "--no-ui", dest="ui", action="store_false", help="do not serve the web UI at the admin /ui"
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning (info)")


class FlagError(Exception):
    """A flag's value is unusable; the message names the flag and what is expected."""


def inactivity_ms(args: argparse.Namespace) -> int | None:
    """``--inactivity-timeout`` in milliseconds (None: the server's default)."""
    if args.inactivity_timeout is None:
        return None
    from perdure.server.api.durations import DurationError, parse_duration  # noqa: PLC0415

    try:
        return parse_duration(args.inactivity_timeout)
    except DurationError as exc:
        raise FlagError(f"--inactivity-timeout: {exc}") from None


def setup_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
