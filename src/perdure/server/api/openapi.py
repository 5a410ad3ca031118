"""OpenAPI 3.1 documents of the HTTP APIs: the admin API (``GET :9070/openapi``, as Restate
serves it), one service's ingress routes (``GET :9070/services/{s}/openapi``) and the whole
ingress (``GET :8080/openapi``: the generic ``/restate/...`` routes plus every registered
service's handlers, with their JSON schemas from the manifest).

The documents describe what perdure accepts and answers; tests run schemathesis against both
APIs of a real server from them.
"""

from __future__ import annotations

from typing import Any

import perdure
from perdure.protocol import HandlerManifest
from perdure.server.limits import MAX_LIST_LIMIT
from perdure.server.registry import Registry, Service

Json = dict[str, Any]

_ADMIN_ERROR: Json = {
    "type": "object",
    "properties": {"message": {"type": "string"}, "restate_code": {"type": ["string", "null"]}},
    "required": ["message"],
}
_INGRESS_ERROR: Json = {
    "type": "object",
    "properties": {
        "code": {"type": "integer"},
        "message": {"type": "string"},
        "source": {"type": "string"},
        "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "required": ["message"],
}
_DURATION: Json = {
    "type": ["string", "null"],
    "description": "A friendly (`10s`, `1h 30m`, `5 days`) or ISO 8601 (`PT10S`) duration",
}


def _json(schema: Json) -> Json:
    return {"content": {"application/json": {"schema": schema}}}


def _answers(ok: dict[str, str], errors: tuple[int, ...], error_schema: Json) -> Json:
    out: Json = {status: {"description": text} for status, text in ok.items()}
    for status in errors:
        out[str(status)] = {"description": "an error, saying what to fix", **_json(error_schema)}
    return out


def _op(summary: str, ok: dict[str, str], errors: tuple[int, ...], *, error: Json,
        params: list[Json] | None = None, body: Json | None = None) -> Json:  # fmt: skip
    op: Json = {"summary": summary, "responses": _answers(ok, errors, error)}
    if params:
        op["parameters"] = params
    if body is not None:
        op["requestBody"] = {"required": True, **body}
    return op


def _path(name: str, description: str = "") -> Json:
    param: Json = {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
    if description:
        param["description"] = description
    return param


def _query(name: str, schema: Json, description: str) -> Json:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}  # fmt: skip


def _document(title: str, description: str, paths: Json) -> Json:
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "description": description, "version": perdure.__version__},
        "paths": paths,
    }


# -- the admin API -------------------------------------------------------------------------------


