"""The ingress HTTP API (Restate 1.7): calls, sends, attach/output, awakeables, health.

Thin: parse and validate the request, hand one event to the engine, answer with the official
status codes, headers (``x-restate-id``, ``x-restate-error-source``) and JSON error bodies.
"""

from __future__ import annotations

import datetime
import json
import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from perdure.protocol import (
    AwakeableId,
    HandlerManifest,
    InvalidIdError,
    InvocationId,
    partition_key_of,
)
from perdure.server.api.durations import DurationError, parse_duration
from perdure.server.api.http import (
    BodyTooLarge,
    Receive,
    Request,
    Response,
    Scope,
    Send,
    lifespan,
    read_request,
    write_response,
)
from perdure.server.api.metadata import rfc3339
from perdure.server.api.openapi import ingress_document
from perdure.server.api.targets import (
    ByIdempotencyKey,
    ByInvocationId,
    ByWorkflow,
    LookupTarget,
    TargetError,
    invocation_id_of,
    parse_invocation_id,
    parse_target_body,
)
from perdure.server.engine.requests import InvokeRequest
from perdure.server.records import Result, Status
from perdure.server.registry import Service

if TYPE_CHECKING:
    from perdure.server.engine.driver import Engine

log = logging.getLogger("perdure.server.ingress")
_DROPPED_HEADERS = {"connection", "host", "idempotency-key", "idempotency-expires",
                    "x-perdure-forwarded"}  # fmt: skip


def error(status: int, message: str, *, source: str = "ingress",
          headers: list[tuple[str, str]] | None = None) -> Response:  # fmt: skip
    return Response.json(
        status,
        {"code": status, "message": message, "source": source},
        [("x-restate-error-source", source), *(headers or [])],
    )


def internal_error(exc: Exception) -> str:
    return f"internal error ({type(exc).__name__}); the server's log has the details"


def expires_header(ms: int) -> str:
    """``idempotency-expires``: RFC 3339 with milliseconds and ``+00:00``, as the official server
    writes it (unlike ``executionTime`` in a send's answer, which has nanoseconds and ``Z``)."""
    moment = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.UTC)
    moment += datetime.timedelta(milliseconds=ms % 1000)
    return moment.isoformat(timespec="milliseconds")


def result_response(
    invocation_id: InvocationId,
    result: Result,
    handler: HandlerManifest | None,
    *,
    expires_at: int | None = None,
) -> Response:
    headers = [("x-restate-id", str(invocation_id))]
    if expires_at is not None:
        headers.append(("idempotency-expires", expires_header(expires_at)))
    if not result.ok:
        code = result.failure_code or 500
        status = code if 100 <= code <= 999 else 500
        body: dict[str, Any] = {"code": code, "message": result.failure_message}
        if result.failure_metadata:
            body["metadata"] = dict(result.failure_metadata)
        body["source"] = "invocation"
        return Response.json(status, body, [("x-restate-error-source", "invocation"), *headers])
    value = result.value or b""
    output = handler.output if handler is not None else None
    if output is None:
        content_type: str | None = "application/json"
        if_empty = False
    else:
        content_type, if_empty = output.content_type, bool(output.set_content_type_if_empty)
    if content_type is not None and (value or if_empty):
        headers.append(("content-type", content_type))
    return Response(200, value, headers)


def _content_type_matches(pattern: str, content_type: str) -> bool:
    want = pattern.split(";", 1)[0].strip().lower()
    got = content_type.split(";", 1)[0].strip().lower()
    if want in ("*/*", got):
        return True
    if want.endswith("/*"):
        return got.startswith(want[:-1])
    return False


def input_error(handler: HandlerManifest, content_type: str | None, body: bytes) -> str | None:
    """Why a request body does not fit the handler's input rules (None when it does)."""
    spec = handler.input
    empty_ok = not body and content_type is None
    if spec is None:
        return None if empty_ok or content_type is not None else "a body needs a content-type"
    if spec.required is None and spec.content_type is None and spec.json_schema is None:
        return None if empty_ok else "the handler takes no input"
    if not spec.required and empty_ok:
        return None
    if spec.content_type is not None and content_type is not None:
        if _content_type_matches(spec.content_type, content_type):
            if spec.json_schema is None or body:
                return None
            return "a body is required"
        return f"expected content-type {spec.content_type!r}, got {content_type!r}"
    return f"expected content-type {spec.content_type or '*/*'!r}"


RouteHook = Callable[[int, Request], Awaitable[Response | None]]
"""Given a request's partition key: the owner's answer when another process owns it, None to
handle it here (see ``perdure.server.routing``)."""


