"""The discovery manifest: what a deployment tells a server about its services and handlers.

``Manifest.to_json(version)`` builds the JSON an SDK answers ``GET /discover`` with;
``Manifest.from_json`` parses and validates what a deployment answered. JSON keys are camelCase,
absent values are omitted (never ``null``), unknown keys are rejected: the official schema forbids
additional properties. Durations are integers of milliseconds. Manifest versions gate fields:
v2 adds documentation/metadata, v3 timeouts, retentions, lazy state and ingress-private, v4 the
retry policy and lambda compression.
"""

from __future__ import annotations

import enum
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from perdure.protocol.errors import ManifestError
from perdure.protocol.versions import MAX_MANIFEST_VERSION

JsonValue = Any
"""A decoded JSON value (the manifest carries user JSON schemas verbatim)."""

_SERVICE_NAME = re.compile(r"^([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9._-]*$")
_E = TypeVar("_E", bound=enum.StrEnum)
_HANDLER_NAME = re.compile(r"^([a-zA-Z]|_[a-zA-Z0-9])[a-zA-Z0-9_]*$")


class ProtocolMode(enum.StrEnum):
    BIDI_STREAM = "BIDI_STREAM"  # HTTP/2: the server streams notifications into a live attempt
    REQUEST_RESPONSE = "REQUEST_RESPONSE"  # HTTP/1.1, Lambda: one request body, then only reads


class ServiceType(enum.StrEnum):
    SERVICE = "SERVICE"  # stateless handlers
    VIRTUAL_OBJECT = "VIRTUAL_OBJECT"  # keyed, K/V state, one exclusive handler per key at a time
    WORKFLOW = "WORKFLOW"  # keyed, a run handler once per key, shared handlers, promises


class HandlerType(enum.StrEnum):
    EXCLUSIVE = "EXCLUSIVE"  # object handler that holds the key's lock and may write state
    SHARED = "SHARED"  # runs concurrently, reads state only
    WORKFLOW = "WORKFLOW"  # a workflow's run handler


class OnMaxAttempts(enum.StrEnum):
    PAUSE = "PAUSE"  # stop retrying and wait for an operator to resume (official default)
    KILL = "KILL"  # fail the invocation


@dataclass(frozen=True, slots=True)
class Options:
    """Per-service or per-handler settings; None = not set (the server's default applies)."""

    documentation: str | None = None
    metadata: Mapping[str, str] | None = None
    inactivity_timeout: int | None = None
    abort_timeout: int | None = None
    journal_retention: int | None = None
    idempotency_retention: int | None = None
    workflow_completion_retention: int | None = None
    """Only on a workflow's run handler."""
    enable_lazy_state: bool | None = None
    ingress_private: bool | None = None
    retry_policy_initial_interval: int | None = None
    retry_policy_max_interval: int | None = None
    retry_policy_max_attempts: int | None = None
    retry_policy_exponentiation_factor: float | None = None
    retry_policy_on_max_attempts: OnMaxAttempts | None = None


# (attribute, JSON key, first manifest version, accepted JSON types)
_OPTION_FIELDS: tuple[tuple[str, str, int, tuple[type, ...]], ...] = (
    ("documentation", "documentation", 2, (str,)),
    ("metadata", "metadata", 2, (dict,)),
    ("inactivity_timeout", "inactivityTimeout", 3, (int,)),
    ("abort_timeout", "abortTimeout", 3, (int,)),
    ("journal_retention", "journalRetention", 3, (int,)),
    ("idempotency_retention", "idempotencyRetention", 3, (int,)),
    ("workflow_completion_retention", "workflowCompletionRetention", 3, (int,)),
    ("enable_lazy_state", "enableLazyState", 3, (bool,)),
    ("ingress_private", "ingressPrivate", 3, (bool,)),
    ("retry_policy_initial_interval", "retryPolicyInitialInterval", 4, (int,)),
    ("retry_policy_max_interval", "retryPolicyMaxInterval", 4, (int,)),
    ("retry_policy_max_attempts", "retryPolicyMaxAttempts", 4, (int,)),
    ("retry_policy_exponentiation_factor", "retryPolicyExponentiationFactor", 4, (int, float)),
    ("retry_policy_on_max_attempts", "retryPolicyOnMaxAttempts", 4, (str,)),
)
_OPTION_KEYS = {key for _, key, _, _ in _OPTION_FIELDS}


