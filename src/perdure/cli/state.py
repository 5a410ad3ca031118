"""``perdure state get|set|clear``: read and edit one virtual object's or workflow's K/V state.

Reads query the ``state`` table through ``POST /query`` (the same SQL on perdure's views and
Restate's DataFusion). Edits are Restate's read-modify-write: read the key's state, compute its
version hash (http-api.md 3.6), and ``POST /services/{s}/state`` the whole new state with that
version, so an edit based on a stale read is refused instead of overwriting a concurrent change.
The server may accept an edit and apply it later (behind the key's lock, or asynchronously on
Restate's server, which drops a stale one silently), so an edit is confirmed by reading it back.
"""

from __future__ import annotations

import argparse
import base64
import json
import time
from dataclasses import dataclass
from typing import Any

from perdure.cli.admin_client import AdminClient, CliError, sql_string
from perdure.cli.common import management_flags, run
from perdure.cli.render import Output
from perdure.protocol.state_version import state_version as protocol_state_version

# How long an accepted edit may take to become visible before it is reported as not applied.
CONFIRM_SECONDS = 5.0
_UNFINISHED = ("pending", "ready", "running", "suspended", "backing-off", "paused")


def add_parser(sub: Any) -> None:
    flags = management_flags()
    parser = sub.add_parser("state", help="read and edit the state of a virtual object or workflow")
    actions = parser.add_subparsers(dest="action", required=True)
    get = actions.add_parser("get", parents=[flags], help="every state entry of one key")
    get.add_argument("service", help="a virtual object or workflow")
    get.add_argument("key", help="the object key or workflow id")
    get.add_argument("--bytes", choices=("hex", "base64"), default="hex",
                     help="how to print values that are not UTF-8 JSON (hex)")  # fmt: skip
    set_ = actions.add_parser("set", parents=[flags], help="set one state entry to a JSON value")
    set_.add_argument("service")
    set_.add_argument("key")
    set_.add_argument("state_key", help="the entry's name")
    set_.add_argument("value", metavar="JSON", help="the new value as JSON, e.g. 5 or '\"text\"'")
    clear = actions.add_parser("clear", parents=[flags], help="remove one entry, or all of them")
    clear.add_argument("service")
    clear.add_argument("key")
    clear.add_argument("state_key", nargs="?", help="the entry to remove (default: all)")
    for edit in (set_, clear):
        edit.add_argument(
            "--version",
            help="apply only if the state still has this version (from `state get --json`)",
        )


def main(args: argparse.Namespace, out: Any) -> int:
    commands = {"get": _get, "set": _set, "clear": _clear}
    return run(commands[args.action], args, out)


# -- the version hash -----------------------------------------------------------------------------


def state_version(state: dict[str, bytes]) -> str:
    """The version the admin API expects with an edit of this state."""
    return protocol_state_version((key.encode(), value) for key, value in state.items())


# -- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeyState:
    service: str
    key: str
    entries: dict[str, bytes]

    @property
    def version(self) -> str:
        return state_version(self.entries)


def _check_keyed(client: AdminClient, service: str) -> None:
    """Fail clearly unless ``service`` exists and has state (a virtual object or workflow)."""
    try:
        found = client.get(f"/services/{service}")
    except CliError as exc:
        if exc.status == 404:
            raise CliError(
                f"service {service!r} not found; `perdure services list` shows the registered ones",
                status=404,
            ) from None
        raise
    if found.get("ty") == "Service":
        raise CliError(
            f"{service} is a plain service: it has no state (only virtual objects and "
            "workflows have state, per object key or workflow id)"
        )


def read_state(client: AdminClient, service: str, key: str) -> KeyState:
    rows = client.query(
        "SELECT key, value FROM state "
        f"WHERE service_name = {sql_string(service)} AND service_key = {sql_string(key)} "
        "ORDER BY key"
    )
    entries = {row["key"]: bytes.fromhex(row.get("value", "")) for row in rows}
    return KeyState(service, key, entries)