def admin_document() -> Json:
    """The admin API (every route is also served under /v2, /v3 and /v4)."""
    e = _ADMIN_ERROR

    def op(summary: str, ok: dict[str, str], errors: tuple[int, ...], **kw: Any) -> Json:
        return _op(summary, ok, errors, error=e, **kw)

    service = _path("service", "a registered service's name")
    invocation = _path("invocation_id", "an invocation id, inv_1...")
    register = {
        "type": "object",
        "properties": {
            "uri": {"type": "string", "description": "http://host:port[/path] of the deployment"},
            "use_http_11": {"type": "boolean"},
            "force": {"type": "boolean"},
            "dry_run": {"type": "boolean"},
            "additional_headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "metadata": {"type": "object", "additionalProperties": {"type": "string"}},
        },
        "required": ["uri"],
    }
    patch = {
        "type": "object",
        "properties": {
            "public": {"type": ["boolean", "null"]},
            "idempotency_retention": _DURATION,
            "workflow_completion_retention": _DURATION,
            "journal_retention": _DURATION,
            "inactivity_timeout": _DURATION,
            "abort_timeout": _DURATION,
        },
        "additionalProperties": False,
    }
    state = {
        "type": "object",
        "properties": {
            "object_key": {"type": "string"},
            "version": {"type": "string"},
            "new_state": {
                "type": "object",
                "additionalProperties": {
                    "type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255}
                },
            },
        },
        "required": ["object_key", "new_state"],
    }  # fmt: skip
    paths: Json = {
        "/health": {"get": op("Is the admin API up", {"200": "up"}, ())},
        "/version": {"get": op("Server version and admin API versions", {"200": "ok"}, ())},
        "/openapi": {"get": op("This document", {"200": "OpenAPI 3.1"}, ())},
        "/deployments": {
            "get": op("List deployments", {"200": "ok"}, ()),
            "post": op("Register a deployment (discovers its services)",
                       {"200": "already registered", "201": "registered"}, (400, 409, 413),
                       body=_json(register)),
        },
        "/deployments/{deployment}": {
            "get": op("Describe a deployment", {"200": "ok"}, (404,),
                      params=[_path("deployment")]),
            "delete": op("Remove a deployment (force=true)",
                         {"202": "removed", "501": "only force=true is supported"}, (400, 404),
                         params=[_path("deployment"),
                                 _query("force", {"type": "boolean"}, "must be true")]),
        },
        "/services": {"get": op("List services", {"200": "ok"}, ())},
        "/services/{service}": {
            "get": op("Describe a service", {"200": "ok"}, (404,), params=[service]),
            "patch": op("Change a service's settings", {"200": "the updated service"},
                        (400, 404), params=[service], body=_json(patch)),
        },
        "/services/{service}/openapi": {
            "get": op("The service's ingress routes as OpenAPI 3.1", {"200": "ok"}, (404,),
                      params=[service]),
        },
        "/services/{service}/state": {
            "post": op("Replace one object key's state", {"202": "queued"}, (400, 404, 409),
                       params=[service], body=_json(state)),
        },
        "/services/{service}/handlers": {
            "get": op("List a service's handlers", {"200": "ok"}, (404,), params=[service]),
        },
        "/services/{service}/handlers/{handler}": {
            "get": op("Describe a handler", {"200": "ok"}, (404,),
                      params=[service, _path("handler")]),
        },
        "/invocations": {
            "get": op("List invocations (perdure's own)", {"200": "ok"}, (400,), params=[
                _query("limit", {"type": "integer", "minimum": 0, "maximum": MAX_LIST_LIMIT},
                       "at most this many (1000)"),
                _query("status", {"type": "string"}, "only invocations in this status"),
            ]),
        },
        "/invocations/{invocation_id}": {
            "get": op("Describe an invocation (perdure's own)", {"200": "ok"}, (400, 404),
                      params=[invocation]),
            "delete": op("Cancel, kill or purge an invocation", {"202": "done"},
                         (400, 404, 409, 425), params=[invocation, _query(
                             "mode", {"enum": ["cancel", "kill", "purge"]}, "cancel (default)")]),
        },
        "/query": {
            "post": op("SQL over the system tables, answered as JSON rows", {"200": "ok"},
                       (400, 406, 413), body=_json({
                           "type": "object", "properties": {"query": {"type": "string"}},
                           "required": ["query"]})),
        },
    }  # fmt: skip
    statuses = {
        "cancel": {"200": "cancelled", "202": "cancel signal sent"},
        "kill": {"200": "killed"},
        "purge": {"200": "purged"},
        "pause": {"200": "paused", "202": "pausing"},
        "resume": {"200": "resumed"},
    }
    for operation, ok in statuses.items():
        paths[f"/invocations/{{invocation_id}}/{operation}"] = {
            "patch": op(f"{operation.capitalize()} an invocation", ok, (400, 404, 409, 425),
                        params=[invocation]),
        }  # fmt: skip
    return _document(
        "perdure admin API",
        "Restate 1.7's admin API as perdure serves it. Routes are also served under /v2, /v3 "
        "and /v4. Errors are JSON: {message, restate_code}.",
        paths,
    )


# -- the ingress ---------------------------------------------------------------------------------


def ingress_document(registry: Registry) -> Json:
    """The generic /restate routes and every registered service's handlers."""
    paths = _generic_ingress_paths()
    for service in sorted(registry.services.values(), key=lambda s: s.name):
        paths.update(_service_paths(service))
    return _document(
        "perdure ingress",
        "Calls, sends, attach and output, awakeables. Errors are JSON: {code, message, "
        "source} with the x-restate-error-source header.",
        paths,
    )


def service_document(service: Service) -> Json:
    """The ingress routes of one service (admin GET /services/{service}/openapi)."""
    return _document(service.name, f"The ingress routes of {service.name}",
                     _service_paths(service))  # fmt: skip