@dataclass(frozen=True, slots=True)
class InputSpec:
    """What a handler accepts. All None (``{}`` in JSON) means: no body expected."""

    required: bool | None = None
    content_type: str | None = None
    json_schema: JsonValue | None = None


@dataclass(frozen=True, slots=True)
class OutputSpec:
    content_type: str | None = None
    set_content_type_if_empty: bool | None = None
    json_schema: JsonValue | None = None


@dataclass(frozen=True, slots=True)
class HandlerManifest:
    name: str
    ty: HandlerType | None = None
    input: InputSpec | None = None
    """None: absent, i.e. any content type, body optional."""
    output: OutputSpec | None = None
    """None: absent, i.e. application/json."""
    options: Options = field(default_factory=Options)


@dataclass(frozen=True, slots=True)
class ServiceManifest:
    name: str
    ty: ServiceType
    handlers: tuple[HandlerManifest, ...] = ()
    options: Options = field(default_factory=Options)
    _by_name: dict[str, HandlerManifest] = field(init=False, repr=False, compare=False)
    """``handlers`` by name: looked up on every invocation."""

    def __post_init__(self) -> None:
        by_name: dict[str, HandlerManifest] = {}
        for h in self.handlers:
            by_name.setdefault(h.name, h)  # the first of a name, as a scan would find
        object.__setattr__(self, "_by_name", by_name)

    def handler(self, name: str) -> HandlerManifest | None:
        return self._by_name.get(name)

    def effective_handler_type(self, handler: HandlerManifest) -> HandlerType | None:
        """The type the official server gives a handler (None for a plain service handler).

        A workflow handler without ``ty`` is SHARED, not WORKFLOW (whatever the schema says).
        """
        if self.ty is ServiceType.SERVICE:
            return None
        if handler.ty is not None:
            return handler.ty
        if self.ty is ServiceType.VIRTUAL_OBJECT:
            return HandlerType.EXCLUSIVE
        return HandlerType.SHARED


@dataclass(frozen=True, slots=True)
class Manifest:
    protocol_mode: ProtocolMode | None
    min_protocol_version: int
    max_protocol_version: int
    services: tuple[ServiceManifest, ...] = ()
    lambda_compression: str | None = None

    def service(self, name: str) -> ServiceManifest | None:
        return next((s for s in self.services if s.name == name), None)

    # -- building ----------------------------------------------------------------------------

    def to_json(self, version: int = MAX_MANIFEST_VERSION) -> dict[str, JsonValue]:
        """The manifest as JSON for a negotiated manifest version.

        Raises ManifestError if it uses a field that version lacks (SDKs then answer 500).
        """
        _check_version_range(self.min_protocol_version, self.max_protocol_version)
        out: dict[str, JsonValue] = {}
        if self.protocol_mode is not None:
            out["protocolMode"] = self.protocol_mode.value
        out["minProtocolVersion"] = self.min_protocol_version
        out["maxProtocolVersion"] = self.max_protocol_version
        if self.lambda_compression is not None:
            _require_version(version, 4, "lambdaCompression")
            out["lambdaCompression"] = self.lambda_compression
        out["services"] = [_service_to_json(s, version) for s in self.services]
        return out

    def to_bytes(self, version: int = MAX_MANIFEST_VERSION) -> bytes:
        return json.dumps(self.to_json(version), separators=(",", ":")).encode()

    # -- parsing -----------------------------------------------------------------------------

    @classmethod
    def from_json(cls, data: JsonValue) -> Manifest:
        _check_depth(data)
        obj = _object(data, "manifest")
        _only_keys(
            obj,
            {
                "protocolMode",
                "minProtocolVersion",
                "maxProtocolVersion",
                "services",
                "lambdaCompression",
            },
            "manifest",
        )
        mode = obj.get("protocolMode")
        min_v = _required(obj, "minProtocolVersion", int, "manifest")
        max_v = _required(obj, "maxProtocolVersion", int, "manifest")
        _check_version_range(min_v, max_v)
        services = _required(obj, "services", list, "manifest")
        compression = _optional(obj, "lambdaCompression", str, "manifest")
        return cls(
            protocol_mode=None if mode is None else _enum(ProtocolMode, mode, "protocolMode"),
            min_protocol_version=min_v,
            max_protocol_version=max_v,
            services=tuple(_service_from_json(s) for s in services),
            lambda_compression=compression,
        )

    @classmethod
    def from_bytes(cls, body: bytes) -> Manifest:
        try:
            data = json.loads(body, parse_constant=_not_json)
        except (ValueError, RecursionError) as exc:
            raise ManifestError(f"manifest is not valid JSON: {exc}") from None
        return cls.from_json(data)


