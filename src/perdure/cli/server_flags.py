"""The flags ``perdure server`` and ``perdure dev`` share, defined once so they stay the same."""

from __future__ import annotations

import argparse


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
    parser.add_argument("--log-level", default="info", help="debug, info, warning (info)")
