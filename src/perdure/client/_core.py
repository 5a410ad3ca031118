"""The sans-IO half of the client, shared by Client and AsyncClient.

It turns an operation (call, send, attach, output, awakeable completion) into an ``Exchange``: the
HTTP request to make plus the rules for making it (may it be retried, how long may it take), and
turns the HTTP answer back into a value or a ClientError. The drivers in _sync.py and _async.py
only move bytes. Paths follow Restate 1.7's ingress API (the legacy call/send paths, which every
official client uses, and /restate/invocation|workflow|awakeables/...).
"""

from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from urllib.parse import quote

from perdure.client._errors import ResponseDecodeError, error_from_response
from perdure.client._serde import JSON_CONTENT_TYPE, decode_output, encode_input
from perdure.protocol.manifest import ServiceType
from perdure.sdk.refs import HandlerRef, ref_of

TargetKind = Literal["service", "object", "workflow"]
SendStatus = Literal["Accepted", "PreviouslyAccepted"]
Timeout = float | timedelta | None
Locator = str | Mapping[str, str]
"""Where an invocation is found: a path (``/restate/invocation/{id}``) or a JSON lookup body."""


class _UseClientDefault:
    def __repr__(self) -> str:
        return "USE_CLIENT_DEFAULT"


USE_CLIENT_DEFAULT: Any = _UseClientDefault()
"""Default of every ``timeout=`` argument: the client's timeout (calls, sends) or none (attach)."""

DEFAULT_TIMEOUT = 60.0
"""Seconds a call or send may take unless the client or the call says otherwise."""
DEFAULT_RETRIES = 5
"""Retries after a connection failure: 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s, about 3 s in all."""
FIRST_RETRY_DELAY = 0.1


# ---------------------------------------------------------------------------------------------
# targets


@dataclass(frozen=True, slots=True)
class Target:
    """A handler to invoke: ``service/handler`` or ``service/key/handler``."""

    kind: TargetKind
    service: str
    handler: str
    key: str | None = None
    output_type: Any = Any


_KIND_OF_SERVICE_TYPE = {
    ServiceType.SERVICE: "service",
    ServiceType.VIRTUAL_OBJECT: "object",
    ServiceType.WORKFLOW: "workflow",
}


def resolve_target(
    kind: TargetKind,
    target: str | Callable[..., Any],
    key: str | None,
    handler: str | None,
    output: Any,
) -> Target:
    """A Target from the string form (names) or a typed handler reference (a handler function)."""
    if isinstance(target, str):
        if handler is None:
            raise TypeError(f"a {kind} target given by name needs a handler name")
        _check_name("service", target)
        _check_name("handler", handler)
        if kind != "service" and not isinstance(key, str):
            raise TypeError(f"the {kind} key must be a str, got {type(key).__name__}")
        return Target(kind, target, handler, key, output_type=output)
    if handler is not None:
        raise TypeError("a typed handler reference names its handler; pass no handler name")
    ref = _ref_for(kind, target)
    if kind != "service" and not isinstance(key, str):
        raise TypeError(f"the {kind} key must be a str, got {type(key).__name__}")
    output_type = output if output is not Any else ref.output_type
    return Target(
        kind,
        ref.service,
        ref.handler,
        key if kind != "service" else None,
        output_type=output_type,
    )