# ---------------------------------------------------------------------------------------------
# JSON helpers
# ---------------------------------------------------------------------------------------------


MAX_DEPTH = 128
"""Nesting levels a manifest may have (JSON schemas included): deeper ones are refused before
anything recurses into them."""


def _check_depth(data: JsonValue) -> None:
    pending = [(data, 1)]
    while pending:
        item, depth = pending.pop()
        if depth > MAX_DEPTH:
            raise ManifestError(f"manifest is nested more than {MAX_DEPTH} levels deep")
        if isinstance(item, dict):
            pending.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            pending.extend((v, depth + 1) for v in item)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _require_version(version: int, needed: int, key: str) -> None:
    if version < needed:
        raise ManifestError(f"{key} needs manifest v{needed}, but v{version} was negotiated")


def _check_version_range(min_v: int, max_v: int) -> None:
    if not 1 <= min_v <= max_v <= 2**31 - 1:
        raise ManifestError(
            f"protocol versions must satisfy 1 <= min <= max, got min={min_v} max={max_v}"
        )


def _object(data: JsonValue, where: str) -> dict[str, JsonValue]:
    if not isinstance(data, dict):
        raise ManifestError(f"{where} must be a JSON object, got {type(data).__name__}")
    return data


def _only_keys(obj: Mapping[str, JsonValue], allowed: set[str], where: str) -> None:
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise ManifestError(f"{where} has unknown field(s) {', '.join(unknown)}")


def _is_type(value: JsonValue, kinds: tuple[type, ...]) -> bool:
    # JSON booleans are Python ints: keep them apart from numbers.
    if isinstance(value, bool):
        return bool in kinds
    return isinstance(value, kinds)


def _required(obj: Mapping[str, JsonValue], key: str, kind: type, where: str) -> Any:
    if key not in obj:
        raise ManifestError(f"{where} is missing the required field {key}")
    if obj[key] is None:
        raise ManifestError(f"{where}.{key} is required, got null")
    return _optional(obj, key, kind, where)


def _optional(obj: Mapping[str, JsonValue], key: str, kind: type, where: str) -> Any:
    value = obj.get(key)
    if value is not None and not _is_type(value, (kind,)):
        raise ManifestError(f"{where}.{key} must be a {kind.__name__}, got {value!r}")
    return value


def _enum(kind: type[_E], value: JsonValue, where: str) -> _E:
    try:
        return kind(value)
    except ValueError:
        allowed = ", ".join(m.value for m in kind)
        raise ManifestError(f"{where} must be one of {allowed}, got {value!r}") from None


def _options_to_json(options: Options, version: int, out: dict[str, JsonValue]) -> None:
    for attr, key, since, _ in _OPTION_FIELDS:
        value = getattr(options, attr)
        if value is None:
            continue
        _require_version(version, since, key)
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, Mapping):
            value = dict(value)
        out[key] = value


