"""The admin HTTP API (Restate 1.7): deployments, services, invocation management, health.

Every route is also served under ``/v2``, ``/v3`` and ``/v4`` (the CLI uses ``/v4``); ``/v1`` is
refused. Errors are ``{"message": ..., "restate_code": null}``.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import perdure
from perdure.protocol import DeploymentId, InvalidIdError, InvocationId, Manifest
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
from perdure.server.api.http_headers import header_problem
from perdure.server.api.ingress import internal_error
from perdure.server.api.json_body import JsonBodyError, parse_json_body
from perdure.server.api.metadata import (
    deployment_json,
    handler_json,
    rfc3339,
    service_json,
)
from perdure.server.api.openapi import admin_document, service_document
from perdure.server.api.query import query
from perdure.server.engine import registrations
from perdure.server.engine.deadlock import describe_cycle
from perdure.server.engine.state_edits import edit_state
from perdure.server.invoker.discovery import DiscoveryError, discover
from perdure.server.limits import MAX_LIST_LIMIT
from perdure.server.records import DeploymentRecord, Invocation, Status

if TYPE_CHECKING:
    from perdure.server.engine.driver import Engine
    from perdure.server.invoker.invoker import Invoker
    from perdure.server.routing.admin import AdminRouting

log = logging.getLogger("perdure.server.admin")


def error(status: int, message: str, code: str | None = None) -> Response:
    return Response.json(status, {"message": message, "restate_code": code})


_PATCHABLE_DURATIONS = (
    "idempotency_retention",
    "workflow_completion_retention",
    "journal_retention",
    "inactivity_timeout",
    "abort_timeout",
)


class Admin:
    def __init__(self, engine: Engine, invoker: Invoker, ingress_url: str) -> None:
        self.engine = engine
        self.invoker = invoker
        self.ingress_url = ingress_url
        self.routing: AdminRouting | None = None
        """Set when partitions are spread over processes: per-invocation actions go to the
        owner, listings cover every process, registry changes reach them all."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        try:
            request = await read_request(scope, receive)
            response = await self.handle(request)
        except BodyTooLarge:
            response = error(413, "the request body is too large")
        except ConnectionAbortedError:
            raise  # a forwarded request whose owner died: the client sees a broken connection
        except Exception as exc:
            # The last resort, as in the ingress: a logged 500 with a JSON body, no traceback.
            log.exception("admin request %s %s failed", scope["method"], scope["path"])
            response = error(500, internal_error(exc))
        await write_response(send, response)

    async def handle(self, request: Request) -> Response:
        parts = [p for p in request.path.split("/") if p]
        if parts and parts[0] in ("v2", "v3", "v4"):
            parts = parts[1:]
        elif parts and parts[0] == "v1":
            return error(400, "the admin API v1 is not supported")
        if self.routing is not None:
            return await self.routing.handle(parts, request, lambda: self._local(parts, request))
        return await self._local(parts, request)

    async def _local(self, parts: list[str], request: Request) -> Response:
        """``request`` answered from this process's engine alone."""
        method = request.method
        match parts:
            case ["health"] if method == "GET":
                return Response(200)
            case ["openapi"] if method == "GET":
                return Response.json(200, admin_document())
            case ["version"] if method == "GET":
                return Response.json(
                    200,
                    {
                        "version": perdure.__version__,
                        "min_admin_api_version": 2,
                        "max_admin_api_version": 4,
                        "ingress_endpoint": self.ingress_url.rstrip("/") + "/",
                        "features": {},
                    },
                )
            case ["deployments"] if method == "GET":
                registry = self.engine.registry
                return Response.json(
                    200,
                    {
                        "deployments": [
                            deployment_json(registry, d, detailed=False)
                            for d in registry.deployments.values()
                        ]
                    },
                )
            case ["deployments"] if method == "POST":
                return await self._register(request)
            case ["deployments", deployment_id] if method == "GET":
                deployment = self.engine.registry.deployments.get(deployment_id)
                if deployment is None:
                    return error(404, f"The requested deployment '{deployment_id}' does not exist")
                return Response.json(
                    200, deployment_json(self.engine.registry, deployment, detailed=True)
                )
            case ["deployments", deployment_id] if method == "DELETE":
                return await self._delete_deployment(request, deployment_id)
            case ["services"] if method == "GET":
                services = [service_json(s) for s in self.engine.registry.services.values()]
                return Response.json(200, {"services": services})
            case ["services", name, *rest]:
                return await self._service(request, name, rest)
            case ["query"] if method == "POST":
                live = [str(i) for i in self.invoker.attempts]
                return await query(request, self.engine, live)
            case ["invocations"] if method == "GET":
                return await self._list_invocations(request)
            case ["invocations", invocation_id, action] if method == "PATCH":
                return await self._manage(invocation_id, action)
            case ["invocations", invocation_id] if method == "DELETE":
                mode = request.query().get("mode", "cancel").lower()
                response = await self._manage(invocation_id, mode)
                return Response(202) if response.status < 300 else response
            case ["invocations", invocation_id] if method == "GET":
                return await self._describe(invocation_id)
        return error(404, f"not found: {method} {request.path}")

    # -- deployments ---------------------------------------------------------------------------

    async def _register(self, request: Request) -> Response:
        try:
            body = parse_json_body(request.body or b"null")
        except JsonBodyError as exc:
            return error(400, f"invalid JSON body: {exc}")
        if not isinstance(body, dict):
            return error(400, "the body must be a JSON object")
        uri = body.get("uri")
        if not isinstance(uri, str):
            if "arn" in body:
                return error(400, "Lambda deployments are not supported by perdure")
            return error(400, "missing field `uri`")
        try:
            uri = _normalize_uri(uri)
        except ValueError as exc:
            return error(400, f"bad uri {uri!r}: {exc}")
        use_http_11 = bool(body.get("use_http_11") or False)
        force = bool(body.get("force") or False)
        dry_run = bool(body.get("dry_run") or False)
        headers = body.get("additional_headers") or {}
        metadata = body.get("metadata") or {}
        if not isinstance(headers, dict) or not isinstance(metadata, dict):
            return error(400, "additional_headers and metadata must be JSON objects")
        for name, value in headers.items():
            problem = header_problem(name, value)
            if problem is not None:
                return error(400, f"bad additional_headers: {problem}")
        registry = self.engine.registry
        try:
            found = await discover(
                uri,
                use_http_11=use_http_11,
                additional_headers={str(k): str(v) for k, v in headers.items()},
                pool=self.invoker.pool,
                http11=self.invoker.http11,
                local=self.invoker.local,
                identity=self.invoker.identity,
            )
        except DiscoveryError as exc:
            return error(exc.status, exc.message, exc.code)
        manifest = found.manifest
        existing = next((d for d in registry.deployments.values() if d.record.uri == uri), None)
        for svc in manifest.services:
            current = registry.service(svc.name)
            if current is not None and current.ty != svc.ty.value and not force:
                return error(
                    409,
                    f"the service '{svc.name}' changes type from {current.ty} to "
                    f"{svc.ty.value}: a breaking change (register with force)",
                )
        if existing is not None and not force:
            if _same_services(existing.manifest, manifest):
                return self._registered(existing.id, 200)
            return error(
                409,
                f"a deployment with uri {uri} already exists with different services; "
                "register with force to overwrite it",
            )
        deployment_id = existing.id if existing is not None else str(DeploymentId.new())
        status = 200 if existing is not None else 201
        if dry_run:
            return Response.json(
                status,
                {
                    "id": deployment_id,
                    "services": [],
                    "min_protocol_version": manifest.min_protocol_version,
                    "max_protocol_version": manifest.max_protocol_version,
                },
            )
        record = DeploymentRecord(
            id=deployment_id,
            uri=uri,
            use_http_11=use_http_11,
            additional_headers={str(k): str(v) for k, v in headers.items()},
            metadata={str(k): str(v) for k, v in metadata.items()},
            protocol_mode=manifest.protocol_mode.value if manifest.protocol_mode else "",
            min_protocol_version=manifest.min_protocol_version,
            max_protocol_version=manifest.max_protocol_version,
            sdk_version=found.sdk_version,
            manifest=json.dumps(manifest.to_json()),
            created_at=self.engine.clock.now_ms(),
        )
        self.engine.run(lambda core: registrations.add_deployment(core, record, manifest))
        await self.engine.durable()
        log.info("registered deployment %s at %s: %s", deployment_id, uri,
                 ", ".join(s.name for s in manifest.services))  # fmt: skip
        return self._registered(deployment_id, status)

    def _registered(self, deployment_id: str, status: int) -> Response:
        registry = self.engine.registry
        deployment = registry.deployments[deployment_id]
        services = [
            service_json(s)
            for s in registry.services.values()
            if s.record.deployment_id == deployment_id
        ]
        body: dict[str, Any] = {
            "id": deployment_id,
            "services": services,
            "min_protocol_version": deployment.record.min_protocol_version,
            "max_protocol_version": deployment.record.max_protocol_version,
        }
        if deployment.record.sdk_version:
            body["sdk_version"] = deployment.record.sdk_version
        return Response.json(status, body, [("location", f"deployments/{deployment_id}")])

    async def _delete_deployment(self, request: Request, deployment_id: str) -> Response:
        if deployment_id not in self.engine.registry.deployments:
            try:
                DeploymentId.parse(deployment_id)
            except InvalidIdError as exc:
                return error(400, str(exc))
            return error(404, f"The requested deployment '{deployment_id}' does not exist")
        if request.query().get("force") != "true":
            return Response(501)
        self.engine.run(lambda core: registrations.remove_deployment(core, deployment_id))
        await self.engine.durable()
        return Response(202)

    # -- services ------------------------------------------------------------------------------

    async def _service(self, request: Request, name: str, rest: list[str]) -> Response:
        registry = self.engine.registry
        service = registry.service(name)
        if service is None:
            return error(404, f"The requested service '{name}' does not exist")
        match rest, request.method:
            case [], "GET":
                return Response.json(200, service_json(service))
            case [], "PATCH":
                return await self._patch_service(request, name)
            case ["openapi"], "GET":
                return Response.json(200, service_document(service))
            case ["state"], "POST":
                return await self._edit_state(request, name)
            case ["handlers"], "GET":
                handlers = [handler_json(service, h) for h in service.manifest.handlers]
                return Response.json(200, {"handlers": handlers})
            case ["handlers", handler_name], "GET":
                handler = service.handler(handler_name)
                if handler is None:
                    return error(404, f"handler '{name}/{handler_name}' not found")
                return Response.json(200, handler_json(service, handler))
        return error(404, f"not found: {request.method} {request.path}")

    async def _patch_service(self, request: Request, name: str) -> Response:
        registry = self.engine.registry
        service = registry.services[name]
        try:
            body = parse_json_body(request.body or b"{}")
        except JsonBodyError as exc:
            return error(400, f"invalid JSON body: {exc}")
        if not isinstance(body, dict):
            return error(400, "the body must be a JSON object")
        unknown = sorted(set(body) - {"public", *_PATCHABLE_DURATIONS})
        if unknown:
            known = ", ".join(("public", *_PATCHABLE_DURATIONS))
            return error(400, f"unknown field(s) {', '.join(unknown)}; a service has {known}")
        overrides = dict(service.overrides)
        if body.get("public") is not None:
            if not isinstance(body["public"], bool):
                return error(400, "public must be a boolean")
            overrides["public"] = body["public"]
        for field in _PATCHABLE_DURATIONS:
            value = body.get(field)
            if value is None:
                continue
            if field == "workflow_completion_retention" and service.ty != "WORKFLOW":
                return error(
                    400, "workflow_completion_retention can be set only on workflow services"
                )
            try:
                overrides[field] = parse_duration(str(value))
            except DurationError as exc:
                return error(400, f"bad {field}: {exc}")
        self.engine.run(lambda core: registrations.set_overrides(core, name, overrides))
        await self.engine.durable()
        return Response.json(200, service_json(registry.services[name]))

    async def _edit_state(self, request: Request, name: str) -> Response:
        """Replace all of one key's state (202); queued behind the key's lock if it is held."""
        service = self.engine.registry.services[name]
        if service.ty == "SERVICE":
            return error(400, "Cannot modify state for service type Service")
        try:
            body = parse_json_body(request.body or b"null")
        except JsonBodyError as exc:
            return error(400, f"invalid JSON body: {exc}")
        parsed = _state_edit(body)
        if isinstance(parsed, str):
            return error(400, parsed)
        key, version, new_state = parsed
        locking = service.ty == "VIRTUAL_OBJECT"
        outcome: str = self.engine.run(
            lambda core: edit_state(core, name, key, new_state, version, locking=locking)
        )
        await self.engine.durable()
        if outcome == "version_mismatch":
            return error(
                409,
                f"the state of {name}/{key} changed since version {version}; read it again "
                "and retry",
            )
        return Response(202)

    # -- invocations ---------------------------------------------------------------------------

    async def _manage(self, text: str, action: str) -> Response:
        try:
            invocation_id = InvocationId.parse(text)
        except InvalidIdError as exc:
            return error(400, str(exc))
        operations = {
            "cancel": lambda core: core.cancel(invocation_id),
            "kill": lambda core: core.kill(invocation_id),
            "purge": lambda core: core.purge(invocation_id),
            "pause": lambda core: core.pause(invocation_id),
            "resume": lambda core: core.resume(invocation_id),
        }
        if action not in operations:
            return error(404, f"unknown invocation operation {action!r}")
        outcome: str = self.engine.run(operations[action])
        await self.engine.durable()
        statuses = {
            ("cancel", "done"): 200, ("cancel", "appended"): 202,
            ("kill", "done"): 200, ("purge", "done"): 200, ("resume", "done"): 200,
            ("pause", "pausing"): 202, ("pause", "paused"): 200,
        }  # fmt: skip
        if (action, outcome) in statuses:
            return Response(statuses[action, outcome])
        messages = {
            "not_found": (404, f"The requested invocation '{text}' does not exist"),
            "completed": (409, f"invocation {text} is already completed"),
            "not_completed": (409, f"invocation {text} is not completed yet"),
            "not_running": (409, f"invocation {text} is not running"),
            "not_started": (425, f"invocation {text} has not started yet"),
        }
        status, message = messages.get(outcome, (500, f"unexpected outcome {outcome}"))
        return error(status, message)

    async def _list_invocations(self, request: Request) -> Response:
        query = request.query()
        wanted = query.get("status")
        if wanted and wanted not in set(Status):
            valid = ", ".join(Status)
            return error(400, f"unknown status {wanted!r}; use one of {valid}")
        limit = list_limit(query.get("limit"))
        if isinstance(limit, str):
            return error(400, limit)
        invocations = self.engine.invocations(limit, wanted or None)
        rows = [_invocation_json(i, self.engine) for i in invocations]
        await self.engine.durable()  # report only what is durable
        return Response.json(200, {"invocations": rows})

    async def _describe(self, text: str) -> Response:
        try:
            invocation_id = InvocationId.parse(text)
        except InvalidIdError as exc:
            return error(400, str(exc))
        inv = self.engine.invocation(invocation_id)
        if inv is None:
            return error(404, f"invocation {text} not found")
        row = _invocation_json(inv, self.engine)
        await self.engine.durable()  # report only what is durable
        return Response.json(200, row)