def handle_target(
    kind: Literal["service", "object"],
    target: str | Callable[..., Any],
    key: str | None,
    handler: str | None,
    idempotency_key: str | None,
    *,
    output: Any,
) -> tuple[Locator, Any]:
    """Where an invocation made with an idempotency key is found, and its output type.

    By name: ``(service[, key], handler, idempotency_key)``. By typed reference the handler
    names itself, so the argument after it (or ``idempotency_key=``) is the idempotency key.
    """
    if isinstance(target, str):
        if handler is None or idempotency_key is None:
            raise TypeError("an invocation by name needs a handler name and an idempotency key")
        return idempotent_invocation_locator(target, key, handler, idempotency_key), output
    if handler is not None and idempotency_key is not None:
        raise TypeError("a typed handler reference names its handler; pass no handler name")
    idempotency_key = idempotency_key if idempotency_key is not None else handler
    if idempotency_key is None:
        raise TypeError("an invocation by idempotency key needs the idempotency key")
    ref = _ref_for(kind, target)
    if kind == "object" and not isinstance(key, str):
        raise TypeError(f"the object key must be a str, got {type(key).__name__}")
    locator = idempotent_invocation_locator(ref.service, key, ref.handler, idempotency_key)
    return locator, output if output is not Any else ref.output_type


def workflow_handle_target(workflow: str | Callable[..., Any], key: str, output: Any) -> Target:
    """The run of a workflow key, by name or by the workflow's run handler."""
    if not isinstance(key, str):
        raise TypeError(f"the workflow key must be a str, got {type(key).__name__}")
    if isinstance(workflow, str):
        _check_name("workflow", workflow)
        return Target("workflow", workflow, "run", key, output_type=output)
    ref = _ref_for("workflow", workflow)
    if ref.handler != "run":
        raise TypeError(
            f"{ref.service}/{ref.handler} is a shared handler; a workflow handle takes the "
            "workflow's run handler (the one decorated with @workflow.main())"
        )
    return Target(
        "workflow", ref.service, "run", key, output if output is not Any else ref.output_type
    )


def _ref_for(kind: TargetKind, fn: Callable[..., Any]) -> HandlerRef:
    ref = ref_of(fn)
    actual = _KIND_OF_SERVICE_TYPE[ref.service_type]
    allowed = {"service": {"service"}, "object": {"object", "workflow"}, "workflow": {"workflow"}}
    if actual not in allowed[kind]:
        raise TypeError(
            f"{ref.service}/{ref.handler} is a {actual} handler; address it with "
            f"client.{actual}(...)"
        )
    return ref


def _check_name(what: str, name: str) -> None:
    if not name or "/" in name:
        raise ValueError(f"invalid {what} name {name!r}: it must be non-empty and contain no '/'")


def _segment(value: str) -> str:
    """A path segment for a key or id: percent-encoded, so '/', '?', '%' and spaces survive."""
    return quote(value, safe="")


def target_path(target: Target) -> str:
    if target.key is None:
        return f"/{target.service}/{target.handler}"
    return f"/{target.service}/{_segment(target.key)}/{target.handler}"


# ---------------------------------------------------------------------------------------------
# exchanges


@dataclass(frozen=True, slots=True)
class Exchange:
    """One HTTP request and the rules for making it."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None
    params: dict[str, str] = field(default_factory=dict)
    retryable: bool = False
    """Whether a connection failure may be retried (the request is idempotent)."""
    timeout: float | None = None
    """Seconds for the whole exchange, retries included; None waits as long as it takes."""
    connect_timeout: float | None = None
    """Seconds to establish a connection, even when ``timeout`` is None."""


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, lower-cased headers, body."""

    status: int
    headers: Mapping[str, str]
    body: bytes


@dataclass(frozen=True, slots=True)
class SendResult:
    """The ingress's answer to a send."""

    invocation_id: str
    status: SendStatus
    execution_time: datetime | None