def _generic_ingress_paths() -> Json:
    e = _INGRESS_ERROR

    def op(summary: str, ok: dict[str, str], errors: tuple[int, ...], **kw: Any) -> Json:
        return _op(summary, ok, errors, error=e, **kw)

    def target(tag: str, fields: dict[str, bool]) -> Json:
        props: Json = {"target": {"const": tag}}
        props.update({f: {"type": "string"} for f in fields})
        return {"type": "object", "properties": props,
                "required": ["target", *(f for f, needed in fields.items() if needed)]}  # fmt: skip

    targets = _json({"oneOf": [
        target("invocation", {"invocationId": True}),
        target("workflow", {"workflowName": True, "workflowKey": True, "scope": False}),
        target("idempotentInvocation", {"service": True, "handler": True, "idempotencyKey": True,
                                        "key": False, "scope": False}),
    ]})  # fmt: skip
    invocation = _path("invocation_id", "an invocation id, inv_1...")
    awakeable = _path("awakeable_id", "an awakeable id, sign_1...")
    paths: Json = {
        "/restate/health": {"get": op("Is the ingress up", {"200": "up"}, ())},
        "/openapi": {"get": op("This document", {"200": "OpenAPI 3.1"}, ())},
        "/restate/lookup": {
            "post": op("The invocation id of a target", {"200": "ok"}, (400,), body=targets),
        },
        "/restate/awakeables/{awakeable_id}/resolve": {
            "post": op("Resolve an awakeable with the body", {"202": "accepted"}, (400,),
                       params=[awakeable], body=_json({})),
        },
        "/restate/awakeables/{awakeable_id}/reject": {
            "post": op("Reject an awakeable with the body as the failure message",
                       {"202": "accepted"}, (400,), params=[awakeable],
                       body={"content": {"text/plain": {"schema": {"type": "string"}}}}),
        },
    }  # fmt: skip
    for mode, summary in (("attach", "Wait for the result"), ("output", "Read the result")):
        ok = {"200": "the result"}
        errors = (400, 404, 470) if mode == "output" else (400, 404)
        paths[f"/restate/{mode}"] = {
            "post": op(f"{summary} of a target", ok, errors, body=targets),
        }
        paths[f"/restate/{mode}/{{invocation_id}}"] = {
            "get": op(f"{summary} of an invocation", ok, errors, params=[invocation]),
        }
        paths[f"/restate/invocation/{{invocation_id}}/{mode}"] = {
            "get": op(f"{summary} of an invocation", ok, errors, params=[invocation]),
        }
    return paths


def _service_paths(service: Service) -> Json:
    e = _INGRESS_ERROR
    keyed = service.ty != "SERVICE"
    base = f"/{service.name}/{{key}}" if keyed else f"/{service.name}"
    key = [_path("key", "the object or workflow key")] if keyed else []
    idempotency = {
        "name": "idempotency-key",
        "in": "header",
        "required": False,
        "schema": {"type": "string"},
        "description": "run once per key (not for a workflow's run handler)",
    }
    paths: Json = {}
    for handler in service.manifest.handlers:
        if not service.public(handler):
            continue
        body = _input_body(handler)
        call = _op(f"Call {service.name}/{handler.name}", {"200": "the handler's result"},
                   (400, 404), error=e, params=[*key, idempotency], body=body)  # fmt: skip
        send = _op(
            f"Send to {service.name}/{handler.name} (one-way)", {"202": "accepted"}, (400, 404),
            error=e, body=body,
            params=[*key, idempotency,
                    _query("delay", {"type": "string"}, "run after this duration")],
        )  # fmt: skip
        paths[f"{base}/{handler.name}"] = {"post": call}
        paths[f"{base}/{handler.name}/send"] = {"post": send}
        if service.handler_type(handler) == "WORKFLOW":
            for mode in ("attach", "output"):
                paths[f"/restate/workflow/{service.name}/{{key}}/{mode}"] = {
                    "get": _op(f"The result of the {service.name} run", {"200": "the result"},
                               (400, 404, 470), error=e, params=key),
                }  # fmt: skip
    return paths


def _input_body(handler: HandlerManifest) -> Json | None:
    spec = handler.input
    if spec is not None and spec.required is None and spec.content_type is None \
            and spec.json_schema is None:  # fmt: skip
        return None  # the handler takes no input
    content_type = (spec.content_type if spec is not None else None) or "application/json"
    schema = spec.json_schema if spec is not None and spec.json_schema is not None else {}
    return {"content": {content_type: {"schema": schema}}}