def _state_edit(body: Any) -> tuple[str, str | None, dict[bytes, bytes]] | str:
    """(object_key, version, new_state) of a state edit body, or what is wrong with it."""
    if not isinstance(body, dict):
        return 'the body must be a JSON object {"object_key": ..., "new_state": {...}}'
    key, version, new_state = body.get("object_key"), body.get("version"), body.get("new_state")
    if not isinstance(key, str):
        return "missing field `object_key` (a string)"
    if version is not None and not isinstance(version, str):
        return "`version` must be a string"
    if not isinstance(new_state, dict):
        return "missing field `new_state` (an object of state key -> array of bytes)"
    state: dict[bytes, bytes] = {}
    for state_key, value in new_state.items():
        if not isinstance(value, list) or not all(
            isinstance(b, int) and 0 <= b <= 255 for b in value
        ):
            return f"new_state[{state_key!r}] must be an array of bytes (integers 0-255)"
        state[state_key.encode()] = bytes(value)
    return key, version, state


def list_limit(text: str | None) -> int | str:
    """The ``limit`` of ``GET /invocations`` (1000 when absent), or what is wrong with it."""
    if text is None or text == "":
        return 1000
    if not (text.isascii() and text.isdigit()) or len(text) > 9 or int(text) > MAX_LIST_LIMIT:
        return f"limit must be an integer from 0 to {MAX_LIST_LIMIT}, got {text[:40]!r}"
    return int(text)


