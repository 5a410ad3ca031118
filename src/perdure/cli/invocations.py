"""``perdure invocations list|describe|cancel|kill|purge|pause|resume``.

Reads go through ``/query`` (the same SQL on perdure's SQLite views and Restate's DataFusion);
operations are ``PATCH /invocations/{id}/{op}``, one per id, with the server's message and the
invocation's current status when one is refused.
"""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from rich.progress import Progress

from perdure.cli.admin_client import AdminClient, CliError, sql_string
from perdure.cli.common import management_flags, run
from perdure.cli.render import Output

OPERATIONS = ("cancel", "kill", "purge", "pause", "resume")
_LIST_COLUMNS = (
    "id",
    "target",
    "status",
    "created_at",
    "modified_at",
    "retry_count",
    "last_failure",
    "completion_result",
    "invoked_by_id",
    "idempotency_key",
)


def add_parser(sub: Any) -> None:
    flags = management_flags()
    parser = sub.add_parser("invocations", help="list, inspect and manage invocations")
    actions = parser.add_subparsers(dest="action", required=True)
    ls = actions.add_parser("list", parents=[flags], help="list invocations (not completed)")
    ls.add_argument("--service", help="only this service's invocations")
    ls.add_argument("--status", help="only this status (running, suspended, pending, ...)")
    ls.add_argument("--all", action="store_true", help="include completed invocations")
    ls.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    describe = actions.add_parser("describe", parents=[flags], help="an invocation and its journal")
    describe.add_argument("id")
    for op in OPERATIONS:
        p = actions.add_parser(op, parents=[flags], help=f"{op} invocations by id")
        p.add_argument("ids", nargs="+", metavar="ID")


def main(args: argparse.Namespace, out: Any) -> int:
    commands = {"list": _list, "describe": _describe}
    return run(commands.get(args.action, _operate), args, out)


