"""``POST /query`` of the admin API: SQL over Restate's system tables, answered as JSON.

The engine runs the query in a worker thread on a read-only snapshot of its own (see
``perdure.server.storage.query``), so a slow query never blocks the event loop; it is cut off
after ``QUERY_TIMEOUT`` seconds. The answer waits until what the query saw is durable.
perdure answers JSON only (``Accept: application/json``, the form Restate's CLI uses for rows);
it does not produce Arrow IPC streams.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from perdure.server.api.http import Request, Response
from perdure.server.api.json_body import JsonBodyError, parse_json_body
from perdure.server.storage import QueryError

if TYPE_CHECKING:
    from perdure.server.engine.driver import Engine

QUERY_TIMEOUT = 10.0


def _message(status: int, text: str) -> Response:
    return Response.json(status, {"message": text})


def _wants_json(accept: str | None) -> bool:
    if accept is None:
        return True
    kinds = {part.split(";", 1)[0].strip().lower() for part in accept.split(",")}
    return bool(kinds & {"application/json", "application/*", "*/*"})


Runner = Callable[[str, tuple[str, ...], float], list[dict[str, Any]]]
"""Runs (sql, live, timeout) in a worker thread; the engine's ``query`` unless given."""


async def query(
    request: Request, engine: Engine, live: Iterable[str], *, run: Runner | None = None
) -> Response:
    if not _wants_json(request.header("accept")):
        return _message(
            406,
            f"perdure answers /query only as JSON; send 'Accept: application/json' "
            f"(got {request.header('accept')!r}; Arrow IPC is not supported)",
        )
    try:
        body = parse_json_body(request.body or b"null")
    except JsonBodyError as exc:
        return _message(400, f'the body must be JSON {{"query": "<SQL>"}}: {exc}')
    sql = body.get("query") if isinstance(body, dict) else None
    if not isinstance(sql, str):
        return _message(400, 'the body must be JSON {"query": "<SQL>"}: missing field `query`')
    if run is None:
        run = lambda q, alive, timeout: engine.query(q, live=alive, timeout=timeout)  # noqa: E731
    runner = run
    try:
        rows = await asyncio.to_thread(runner, sql, tuple(live), QUERY_TIMEOUT)
    except QueryError as exc:
        return _message(400, f"invalid query: {exc}")
    await engine.durable()
    return Response.json(200, {"rows": [_finite(row) for row in rows]})


def _finite(row: dict[str, Any]) -> dict[str, Any]:
    """NaN and infinities have no JSON form: null, as the official server answers them."""
    return {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in row.items()}