def _options_from_json(obj: Mapping[str, JsonValue], where: str) -> Options:
    values: dict[str, Any] = {}
    for attr, key, _, kinds in _OPTION_FIELDS:
        value = obj.get(key)
        if value is None:
            continue
        if not _is_type(value, kinds):
            raise ManifestError(f"{where}.{key} has the wrong type: {value!r}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ManifestError(f"{where}.{key} must be a finite number, got {value!r}")
        if attr == "retry_policy_on_max_attempts":
            value = _enum(OnMaxAttempts, value, f"{where}.{key}")
        elif attr == "metadata" and not all(isinstance(v, str) for v in value.values()):
            raise ManifestError(f"{where}.metadata values must be strings")
        values[attr] = value
    return Options(**values)


def _service_to_json(service: ServiceManifest, version: int) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {"name": service.name, "ty": service.ty.value}
    out["handlers"] = [_handler_to_json(h, version) for h in service.handlers]
    _options_to_json(service.options, version, out)
    return out


def _service_from_json(data: JsonValue) -> ServiceManifest:
    obj = _object(data, "service")
    name = _required(obj, "name", str, "service")
    where = f"service {name!r}"
    if not _SERVICE_NAME.match(name):
        raise ManifestError(f"{where}: invalid service name")
    _only_keys(obj, {"name", "ty", "handlers"} | _OPTION_KEYS, where)
    if "workflowCompletionRetention" in obj:
        raise ManifestError(f"{where}: workflowCompletionRetention belongs on the run handler")
    ty = _enum(ServiceType, _required(obj, "ty", str, where), f"{where}.ty")
    handlers = tuple(_handler_from_json(h, where) for h in _required(obj, "handlers", list, where))
    service = ServiceManifest(name, ty, handlers, _options_from_json(obj, where))
    for handler in handlers:
        _check_handler_type(service, handler)
    return service


def _check_handler_type(service: ServiceManifest, handler: HandlerManifest) -> None:
    allowed = {
        ServiceType.SERVICE: {None, HandlerType.SHARED},
        ServiceType.VIRTUAL_OBJECT: {None, HandlerType.EXCLUSIVE, HandlerType.SHARED},
        ServiceType.WORKFLOW: {None, HandlerType.SHARED, HandlerType.WORKFLOW},
    }[service.ty]
    if handler.ty not in allowed:
        raise ManifestError(
            f"handler {service.name}/{handler.name}: a {service.ty.value} cannot have a "
            f"{handler.ty.value if handler.ty else 'default'} handler"
        )


def _handler_to_json(handler: HandlerManifest, version: int) -> dict[str, JsonValue]:
    out: dict[str, JsonValue] = {"name": handler.name}
    if handler.ty is not None:
        out["ty"] = handler.ty.value
    if handler.input is not None:
        out["input"] = _drop_none(
            required=handler.input.required,
            contentType=handler.input.content_type,
            jsonSchema=handler.input.json_schema,
        )
    if handler.output is not None:
        out["output"] = _drop_none(
            contentType=handler.output.content_type,
            setContentTypeIfEmpty=handler.output.set_content_type_if_empty,
            jsonSchema=handler.output.json_schema,
        )
    _options_to_json(handler.options, version, out)
    return out


def _handler_from_json(data: JsonValue, service_where: str) -> HandlerManifest:
    obj = _object(data, f"{service_where} handler")
    name = _required(obj, "name", str, f"{service_where} handler")
    where = f"{service_where} handler {name!r}"
    if not _HANDLER_NAME.match(name):
        raise ManifestError(f"{where}: invalid handler name")
    _only_keys(obj, {"name", "ty", "input", "output"} | _OPTION_KEYS, where)
    ty = obj.get("ty")
    input_spec = None
    if "input" in obj:
        raw = _object(obj["input"], f"{where}.input")
        _only_keys(raw, {"required", "contentType", "jsonSchema"}, f"{where}.input")
        input_spec = InputSpec(
            required=_optional(raw, "required", bool, f"{where}.input"),
            content_type=_optional(raw, "contentType", str, f"{where}.input"),
            json_schema=raw.get("jsonSchema"),
        )
    output_spec = None
    if "output" in obj:
        raw = _object(obj["output"], f"{where}.output")
        _only_keys(raw, {"contentType", "setContentTypeIfEmpty", "jsonSchema"}, f"{where}.output")
        output_spec = OutputSpec(
            content_type=_optional(raw, "contentType", str, f"{where}.output"),
            set_content_type_if_empty=_optional(
                raw, "setContentTypeIfEmpty", bool, f"{where}.output"
            ),
            json_schema=raw.get("jsonSchema"),
        )
    return HandlerManifest(
        name=name,
        ty=None if ty is None else _enum(HandlerType, ty, f"{where}.ty"),
        input=input_spec,
        output=output_spec,
        options=_options_from_json(obj, where),
    )


def _drop_none(**values: JsonValue) -> dict[str, JsonValue]:
    return {k: v for k, v in values.items() if v is not None}


__all__ = [
    "HandlerManifest",
    "HandlerType",
    "InputSpec",
    "JsonValue",
    "Manifest",
    "OnMaxAttempts",
    "Options",
    "OutputSpec",
    "ProtocolMode",
    "ServiceManifest",
    "ServiceType",
]