def _normalize_uri(uri: str) -> str:
    """As the official server shows it: an empty path becomes "/"."""
    parts = urlsplit(uri)
    return urlunsplit(parts._replace(path=parts.path or "/")) if parts.netloc else uri


def _same_services(a: Manifest, b: Manifest) -> bool:
    return [s for s in a.services] == [s for s in b.services]


def _deadlock_json(inv: Invocation, engine: Engine) -> dict[str, Any] | None:
    """perdure's own field: the request-response cycle this invocation is stuck in, if any."""
    if inv.status in (Status.COMPLETED, Status.SCHEDULED):
        return None
    cycle = engine.deadlock(inv.id)
    if cycle is None:
        return None
    return {"cycle": [str(c.id) for c in cycle], "description": describe_cycle(cycle)}


def _invocation_json(inv: Invocation, engine: Engine) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": str(inv.id),
        "target": inv.target,
        "target_service_name": inv.service,
        "target_service_key": inv.key if inv.keyed else None,
        "target_handler_name": inv.handler,
        "target_service_ty": {
            "SERVICE": "service",
            "VIRTUAL_OBJECT": "virtual_object",
            "WORKFLOW": "workflow",
        }[inv.service_ty],
        "status": inv.status.value,
        "idempotency_key": inv.idempotency_key,
        "created_at": rfc3339(inv.created_at),
        "modified_at": rfc3339(inv.modified_at),
        "pinned_deployment_id": inv.deployment_id,
        "retry_count": inv.retry_count,
        "last_failure": inv.last_failure,
        "invoked_by_id": inv.invoked_by,
        "journal_size": inv.journal_len,
        "deadlock": _deadlock_json(inv, engine),
    }
    if inv.status.value == "completed" and inv.result is not None:
        out["completion_result"] = "success" if inv.result.ok else "failure"
        if not inv.result.ok:
            out["completion_failure"] = f"[{inv.result.failure_code}] {inv.result.failure_message}"
    return out