def _list(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    where = []
    if args.service:
        where.append(f"target_service_name = {sql_string(args.service)}")
    if args.status:
        where.append(f"status = {sql_string(args.status)}")
    elif not args.all:
        where.append("status != 'completed'")
    condition = f" WHERE {' AND '.join(where)}" if where else ""
    sql = (
        f"SELECT {', '.join(_LIST_COLUMNS)} FROM sys_invocation{condition}"
        f" ORDER BY created_at DESC LIMIT {int(args.limit)}"
    )
    rows = client.query(sql)
    total = _total(client, condition) if len(rows) >= args.limit else len(rows)
    if output.as_json:
        output.json(rows)
    else:
        _table(rows, output)
    if total > len(rows):
        note = f"showing {len(rows)} of {total} invocations (the newest); --limit N shows more"
        if output.terminal:
            output.markup(f"[dim]{note}[/]")
        else:  # on stderr: the rows on stdout stay easy to parse
            print(note, file=sys.stderr)
    return 0


def _total(client: AdminClient, condition: str) -> int:
    """How many invocations match, as a JSON COUNT query (perdure's /query answers JSON only;
    the official server answers JSON too, so one query serves both)."""
    rows = client.query(f"SELECT COUNT(*) AS total FROM sys_invocation{condition}")
    return int(rows[0]["total"]) if rows else 0


def _table(rows: list[dict[str, Any]], output: Output) -> None:
    output.table(
        ("id", "target", "status", "created", "retries", "last failure"),
        [
            (
                r["id"],
                r["target"],
                r["status"],
                r.get("created_at"),
                r.get("retry_count", 0),
                _short(r.get("last_failure")),
            )
            for r in rows
        ],
    )


def _short(text: str | None, width: int = 60) -> str:
    if not text:
        return ""
    first = text.splitlines()[0]
    return first if len(first) <= width else first[: width - 1] + "…"


def _describe(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    rows = client.query(f"SELECT * FROM sys_invocation WHERE id = {sql_string(args.id)}")
    if not rows:
        raise CliError(
            f"invocation {args.id} not found (completed invocations are kept only "
            "for their retention; `perdure invocations list --all` shows what exists)"
        )
    invocation = rows[0]
    journal = client.query(
        "SELECT index, entry_type, name, appended_at, entry_lite_json FROM sys_journal "
        f"WHERE id = {sql_string(args.id)} ORDER BY index"
    )
    entries = [_entry(e, invocation.get("created_at")) for e in journal]
    if output.as_json:
        output.json({"invocation": invocation, "journal": entries})
        return 0
    output.markup(
        f"[bold]{invocation['id']}[/]  {invocation['target']}  "
        f"status: [bold]{invocation['status']}[/]"
    )
    for field in (
        "created_at",
        "modified_at",
        "completed_at",
        "invoked_by",
        "invoked_by_id",
        "idempotency_key",
        "pinned_deployment_id",
        "retry_count",
        "next_retry_at",
        "completion_result",
        "completion_failure",
        "last_failure",
    ):
        if invocation.get(field) is not None:
            output.line(f"  {field}: {_short(str(invocation[field]), 200)}")
    output.line("journal:")
    output.table(
        ("index", "at", "entry", "name", "detail"),
        [(e["index"], e["at"], e["entry_type"], e["name"], e["detail"]) for e in entries],
    )
    return 0


def _parse_ts(text: str | None) -> datetime.datetime | None:
    if not text:
        return None
    try:
        return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def _entry(row: dict[str, Any], started: str | None) -> dict[str, Any]:
    """One timeline row: when (relative to the start), what, and what it waits on or returned."""
    start, at = _parse_ts(started), _parse_ts(row.get("appended_at"))
    offset = f"+{(at - start).total_seconds():.3f}s" if start and at else ""
    return {
        "index": row["index"],
        "at": offset,
        "entry_type": row.get("entry_type", ""),
        "name": row.get("name", ""),
        "detail": _detail(row.get("entry_lite_json")),
    }


def _detail(lite: str | None) -> str:
    if not lite:
        return ""
    try:
        entry = json.loads(lite)
    except ValueError:
        return ""
    if "Command" in entry:
        [(_kind, body)] = entry["Command"].items() or [("", {})]
        body = body or {}
        target = body.get("invocation_target")
        if isinstance(target, dict):
            inner = (
                next(iter(target.values()))
                if len(target) == 1 and isinstance(next(iter(target.values())), dict)
                else target
            )
            parts = [inner.get("name"), inner.get("key"), inner.get("handler")]
            return "calls " + "/".join(str(p) for p in parts if p)
        if "wake_up_time" in body:
            wake = datetime.datetime.fromtimestamp(body["wake_up_time"] / 1000, tz=datetime.UTC)
            return f"sleeps until {wake:%Y-%m-%dT%H:%M:%S}Z"
        if "result" in body:
            return f"returns {body['result']}"
        if "key" in body:
            return f"key {body['key']}"
        return ""
    note = entry.get("Notification", {})
    result = note.get("result")
    ident = note.get("id", {})
    which = ", ".join(f"{k} {v}" for k, v in ident.items()) if isinstance(ident, dict) else ""
    return f"{which}: {result}" if result else which


def _operate(args: argparse.Namespace, client: AdminClient, output: Output) -> int:
    op = args.action
    results: list[dict[str, Any]] = []
    failed = 0
    # A bar for many ids on a terminal; it disappears when done, leaving one line per id.
    with Progress(console=output.console, transient=True,
                  disable=not (output.terminal and len(args.ids) > 1)) as bar:  # fmt: skip
        task = bar.add_task(op, total=len(args.ids))
        for invocation_id in args.ids:
            try:
                resp = client.request("PATCH", f"/invocations/{invocation_id}/{op}")
                results.append({"id": invocation_id, "ok": True, "status_code": resp.status_code})
                if not output.as_json:
                    done = "requested" if resp.status_code == 202 else "done"
                    output.line(f"{op} {invocation_id}: {done}")
            except CliError as exc:
                failed += 1
                message = _refusal(client, op, invocation_id, exc)
                results.append(
                    {"id": invocation_id, "ok": False, "status_code": exc.status, "error": message}
                )
                if not output.as_json:
                    output.line(f"{op} {invocation_id}: failed: {message}")
            bar.advance(task)
    if output.as_json:
        output.json(results)
    return 1 if failed else 0


def _refusal(client: AdminClient, op: str, invocation_id: str, exc: CliError) -> str:
    """The server's message, plus what to do about it."""
    if exc.status == 404:
        return f"{exc.message} (check the id with `perdure invocations list --all`)"
    if exc.status == 400:
        return f"{exc.message} (an invocation id looks like inv_1...)"
    if exc.status in (409, 425):
        try:
            rows = client.query(
                f"SELECT status FROM sys_invocation WHERE id = {sql_string(invocation_id)}"
            )
        except CliError:
            rows = []
        state = rows[0]["status"] if rows else "unknown"
        return f"{exc.message} (the invocation is {state}; cannot {op} it in that state)"
    return exc.message
