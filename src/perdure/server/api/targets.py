"""Where an existing invocation is found, for the ingress's attach, output and lookup routes.

Restate 1.7 names an invocation three ways: by its id, by the idempotency tuple it was made with
(service, object key, handler, idempotency key), or as the ``run`` of a workflow key. The GET
routes carry the target in the path (``/restate/invocation/...``, ``/restate/workflow/...``);
``POST /restate/attach|output|lookup`` carry it as a JSON body tagged by ``target``, so that keys a
path cannot carry travel verbatim. This module turns a body into a target and a target into the
invocation id (computed, never looked up: ``lookup`` answers without checking existence). Sans-IO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from perdure.protocol import InvalidIdError, InvocationId
from perdure.server.api.json_body import JsonBodyError, parse_json_body


@dataclass(frozen=True, slots=True)
class ByInvocationId:
    invocation_id: InvocationId


@dataclass(frozen=True, slots=True)
class ByIdempotencyKey:
    service: str
    handler: str
    idempotency_key: str
    key: str | None = None
    """The object key for a keyed service; None for a plain service."""
    scope: str | None = None


@dataclass(frozen=True, slots=True)
class ByWorkflow:
    workflow: str
    key: str
    scope: str | None = None


LookupTarget = ByInvocationId | ByIdempotencyKey | ByWorkflow


class TargetError(Exception):
    """A target that cannot be read; ``status`` is what the official server answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def invocation_id_of(target: LookupTarget) -> InvocationId:
    """The id the target's invocation has (or would have): a pure function of the target."""
    match target:
        case ByInvocationId(invocation_id):
            return invocation_id
        case ByIdempotencyKey(service, handler, idempotency_key, key, scope):
            return InvocationId.for_idempotent_request(
                service, handler, idempotency_key, key=key, scope=scope
            )
        case ByWorkflow(workflow, key, scope):
            return InvocationId.for_workflow(workflow, key, scope=scope)


def parse_invocation_id(text: str) -> InvocationId:
    try:
        return InvocationId.parse(text)
    except InvalidIdError as exc:
        reason = str(exc).removeprefix(f"invocation id {text!r} ")
        raise TargetError(400, f"bad invocation id '{text}': {reason}") from exc


# The official server reports a body it cannot deserialize as an internal error (500, with a
# stack trace) with this prefix; perdure keeps the message but answers 400: it is the client's
# mistake, and a client that retries 5xx would retry it forever.
_BAD_BODY = "cannot read body: invalid request body: "
_BAD_STATUS = 400

_TARGETS = ("workflow", "idempotentInvocation", "invocation")


def parse_target_body(body: bytes) -> LookupTarget:
    """The target of ``POST /restate/attach|output|lookup`` (camelCase JSON, tagged by target)."""
    try:
        value = parse_json_body(body)
    except JsonBodyError as exc:
        raise TargetError(_BAD_STATUS, f"{_BAD_BODY}{exc}") from exc
    if not isinstance(value, dict):
        raise TargetError(
            _BAD_STATUS, f"{_BAD_BODY}expected a JSON object, got {_json_type(value)}"
        )
    fields = _Fields(value)
    tag = fields.required("target")
    match tag:
        case "workflow":
            return ByWorkflow(
                fields.required("workflowName"),
                fields.required("workflowKey"),
                fields.optional("scope"),
            )
        case "idempotentInvocation":
            return ByIdempotencyKey(
                fields.required("service"),
                fields.required("handler"),
                fields.required("idempotencyKey"),
                key=fields.optional("key"),
                scope=fields.optional("scope"),
            )
        case "invocation":
            return ByInvocationId(parse_invocation_id(fields.required("invocationId")))
        case _:
            expected = ", ".join(f"`{t}`" for t in _TARGETS)
            raise TargetError(
                _BAD_STATUS, f"{_BAD_BODY}unknown variant `{tag}`, expected one of {expected}"
            )


class _Fields:
    def __init__(self, value: dict[str, Any]) -> None:
        self.value = value

    def required(self, name: str) -> str:
        if name not in self.value:
            raise TargetError(_BAD_STATUS, f"{_BAD_BODY}missing field `{name}`")
        return self._string(name)

    def optional(self, name: str) -> str | None:
        if self.value.get(name) is None:
            return None
        return self._string(name)

    def _string(self, name: str) -> str:
        item = self.value[name]
        if not isinstance(item, str):
            raise TargetError(
                _BAD_STATUS,
                f"{_BAD_BODY}invalid type for `{name}`: {_json_type(item)}, expected a string",
            )
        return item


def _json_type(value: Any) -> str:
    match value:
        case bool():
            return "boolean"
        case int() | float():
            return "number"
        case str():
            return "string"
        case list():
            return "array"
        case dict():
            return "object"
        case _:
            return "null"
