"""The admin API's JSON views of deployments, services and handlers (Restate 1.7's shapes)."""

from __future__ import annotations

import datetime
import json
from typing import Any

from perdure.protocol import HandlerManifest, InputSpec, OutputSpec
from perdure.server.api.durations import format_duration
from perdure.server.registry import Deployment, Registry, Service

_SERVICE_TY = {"SERVICE": "Service", "VIRTUAL_OBJECT": "VirtualObject", "WORKFLOW": "Workflow"}
_HANDLER_TY = {"EXCLUSIVE": "Exclusive", "SHARED": "Shared", "WORKFLOW": "Workflow"}


def rfc3339(ms: int) -> str:
    moment = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}000000Z"


def _schema_description(schema: Any) -> str | None:
    if isinstance(schema, dict) and isinstance(schema.get("type"), str):
        return f"JSON {schema['type']}"
    return None


def _input_description(spec: InputSpec | None) -> str:
    if spec is None:
        return 'one of ["none", "value of content-type \'*/*\'"]'
    if spec.required is None and spec.content_type is None and spec.json_schema is None:
        return "none"
    described = _schema_description(spec.json_schema)
    if described is not None:
        return described
    value = f"value of content-type '{spec.content_type or '*/*'}'"
    return value if spec.required else f'one of ["none", "{value}"]'


def _output_description(spec: OutputSpec | None) -> str:
    if spec is None:
        return "value of content-type 'application/json'"
    if spec.content_type is None:
        return "none"
    described = _schema_description(spec.json_schema)
    if described is not None:
        return described
    return f"value of content-type '{spec.content_type}'"


def _retry_policy(service: Service, handler: HandlerManifest | None) -> dict[str, Any]:
    policy = service.retry_policy(handler)
    return {
        "initial_interval": format_duration(policy.initial_interval),
        "exponentiation_factor": policy.exponentiation_factor,
        "max_attempts": policy.max_attempts,
        "max_interval": None
        if policy.max_interval is None
        else format_duration(policy.max_interval),
        "on_max_attempts": "Pause" if policy.on_max_attempts == "PAUSE" else "Kill",
    }


def handler_json(service: Service, handler: HandlerManifest) -> dict[str, Any]:
    out: dict[str, Any] = {"name": handler.name}
    ty = service.handler_type(handler)
    if ty is not None:
        out["ty"] = _HANDLER_TY[ty]
    options = handler.options
    if options.documentation is not None:
        out["documentation"] = options.documentation
    if options.metadata:
        out["metadata"] = dict(options.metadata)
    for name in ("idempotency_retention", "journal_retention", "workflow_completion_retention",
                 "inactivity_timeout", "abort_timeout"):  # fmt: skip
        value = getattr(options, name)
        if value is not None:
            out[name] = format_duration(value)
    if options.enable_lazy_state is not None:
        out["enable_lazy_state"] = options.enable_lazy_state
    out["public"] = service.public(handler)
    out["input_description"] = _input_description(handler.input)
    out["output_description"] = _output_description(handler.output)
    if handler.input is not None and handler.input.json_schema is not None:
        out["input_json_schema"] = handler.input.json_schema
    if handler.output is not None and handler.output.json_schema is not None:
        out["output_json_schema"] = handler.output.json_schema
    if any(
        getattr(options, f"retry_policy_{n}") is not None
        for n in ("initial_interval", "max_interval", "max_attempts", "exponentiation_factor",
                  "on_max_attempts")
    ):  # fmt: skip
        out["retry_policy"] = _retry_policy(service, handler)
    else:
        out["retry_policy"] = {"max_attempts": None}
    return out


def service_json(service: Service) -> dict[str, Any]:
    manifest = service.manifest
    out: dict[str, Any] = {
        "name": service.name,
        "ty": _SERVICE_TY[service.ty],
        "handlers": [handler_json(service, h) for h in manifest.handlers],
    }
    if manifest.options.documentation is not None:
        out["documentation"] = manifest.options.documentation
    if manifest.options.metadata:
        out["metadata"] = dict(manifest.options.metadata)
    out["deployment_id"] = service.record.deployment_id
    out["revision"] = service.record.revision
    public = service.overrides.get("public")
    out["public"] = (
        bool(public) if public is not None else not bool(manifest.options.ingress_private)
    )
    out["idempotency_retention"] = format_duration(service.retention(None, "idempotency_retention"))
    if service.ty == "WORKFLOW":
        out["workflow_completion_retention"] = format_duration(
            service.retention(None, "workflow_completion_retention")
        )
    out["journal_retention"] = format_duration(service.retention(None, "journal_retention"))
    out["inactivity_timeout"] = format_duration(service.retention(None, "inactivity_timeout"))
    out["abort_timeout"] = format_duration(service.retention(None, "abort_timeout"))
    out["enable_lazy_state"] = service.lazy_state(None)
    out["retry_policy"] = _retry_policy(service, None)
    return out


def deployment_json(
    registry: Registry, deployment: Deployment, *, detailed: bool
) -> dict[str, Any]:
    record = deployment.record
    out: dict[str, Any] = {
        "id": record.id,
        "uri": record.uri,
        "protocol_type": "BidiStream"
        if record.protocol_mode == "BIDI_STREAM"
        else "RequestResponse",
        "http_version": "HTTP/1.1" if record.use_http_11 else "HTTP/2.0",
    }
    if record.additional_headers:
        out["additional_headers"] = record.additional_headers
    if record.metadata:
        out["metadata"] = record.metadata
    out["created_at"] = rfc3339(record.created_at)
    out["min_protocol_version"] = record.min_protocol_version
    out["max_protocol_version"] = record.max_protocol_version
    if record.sdk_version:
        out["sdk_version"] = record.sdk_version
    services = [s for s in registry.services.values() if s.record.deployment_id == record.id]
    if detailed:
        out["services"] = [service_json(s) for s in services]
    else:
        out["services"] = [{"name": s.name, "revision": s.record.revision} for s in services]
    return out


def manifest_services(deployment: Deployment) -> list[str]:
    return [s.name for s in deployment.manifest.services]


def dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
