"""What a chaos run must satisfy once the faults are gone, checked against the server (attach to
every invocation by id, sys_invocation), the ledger and the client's records:

* every invocation the server knows completed successfully, none stuck;
* every accepted request has its invocation, completed once, with the right result;
* no request made two invocations (the ledger maps each tag to one invocation id);
* no acknowledged step ran twice (the rule in tests/chaos/ledger.py);
* each hot counter equals the sum of its completed adds;
* no 5xx and no transport error outside the server's kill windows.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.chaos import ledger
from tests.chaos.workload import CHAIN_DEPTH, HOT_KEYS, Exchange, Request


@dataclass
class Verdict:
    invocations: int = 0
    accepted: int = 0
    unknown: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    stuck: list[str] = field(default_factory=list)
    wrong: list[str] = field(default_factory=list)
    errors_outside_windows: list[str] = field(default_factory=list)
    reexecuted_steps: int = 0
    """Executions lost before their result was journaled (legitimate)."""

    @property
    def ok(self) -> bool:
        return not (
            self.lost or self.duplicated or self.stuck or self.wrong or self.errors_outside_windows
        )


async def query(admin: httpx.AsyncClient, sql: str) -> list[dict[str, Any]]:
    resp = await admin.post("/query", json={"query": sql}, headers={"accept": "application/json"})
    resp.raise_for_status()
    rows: list[dict[str, Any]] = resp.json()["rows"]
    return rows


async def wait_quiescent(admin: httpx.AsyncClient, timeout: float) -> list[dict[str, Any]]:
    """Poll until every invocation has completed; returns the ones still open at the deadline."""
    deadline = time.monotonic() + timeout
    sql = (
        "SELECT id, status, target, retry_count, last_failure FROM sys_invocation "
        "WHERE status != 'completed'"
    )
    while True:
        try:
            open_ = await query(admin, sql)
        except httpx.HTTPError:
            open_ = [{"id": "?", "status": "admin API unreachable"}]
        if not open_ or time.monotonic() > deadline:
            return open_
        await asyncio.sleep(0.5)


async def attach_all(ingress: str, ids: list[str]) -> dict[str, tuple[int | None, Any]]:
    """Attach to each invocation by id: (status, decoded output)."""
    results: dict[str, tuple[int | None, Any]] = {}
    gate = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=ingress, timeout=30.0) as http:

        async def one(inv: str) -> None:
            async with gate:
                try:
                    resp = await http.get(f"/restate/invocation/{inv}/attach")
                except httpx.HTTPError as exc:
                    results[inv] = (None, repr(exc))
                    return
                body = resp.json() if resp.content else None
                results[inv] = (resp.status_code, body)

        await asyncio.gather(*(one(i) for i in ids))
    return results


def outside(t: float, windows: list[tuple[float, float]]) -> bool:
    return not any(start <= t <= end for start, end in windows)


@dataclass
class Evidence:
    """What the server, the ledger and the attach calls say, gathered once."""

    rows: dict[str, dict[str, Any]]
    """sys_invocation by id"""
    records: list[dict[str, Any]]
    acked: dict[tuple[str, str], str]
    """(invocation, step) -> the acknowledged token"""
    invs_of_tag: dict[str, set[str]]
    outputs: dict[str, tuple[int | None, Any]]
    first_record_at: dict[str, float]
    """invocation -> wall-clock time of its first ledger record (when it started)"""


async def verify(
    *,
    ingress: str,
    admin_url: str,
    requests: list[Request],
    exchanges: list[Exchange],
    windows: list[tuple[float, float]],
    ledger_path: Any,
    stuck_timeout: float,
) -> Verdict:
    v = Verdict()
    async with httpx.AsyncClient(base_url=admin_url, timeout=30.0) as admin:
        for row in await wait_quiescent(admin, stuck_timeout):
            v.stuck.append(
                f"{row.get('id')} {row.get('target')} {row.get('status')} "
                f"retries={row.get('retry_count')} {row.get('last_failure')}"
            )
        rows = await query(
            admin,
            "SELECT id, status, target, target_service_name, "
            "target_service_key, target_handler_name, completion_result, "
            "completion_failure FROM sys_invocation",
        )
    v.invocations = len(rows)
    for r in rows:
        if r["status"] == "completed" and r.get("completion_result") != "success":
            v.wrong.append(f"{r['id']} {r['target']} failed: {r.get('completion_failure')}")
    evidence = await _gather(ingress, rows, ledger_path, v)
    for req in requests:
        _check_request(req, evidence, v)
    await _check_counters(ingress, requests, rows, evidence.records, v)
    for e in exchanges:
        if (e.status is None or e.status >= 500) and outside(e.t, windows):
            v.errors_outside_windows.append(f"{e.what}: {e.status or e.error}")
    return v


async def _gather(
    ingress: str, rows: list[dict[str, Any]], ledger_path: Any, v: Verdict
) -> Evidence:
    records = list(ledger.read(ledger_path))
    histories = ledger.step_histories(records)
    v.duplicated += ledger.step_violations(histories)
    v.reexecuted_steps = sum(len(h.executions) - 1 for h in histories.values() if h.acks)
    invs_of_tag: dict[str, set[str]] = defaultdict(set)
    for r in records:
        if r["kind"] in {"exec", "ack"}:
            invs_of_tag[r["tag"]].add(r["inv"])
    for tag, invs in sorted(invs_of_tag.items()):
        if len(invs) > 1:
            v.duplicated.append(f"request {tag} ran as {len(invs)} invocations: {sorted(invs)}")
    by_id = {r["id"]: r for r in rows}
    completed = [inv for inv, r in by_id.items() if r["status"] == "completed"]
    outputs = await attach_all(ingress, sorted(completed))  # the others are reported as stuck
    for inv, (status, body) in outputs.items():
        if status != 200 and by_id[inv].get("completion_result") == "success":
            v.wrong.append(f"attach to {inv}: {status} {body}")
    acked = {key: h.acks[0] for key, h in histories.items() if h.acks}
    first_record_at: dict[str, float] = {}
    for r in records:
        if "inv" in r:
            first_record_at.setdefault(r["inv"], r["t"])
    return Evidence(by_id, records, acked, invs_of_tag, outputs, first_record_at)


def _check_request(req: Request, ev: Evidence, v: Verdict) -> None:
    v.accepted += req.accepted
    v.unknown += req.unknown and not req.accepted
    for problem in req.problems:
        v.wrong.append(f"{req.tag}: {problem}")
    inv = req.invocation_id
    if inv is None and (req.accepted or req.unknown):
        found = ev.invs_of_tag.get(f"{req.tag}/{CHAIN_DEPTH}" if req.kind == "chain" else req.tag)
        inv = next(iter(found)) if found and len(found) == 1 else None
    if inv is None:
        if req.accepted:
            v.lost.append(f"{req.tag}: accepted, invocation id unknown, not in the ledger")
        return
    if inv not in ev.rows:
        v.lost.append(f"{req.tag}: {inv} accepted, unknown to the server")
        return
    if ev.rows[inv]["status"] != "completed":
        return  # reported as stuck
    _, output = ev.outputs.get(inv, (None, None))
    expected = _expected(req, inv, ev.acked)
    if expected is not _ANY and output != expected:
        v.wrong.append(f"{req.tag}: {inv} output {output!r}, expected {expected!r}")
    if req.response is not None and output != req.response:
        v.wrong.append(f"{req.tag}: the caller got {req.response!r}, attach {output!r}")
    if req.due is not None:
        started = ev.first_record_at.get(inv)
        if started is not None and started < req.due - 0.05:
            v.wrong.append(f"{req.tag}: delayed send ran {req.due - started:.2f}s early")


_ANY = object()


def _expected(req: Request, inv: str, acked: dict[tuple[str, str], str]) -> Any:
    if req.kind in {"call", "send", "delayed_send", "idempotent"}:
        steps = int(req.body["steps"])
        return {"tag": req.tag, "tokens": [acked.get((inv, f"s{i}")) for i in range(steps)]}
    if req.kind == "chain":
        return [f"{req.tag}/{d}" for d in range(CHAIN_DEPTH, -1, -1)]
    if req.kind == "workflow":
        return f"{req.tag}:clicked-{req.tag}"
    if req.kind == "awakeable":
        return f"{req.tag}:approved-{req.tag}"
    return _ANY  # a counter add answers the running total: checked by the counters


async def _check_counters(
    ingress: str,
    requests: list[Request],
    rows: list[dict[str, Any]],
    records: list[dict[str, Any]],
    v: Verdict,
) -> None:
    delta_of = {r.tag: int(r.body["delta"]) for r in requests if r.kind.startswith("counter")}
    tag_of = {r["inv"]: r["tag"] for r in records if r["kind"] in {"exec", "ack"}}
    async with httpx.AsyncClient(base_url=ingress, timeout=30.0) as http:
        for key in HOT_KEYS:
            adds = [
                r
                for r in rows
                if r["target_service_name"] == "Counter"
                and r.get("target_service_key") == key
                and r["target_handler_name"] == "add"
                and r.get("completion_result") == "success"
            ]
            deltas = [delta_of.get(tag_of.get(r["id"], ""), 0) for r in adds]
            try:
                state = (await http.post(f"/Counter/{key}/get", timeout=10.0)).json()
            except httpx.HTTPError as exc:
                v.wrong.append(f"counter {key}: {exc!r}")
                continue
            expected = {"total": sum(deltas), "count": len(adds)}
            if state != expected:
                v.duplicated.append(f"counter {key} is {state}, its completed adds make {expected}")