@dataclass(frozen=True, slots=True)
class Config:
    """What a client adds to every exchange."""

    headers: Mapping[str, str]
    timeout: float | None
    retries: int

    def call(
        self,
        target: Target,
        value: Any,
        *,
        idempotency_key: str | None,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> Exchange:
        content, content_type = encode_input(value)
        return Exchange(
            "POST",
            target_path(target),
            self._headers(headers, content_type, idempotency_key),
            content=content,
            retryable=idempotency_key is not None,
            timeout=self._timeout(timeout, self.timeout),
            connect_timeout=self.timeout,
        )

    def send(
        self,
        target: Target,
        value: Any,
        *,
        delay: Timeout,
        idempotency_key: str | None,
        headers: Mapping[str, str] | None,
        timeout: Any,
    ) -> Exchange:
        params = {} if delay is None else {"delay": delay_param(delay)}
        content, content_type = encode_input(value)
        return Exchange(
            "POST",
            target_path(target) + "/send",
            self._headers(headers, content_type, idempotency_key),
            content=content,
            params=params,
            # A workflow's run is started once per key: sending it again is harmless.
            retryable=idempotency_key is not None or target.kind == "workflow",
            timeout=self._timeout(timeout, self.timeout),
            connect_timeout=self.timeout,
        )

    def lookup(
        self, locator: Locator, what: Literal["attach", "output"], headers: Any, timeout: Any
    ) -> Exchange:
        """Attach to or read an invocation: idempotent, and by default without a time limit.

        A path locator becomes ``GET {path}/{what}``; a body locator ``POST /restate/{what}``.
        """
        timeout = self._timeout(timeout, None)
        if isinstance(locator, str):
            method, path, content_type, content = "GET", f"{locator}/{what}", None, None
        else:
            method, path, content_type = "POST", f"/restate/{what}", JSON_CONTENT_TYPE
            content = json.dumps(dict(locator), separators=(",", ":")).encode()
        return Exchange(
            method,
            path,
            self._headers(headers, content_type, None),
            content=content,
            retryable=True,
            timeout=timeout,
            connect_timeout=self.timeout,
        )

    def awakeable(
        self, awakeable_id: str, body: bytes, content_type: str, action: str, headers: Any
    ) -> Exchange:
        if not awakeable_id:
            raise ValueError("the awakeable id is empty")
        merged = {**self.headers, "content-type": content_type, **lower_keys(headers)}
        return Exchange(
            "POST",
            f"/restate/awakeables/{_segment(awakeable_id)}/{action}",
            merged,
            content=body,
            timeout=self.timeout,
            connect_timeout=self.timeout,
        )

    def _headers(
        self,
        headers: Mapping[str, str] | None,
        content_type: str | None,
        idempotency_key: str | None,
    ) -> dict[str, str]:
        merged = dict(self.headers)
        if content_type is not None:
            merged["content-type"] = content_type
        if idempotency_key is not None:
            _check_idempotency_key(idempotency_key)
            merged["idempotency-key"] = idempotency_key
        # The caller's headers come last so they can override (e.g. content-type).
        merged.update(lower_keys(headers))
        return merged

    @staticmethod
    def _timeout(given: Any, default: float | None) -> float | None:
        if given is USE_CLIENT_DEFAULT:
            return default
        return seconds(given)


TOKEN_ENV = "PERDURE_INGRESS_TOKEN"


def auth_headers(token: str | None) -> dict[str, str]:
    """The bearer token header of every request (``token``, else ``$PERDURE_INGRESS_TOKEN``)."""
    token = token if token is not None else os.environ.get(TOKEN_ENV)
    return {"authorization": f"Bearer {token}"} if token else {}


def lower_keys(headers: Mapping[str, str] | None) -> dict[str, str]:
    """Header names are case-insensitive; lower-case them so later ones replace earlier ones."""
    return {name.lower(): value for name, value in (headers or {}).items()}


def invocation_path(invocation_id: str) -> str:
    if not invocation_id:
        raise ValueError("the invocation id is empty")
    return f"/restate/invocation/{_segment(invocation_id)}"


def idempotent_invocation_locator(
    service: str, key: str | None, handler: str, idempotency_key: str
) -> Locator:
    """Where an invocation made with an idempotency key is found.

    Restate does not percent-decode the idempotency key in ``/restate/invocation/...`` paths
    (checked against restate-server 1.7.12), so a key is put there only as it is, when it is made
    of characters a path segment may carry. Any other key (with '/', '%', '?', a space...) is
    looked up through ``POST /restate/attach|output`` with a JSON body, which carries it verbatim.
    """
    _check_name("service", service)
    _check_name("handler", handler)
    _check_idempotency_key(idempotency_key)
    if _PATH_SAFE.fullmatch(idempotency_key):
        keyed = "" if key is None else f"/{_segment(key)}"
        return f"/restate/invocation/{service}{keyed}/{handler}/{idempotency_key}"
    body = {"target": "idempotentInvocation", "service": service, "handler": handler}
    if key is not None:
        body["key"] = key
    body["idempotencyKey"] = idempotency_key
    return body


# RFC 3986 pchar without percent-escapes: unreserved, sub-delims, ':' and '@'.
_PATH_SAFE = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@]+")