def _as_json(value: bytes) -> tuple[bool, Any]:
    """(True, the value) when ``value`` is UTF-8 JSON, else (False, None)."""
    try:
        return True, json.loads(value.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return False, None


def _encode_bytes(value: bytes, encoding: str) -> str:
    return value.hex() if encoding == "hex" else base64.b64encode(value).decode()


def _get(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    _check_keyed(client, args.service)
    state = read_state(client, args.service, args.key)
    if output.as_json:
        values: dict[str, Any] = {}
        binary: dict[str, dict[str, str]] = {}
        for name, raw in state.entries.items():
            ok, value = _as_json(raw)
            if ok:
                values[name] = value
            else:
                binary[name] = {args.bytes: _encode_bytes(raw, args.bytes)}
        output.json({"service": args.service, "key": args.key, "version": state.version,
                     "state": values, "binary": binary})  # fmt: skip
        return 0
    if not state.entries:
        output.line(f"{args.service}/{args.key} has no state")
        return 0
    count = len(state.entries)
    output.markup(
        f"[bold]{args.service}/{args.key}[/]: {count} entr{'y' if count == 1 else 'ies'} "
        f"[dim](version {state.version})[/]"
    )
    rows = []
    for name, raw in state.entries.items():
        ok, value = _as_json(raw)
        shown = (
            json.dumps(value, ensure_ascii=False)
            if ok
            else f"({len(raw)} bytes, not JSON; {args.bytes}) {_encode_bytes(raw, args.bytes)}"
        )
        rows.append((name, shown))
    output.table(("key", "value"), rows)
    return 0


# -- editing --------------------------------------------------------------------------------------


def parse_json_argument(text: str) -> Any:
    """The user's JSON value, or a CliError that points at the problem and suggests quoting."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        hint = ""
        if text and text.strip()[:1] not in ('"', "{", "[") and exc.pos == 0:
            hint = f"; to store it as a string, quote it: '\"{text}\"'"
        raise CliError(
            f"{text!r} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
            f" (character {exc.pos}){hint}"
        ) from None


def _edit(
    args: argparse.Namespace,
    client: AdminClient,
    change: Any,
) -> tuple[KeyState, dict[str, bytes]]:
    """Read, change (``change(entries) -> new entries``), and write with the version; confirm."""
    _check_keyed(client, args.service)
    before = read_state(client, args.service, args.key)
    new_entries: dict[str, bytes] = change(dict(before.entries))
    version = args.version or before.version
    body = {
        "object_key": args.key,
        "version": version,
        "new_state": {name: list(value) for name, value in new_entries.items()},
    }
    try:
        client.request("POST", f"/services/{args.service}/state", json=body)
    except CliError as exc:
        if exc.status == 409:
            raise CliError(
                f"the state of {args.service}/{args.key} changed since it was read (version "
                f"{version}); nothing was written. Run `perdure state get {args.service} "
                f"{args.key}` to see the current state, then edit again",
                status=409,
            ) from None
        raise
    _confirm(client, args.service, args.key, new_entries)
    return before, new_entries


def _confirm(client: AdminClient, service: str, key: str, wanted: dict[str, bytes]) -> None:
    """Wait until the accepted edit is visible; say why when it does not show up."""
    deadline = time.monotonic() + CONFIRM_SECONDS
    while read_state(client, service, key).entries != wanted:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    else:
        return
    busy = client.query(
        "SELECT id FROM sys_invocation "
        f"WHERE target_service_name = {sql_string(service)} "
        f"AND target_service_key = {sql_string(key)} "
        f"AND status IN ({', '.join(sql_string(s) for s in _UNFINISHED)}) LIMIT 1"
    )
    if busy:
        raise CliError(
            f"the edit was accepted but waits behind invocation {busy[0]['id']}, which holds "
            f"{service}/{key}; it applies when that invocation ends (unless the state changes "
            "first). `perdure invocations describe` shows what it is doing",
            status=202,
        )
    raise CliError(
        f"the edit was accepted but not applied: the state of {service}/{key} changed "
        "concurrently (or --version was stale). Run `perdure state get` and edit again",
        status=409,
    )


def _set(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    value = parse_json_argument(args.value)
    encoded = json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()

    def change(entries: dict[str, bytes]) -> dict[str, bytes]:
        entries[args.state_key] = encoded
        return entries

    before, after = _edit(args, client, change)
    if output.as_json:
        output.json({"service": args.service, "key": args.key, "state_key": args.state_key,
                     "value": value, "version": state_version(after)})  # fmt: skip
        return 0
    old = before.entries.get(args.state_key)
    was = f" (was {old.decode('utf-8', errors='replace')})" if old is not None else ""
    output.line(f"set {args.service}/{args.key} {args.state_key} = {encoded.decode()}{was}")
    return 0


def _clear(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    def change(entries: dict[str, bytes]) -> dict[str, bytes]:
        if args.state_key is None:
            return {}
        if args.state_key not in entries:
            raise CliError(
                f"{args.service}/{args.key} has no entry {args.state_key!r} (it has: "
                f"{', '.join(sorted(entries)) or 'none'})"
            )
        del entries[args.state_key]
        return entries

    before, after = _edit(args, client, change)
    removed = sorted(set(before.entries) - set(after))
    if output.as_json:
        output.json({"service": args.service, "key": args.key, "removed": removed,
                     "version": state_version(after)})  # fmt: skip
        return 0
    if not removed:
        output.line(f"{args.service}/{args.key} had no state")
    else:
        output.line(f"cleared {args.service}/{args.key}: {', '.join(removed)}")
    return 0
