"""The flags ``perdure server`` and ``perdure dev`` share, defined once so they stay the same."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from perdure.server.app import Protection

# Each security flag and the environment variable that stands in when the flag is not given.
_ENV = {
    "request_identity_private_key_pem_file": "PERDURE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE",
    "admin_token_file": "PERDURE_ADMIN_TOKEN_FILE",
    "ingress_token_file": "PERDURE_INGRESS_TOKEN_FILE",
    "allowed_host": "PERDURE_ALLOWED_HOSTS",
}
STORE_ENV = "PERDURE_STORE"


def add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=".perdure", help="storage directory (./.perdure)")
    parser.add_argument(
        "--store",
        metavar="URL",
        default=None,
        help="store durable state in PostgreSQL: postgresql://USER[:PASSWORD]@HOST:PORT/DB "
        f"(${STORE_ENV}; default: SQLite in the data directory, which then holds only a "
        "working copy)",
    )
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
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        metavar="N",
        help="how many partitions a new store is cut into (16); fixed when the store is created",
    )
    parser.add_argument("--log-level", default="info", help="debug, info, warning (info)")
    security = parser.add_argument_group("security (see docs/security.md)")
    security.add_argument(
        "--request-identity-private-key-pem-file",
        metavar="PEM",
        help="sign every request to a deployment with this Ed25519 key (PKCS#8 PEM), as Restate "
        "does; deployments verify it with identity_keys "
        f"(${_ENV['request_identity_private_key_pem_file']})",
    )
    security.add_argument(
        "--admin-token-file",
        metavar="FILE",
        help="the admin API needs 'Authorization: Bearer <token in FILE>' "
        f"(${_ENV['admin_token_file']})",
    )
    security.add_argument(
        "--ingress-token-file",
        metavar="FILE",
        help="the ingress needs 'Authorization: Bearer <token in FILE>' "
        f"(${_ENV['ingress_token_file']})",
    )
    security.add_argument(
        "--allowed-host",
        metavar="NAME",
        action="append",
        help="a name clients may use in Host besides localhost, IP addresses and the bound host; "
        f"repeatable; * allows any (${_ENV['allowed_host']}, comma-separated)",
    )


class FlagError(Exception):
    """A flag's value is unusable; the message names the flag and what is expected."""


def partition_count(args: argparse.Namespace) -> int | None:
    """``--partitions``, checked (None: the store's count, or the default for a new store)."""
    if args.partitions is None:
        return None
    from perdure.server.partitions import check_count  # noqa: PLC0415

    try:
        return check_count(args.partitions)
    except ValueError as exc:
        raise FlagError(f"--partitions: {exc}") from None


def inactivity_ms(args: argparse.Namespace) -> int | None:
    """``--inactivity-timeout`` in milliseconds (None: the server's default)."""
    if args.inactivity_timeout is None:
        return None
    from perdure.server.api.durations import DurationError, parse_duration  # noqa: PLC0415

    try:
        return parse_duration(args.inactivity_timeout)
    except DurationError as exc:
        raise FlagError(f"--inactivity-timeout: {exc}") from None


def store_url(args: argparse.Namespace) -> str | None:
    """``--store`` (or $PERDURE_STORE), checked: None means SQLite in the data directory."""
    url = getattr(args, "store", None)
    if url is None:
        url = os.environ.get(STORE_ENV) or None
    if url is None:
        return None
    if not url.startswith(("postgresql://", "postgres://")):
        raise FlagError(
            f"--store: {url!r} is not a PostgreSQL URL; expected "
            "postgresql://USER[:PASSWORD]@HOST:PORT/DATABASE"
        )
    return str(url)


def protection(args: argparse.Namespace) -> Protection:
    """The security flags (or their environment variables) read and checked."""
    from perdure.protocol.identity import IdentityError, SigningKey  # noqa: PLC0415
    from perdure.server.app import Protection  # noqa: PLC0415

    def given(name: str) -> str | None:
        value = getattr(args, name, None)
        return value if value is not None else os.environ.get(_ENV[name]) or None

    key = None
    key_file = given("request_identity_private_key_pem_file")
    if key_file is not None:
        try:
            key = SigningKey.from_pem(Path(key_file).read_bytes(), key_file)
        except OSError as exc:
            raise FlagError(
                f"--request-identity-private-key-pem-file: cannot read {key_file}: {exc.strerror}"
            ) from None
        except IdentityError as exc:
            raise FlagError(f"--request-identity-private-key-pem-file: {exc}") from None
    hosts = getattr(args, "allowed_host", None)
    if hosts is None:
        hosts = [h for h in os.environ.get(_ENV["allowed_host"], "").split(",") if h.strip()]
    return Protection(
        admin_token=_token(given("admin_token_file"), "--admin-token-file"),
        ingress_token=_token(given("ingress_token_file"), "--ingress-token-file"),
        allowed_hosts=tuple(h.strip() for h in hosts),
        identity_key=key,
    )


def _token(path: str | None, flag: str) -> str | None:
    if path is None:
        return None
    try:
        token = Path(path).read_text().strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise FlagError(f"{flag}: cannot read {path}: {exc}") from None
    if not token or not token.isascii() or not token.isprintable() or " " in token:
        raise FlagError(f"{flag}: {path} must hold one token: printable ASCII, without spaces")
    return token


def setup_logging(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