def _check_idempotency_key(idempotency_key: str) -> None:
    if not idempotency_key:
        raise ValueError("the idempotency key is empty")
    if not idempotency_key.isascii() or not idempotency_key.isprintable():
        raise ValueError(f"the idempotency key must be printable ASCII, got {idempotency_key!r}")


def workflow_path(target: Target) -> str:
    assert target.key is not None
    return f"/restate/workflow/{target.service}/{_segment(target.key)}"


# ---------------------------------------------------------------------------------------------
# values


def seconds(value: Timeout) -> float | None:
    """A timeout in seconds (float or timedelta); None stays None."""
    if value is None:
        return None
    result = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if result <= 0 or math.isnan(result):
        raise ValueError(f"a timeout must be positive, got {value!r}")
    return result


def delay_param(delay: float | timedelta) -> str:
    """``?delay=`` in the unit every official client uses: whole milliseconds, ``<N>ms``."""
    total = delay.total_seconds() if isinstance(delay, timedelta) else float(delay)
    if total < 0 or math.isnan(total):
        raise ValueError(f"a delay must not be negative, got {delay!r}")
    return f"{round(total * 1000)}ms"


def backoff_delays(retries: int) -> Iterator[float]:
    """Pauses before each retry: exponential from 100 ms."""
    for attempt in range(retries):
        yield FIRST_RETRY_DELAY * 2**attempt


# ---------------------------------------------------------------------------------------------
# answers


def read_output(reply: Reply, output_type: Any) -> Any:
    """The result of a call, attach or output, or the ClientError the answer stands for."""
    raise_for_status(reply)
    try:
        return decode_output(reply.body, output_type)
    except (ValueError, TypeError) as exc:
        name = getattr(output_type, "__name__", repr(output_type))
        raise ResponseDecodeError(
            f"cannot decode the response as {name}: {exc}",
            code=reply.status,
            invocation_id=reply.headers.get("x-restate-id"),
        ) from exc


def read_send(reply: Reply) -> SendResult:
    raise_for_status(reply)
    try:
        body = json.loads(reply.body)
        invocation_id = body["invocationId"]
        status = body["status"]
        raw_time = body.get("executionTime")
        if status not in ("Accepted", "PreviouslyAccepted") or not isinstance(invocation_id, str):
            raise ValueError(f"unexpected send answer {body!r}")
        execution_time = None if raw_time is None else parse_time(raw_time)
    except (ValueError, KeyError, TypeError) as exc:
        raise ResponseDecodeError(
            f"the ingress answered a send with an unexpected body: {exc}", code=reply.status
        ) from exc
    return SendResult(invocation_id, status, execution_time)


def raise_for_status(reply: Reply) -> None:
    if not 200 <= reply.status < 300:
        raise error_from_response(reply.status, reply.headers, reply.body)


def parse_time(value: str) -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime (sub-microsecond digits are dropped)."""
    text = value.strip()
    if "." in text:  # datetime accepts at most 6 fractional digits
        head, _, rest = text.partition(".")
        digits = len(rest) - len(rest.lstrip("0123456789"))
        text = f"{head}.{rest[: min(digits, 6)]}{rest[digits:]}"
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)