class Ingress:
    def __init__(self, engine: Engine, route: RouteHook | None = None) -> None:
        self.engine = engine
        self.route = route
        """Set when partitions are spread over processes: requests go to their owner."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            request = await read_request(scope, receive)
        except BodyTooLarge:
            await write_response(send, error(413, "the request body is too large"))
            return
        try:
            response = await self.handle(request)
        except ConnectionAbortedError:
            raise  # a forwarded request whose owner died: the client sees a broken connection
        except Exception as exc:
            # The last resort: no input should get here (each is answered 4xx before), and the
            # client sees what kind of failure it was, never a traceback.
            log.exception("ingress request %s %s failed", scope["method"], scope["path"])
            response = error(500, internal_error(exc))
        await write_response(send, response)

    # -- routing -------------------------------------------------------------------------------

    async def handle(self, request: Request) -> Response:
        path = request.raw_path.rstrip("/")
        slashes = path.count("/")
        if not 2 <= slashes <= 7 and path not in ("/openapi", "/restate"):
            return error(400, f"bad path: {request.raw_path}")
        segments = path.split("/")[1:]
        first = segments[0]
        if first == "openapi":
            if path == "/openapi" and request.method == "GET":
                return Response.json(200, ingress_document(self.engine.registry))
            return error(404, "not found")
        if first == "restate":
            return await self._restate(request, segments[1:])
        return await self._service(request, segments, send_prefix=None)

    async def _restate(self, request: Request, rest: list[str]) -> Response:
        head = rest[0] if rest else ""
        if head == "health" and len(rest) == 1:
            services = sorted(self.engine.registry.services)
            return Response.json(200, {"services": services})
        if head in ("awakeables", "a") and len(rest) == 3 and rest[2] in ("resolve", "reject"):
            return await self._awakeable(request, rest[1], rest[2])
        if head == "invocation" and len(rest) >= 3 and rest[-1] in ("attach", "output"):
            if request.method != "GET":
                return error(405, "method not allowed")
            return await self._invocation_path(request, rest[1:-1], rest[-1])
        if head == "workflow" and len(rest) in (3, 4) and rest[-1] in ("attach", "output"):
            if request.method != "GET":
                return error(405, "method not allowed")
            if len(rest) == 3:
                return error(400, _BAD_WORKFLOW_PATH)
            key = _decode(rest[2])
            if key is None:
                return error(400, "bad path, cannot decode key: invalid UTF-8")
            return await self._located(request, ByWorkflow(rest[1], key), rest[3])
        if head in ("attach", "output", "lookup"):
            return await self._by_target(request, head, rest[1:])
        if head in ("call", "send") and len(rest) >= 3:
            return await self._service(request, rest[1:], send_prefix=head == "send")
        return error(404, "not found")

    async def _service(
        self, request: Request, segments: list[str], *, send_prefix: bool | None
    ) -> Response:
        name = segments[0]
        service = self.engine.registry.service(name)
        if service is None:
            return error(404, _service_not_found(name))
        rest = segments[1:]
        keyed = service.ty != "SERVICE"
        is_send = bool(send_prefix)
        # A trailing "send" is the one-way suffix only after a complete target: /Svc/send calls
        # the handler named "send", /Svc/send/send sends to it.
        if send_prefix is None and len(rest) == (3 if keyed else 2) and rest[-1] == "send":
            is_send = True
            rest = rest[:-1]
        if keyed:
            if len(rest) != 2:
                return error(
                    400,
                    "bad path, expected either /:service-name/:handler or "
                    "/:object-name/:object-key/:handler",
                )
            decoded = _decode(rest[0])
            if decoded is None:
                return error(400, "bad object key: invalid UTF-8")
            key, handler_name = decoded, rest[1]
        else:
            if len(rest) != 1:
                return error(
                    400,
                    "bad path, expected either /:service-name/:handler or "
                    "/:object-name/:object-key/:handler",
                )
            key, handler_name = "", rest[0]
        return await self._invoke(request, service, key, handler_name, is_send)

    # -- call and send -------------------------------------------------------------------------

    async def _invoke(
        self, request: Request, service: Service, key: str, handler_name: str, is_send: bool
    ) -> Response:
        handler = service.handler(handler_name)
        if handler is None:
            return error(
                404,
                f"the service '{service.name}' exists, but the handler '{handler_name}' was not "
                "found, check that the handler exists in the latest registered service version.",
            )
        if not service.public(handler):
            return error(400, "the invoked service is not public")
        idempotency_key = request.header("idempotency-key")
        if idempotency_key is not None:
            if service.handler_type(handler) == "WORKFLOW":
                return error(
                    400,
                    "cannot use the idempotency key with workflow handlers. You can invoke "
                    "workflow handlers without idempotency key, the workflow ID already "
                    "guarantees idempotency.",
                )
            if not idempotency_key or not all(0x20 <= ord(c) < 0x7F for c in idempotency_key):
                return error(400, "bad idempotency-key header: it must be visible ASCII")
        if request.method not in ("GET", "POST"):
            return error(405, "method not allowed")
        problem = input_error(handler, request.header("content-type"), request.body)
        if problem is not None:
            return error(400, f"input validation error: {problem}")
        delay_ms: int | None = None
        query = request.query()
        if "delay" in query:
            try:
                delay_ms = parse_duration(query["delay"])
            except DurationError as exc:
                return error(400, f"bad delay query parameter, must be a ISO8601 duration: {exc}")
        if delay_ms is not None and not is_send:
            return error(
                400,
                "cannot use the delay query parameter with calls. The delay is supported only "
                "with sends.",
            )
        if self.route is not None:
            pk = _partition_key(service, handler, key, idempotency_key)
            if pk is not None and (forwarded := await self.route(pk, request)) is not None:
                return forwarded
        path_and_query = request.raw_path + (
            f"?{request.query_string}" if request.query_string else ""
        )
        headers = [(k, v) for k, v in request.headers if k not in _DROPPED_HEADERS]
        headers.append(("x-restate-ingress-path", path_and_query))
        engine = self.engine
        now = engine.clock.now_ms()
        invoke = InvokeRequest(
            service=service.name,
            handler=handler.name,
            key=key,
            body=request.body,
            headers=headers,
            idempotency_key=idempotency_key,
            execution_time=now + delay_ms if delay_ms else None,
            send=is_send,
        )
        outcome = engine.run(lambda core: core.invoke(invoke))
        if is_send:
            await engine.durable()
            body: dict[str, Any] = {
                "invocationId": str(outcome.invocation_id),
                "status": "PreviouslyAccepted" if outcome.previously_accepted else "Accepted",
            }
            if outcome.execution_time is not None:
                body["executionTime"] = rfc3339(outcome.execution_time)
            return Response.json(202, body, [("x-restate-id", str(outcome.invocation_id))])
        if outcome.result is not None:
            await engine.durable()
            return result_response(
                outcome.invocation_id, outcome.result, handler, expires_at=outcome.expires_at
            )
        waiter = engine.wait_for(outcome.invocation_id)
        result, _ = await waiter
        return result_response(outcome.invocation_id, result, handler)

    # -- attach, output and lookup -------------------------------------------------------------

    async def _by_target(self, request: Request, what: str, rest: list[str]) -> Response:
        """``/restate/attach|output/{id}`` (GET) and ``/restate/attach|output|lookup`` (POST)."""
        if len(rest) > 1 or (what == "lookup" and rest):
            return error(400, _BAD_RESTATE_PATH)
        if request.method != ("GET" if rest else "POST"):
            return error(405, "method not allowed")
        try:
            target = (
                ByInvocationId(parse_invocation_id(rest[0]))
                if rest
                else parse_target_body(request.body)
            )
        except TargetError as exc:
            return error(exc.status, exc.message)
        if what == "lookup":
            return Response.json(200, {"invocationId": str(invocation_id_of(target))})
        return await self._located(request, target, what)

    async def _invocation_path(self, request: Request, parts: list[str], mode: str) -> Response:
        """``/restate/invocation/{id}`` or ``/{service}[/{key}]/{handler}/{idempotency key}``.

        The object key is percent-decoded, the idempotency key is not (as the official server).
        """
        if len(parts) == 1:
            try:
                target = ByInvocationId(parse_invocation_id(parts[0]))
                return await self._located(request, target, mode)
            except TargetError as exc:
                return error(exc.status, exc.message)
        service = self.engine.registry.service(parts[0])
        if service is None:
            return error(404, _service_not_found(parts[0]))
        wanted = 4 if service.ty != "SERVICE" else 3
        if len(parts) < wanted:
            return error(400, _BAD_INVOCATION_PATH)
        if len(parts) > wanted:
            return error(404, "not found")
        if wanted == 3:
            by_key = ByIdempotencyKey(parts[0], parts[1], parts[2])
            return await self._located(request, by_key, mode)
        key = _decode(parts[1])
        if key is None:
            return error(400, "bad path, cannot decode key: invalid UTF-8")
        by_key = ByIdempotencyKey(parts[0], parts[2], parts[3], key=key)
        return await self._located(request, by_key, mode)

    def _handler_for(self, target: LookupTarget, inv_service: str | None,
                     inv_handler: str | None) -> HandlerManifest | None:  # fmt: skip
        """The handler whose output rules (content-type) an answer follows: the latest one."""
        match target:
            case ByWorkflow(workflow):
                return self._handler_of_run(workflow)
            case ByIdempotencyKey(service=service, handler=handler):
                name, handler_name = service, handler
            case _:
                if inv_service is None or inv_handler is None:
                    return None
                name, handler_name = inv_service, inv_handler
        registered = self.engine.registry.service(name)
        return registered.handler(handler_name) if registered is not None else None

    def _handler_of_run(self, workflow: str) -> HandlerManifest | None:
        service = self.engine.registry.service(workflow)
        if service is None:
            return None
        return next(
            (h for h in service.manifest.handlers if service.handler_type(h) == "WORKFLOW"), None
        )

    async def _located(self, request: Request, target: LookupTarget, mode: str) -> Response:
        """Attach to (wait for) or read the output of the target's invocation.

        Output answers 404 for an unknown invocation and 470 while it runs; attach answers 404
        from the "invocation" source (as the official server: the lookup fails like an
        invocation would) and otherwise waits. ``idempotency-expires`` goes only on a stored
        result, not on one that arrives while waiting.
        """
        engine = self.engine
        invocation_id = invocation_id_of(target)
        if self.route is not None:
            forwarded = await self.route(invocation_id.partition_key, request)
            if forwarded is not None:
                return forwarded
        await engine.durable()
        inv = engine.invocation(invocation_id)
        if inv is None:
            if mode == "attach":
                return error(
                    404, "not found", source="invocation",
                    headers=[("x-restate-id", str(invocation_id))],
                )  # fmt: skip
            return error(404, "invocation not found")
        handler = self._handler_for(target, inv.service, inv.handler)
        if inv.status is Status.COMPLETED and inv.result is not None:
            await engine.durable()  # events applied since the first wait may not be committed
            return result_response(invocation_id, inv.result, handler, expires_at=inv.expires_at)
        if mode == "output":
            return error(470, "the invocation exists but has not completed yet")
        result, _ = await engine.wait_for(invocation_id)
        return result_response(invocation_id, result, handler)

    # -- awakeables ----------------------------------------------------------------------------

    async def _awakeable(self, request: Request, text: str, action: str) -> Response:
        if request.method != "POST":
            return error(405, "method not allowed")
        try:
            awakeable = AwakeableId.parse(text)
        except InvalidIdError as exc:
            return error(400, f"bad awakeable id {text!r}: {exc}")
        if awakeable.legacy:
            return error(400, f"bad awakeable id {text!r}: prom_1 ids are not supported")
        if self.route is not None:
            forwarded = await self.route(awakeable.invocation_id.partition_key, request)
            if forwarded is not None:
                return forwarded
        if action == "resolve":
            result = Result(value=request.body)
        else:
            result = Result.failure(500, request.body.decode("utf-8", errors="replace"))
        self.engine.run(
            lambda core: core.signal(
                awakeable.invocation_id, index=awakeable.signal_index, result=result
            )
        )
        await self.engine.durable()
        return Response(202)


def _partition_key(
    service: Service, handler: HandlerManifest, key: str, idempotency_key: str | None
) -> int | None:
    """The partition key of the invocation a call or send creates (its id's), or None for a
    plain call of a service: its id is new, so any partition will do (the engine picks one it
    owns)."""
    if service.ty != "SERVICE":
        return partition_key_of(key)  # objects and workflows, with or without idempotency key
    if idempotency_key is not None:
        inv = InvocationId.for_idempotent_request(service.name, handler.name, idempotency_key)
        return inv.partition_key
    return None


def _service_not_found(name: str) -> str:
    return f"service '{name}' not found, make sure to register the service before calling it."


_BAD_WORKFLOW_PATH = (
    "bad path, expected either /restate/workflow/:workflow_name/:workflow_key/output or "
    "/restate/workflow/:workflow_name/:workflow_key/attach"
)
_BAD_INVOCATION_PATH = (
    "bad path, expected either /restate/invocation/:invocation_id/output or "
    "/restate/invocation/:invocation_id/attach or "
    "/restate/invocation/:invocation_target/:idempotency_key/output or "
    "/restate/invocation/:invocation_target/:idempotency_key/attach"
)
_BAD_RESTATE_PATH = (
    "bad path, expected /restate/call/:service/:handler, /restate/send/:service/:handler, "
    "/restate/scope/:scope/call/:service/:handler, /restate/attach/:invocation_id, "
    "/restate/output/:invocation_id, or /restate/lookup"
)


def _decode(segment: str) -> str | None:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError:
        return None


def parse_json(body: bytes) -> Any:
    return json.loads(body)
