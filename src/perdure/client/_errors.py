"""Every error the ingress client raises, in one tree:

    ClientError                 code, message, metadata, source ("ingress" | "invocation" | None)
    ├── InvocationError         an HTTP error answer not covered below (e.g. the handler failed
    │                           terminally with 500 or its own code, or the ingress said 503)
    ├── NotReadyError           470: the invocation exists but has no result yet
    ├── NotFoundError           404: unknown service/handler, or no such invocation
    ├── ConflictError           409: e.g. a workflow's run was already invoked, or killed
    ├── BadRequestError         400: the ingress rejected the request (path, key, delay, input)
    ├── TransportError          no HTTP answer came: refused, reset, or the timeout ran out
    └── ResponseDecodeError     an answer came but its body does not fit the requested type

The class follows the HTTP status, so ``except NotReadyError`` works whatever the body says; the
body (Restate 1.7.4+: ``{"code", "message", "source", "metadata"?, "stacktrace"?}``) fills the
fields. A handler's terminal error with status 404 is therefore a NotFoundError with
``source == "invocation"``: check ``source`` to tell it from an unknown target.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal

ErrorSource = Literal["ingress", "invocation"]


class ClientError(Exception):
    """Base of every error raised by ``perdure.client``."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        metadata: Mapping[str, str] | None = None,
        source: ErrorSource | None = None,
        stacktrace: str | None = None,
        invocation_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        """The Restate error code (usually the HTTP status); None when no answer came."""
        self.metadata: dict[str, str] = dict(metadata or {})
        """Metadata a handler attached to its terminal error (empty if none)."""
        self.source = source
        """"ingress" (Restate refused the request), "invocation" (it failed), or None."""
        self.stacktrace = stacktrace
        self.invocation_id = invocation_id
        """The ``x-restate-id`` of the answer, when the server named the invocation."""

    def __str__(self) -> str:
        return self.message if self.code is None else f"[{self.code}] {self.message}"

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}(code={self.code!r}, message={self.message!r}, source={self.source!r})"


class InvocationError(ClientError):
    """An error answer without a more specific class; a handler's terminal failure lands here."""


class NotReadyError(ClientError):
    """470: the invocation (or workflow) exists but has not completed yet."""


class NotFoundError(ClientError):
    """404: no such service, handler or invocation (or a handler failed with code 404)."""


class ConflictError(ClientError):
    """409: the workflow run was already invoked, the invocation was killed, and the like."""


class BadRequestError(ClientError):
    """400: the ingress rejected the request as malformed."""


class TransportError(ClientError):
    """No HTTP answer: connection refused or reset, or the timeout ran out."""


class ResponseDecodeError(ClientError):
    """A successful answer whose body could not be decoded into the requested output type."""


_BY_STATUS: dict[int, type[ClientError]] = {
    400: BadRequestError,
    404: NotFoundError,
    409: ConflictError,
    470: NotReadyError,
}


def error_from_response(status: int, headers: Mapping[str, str], body: bytes) -> ClientError:
    """The error an HTTP error answer stands for. ``headers`` keys must be lower-case."""
    cls = _BY_STATUS.get(status, InvocationError)
    code: int | None = status
    message = ""
    metadata: dict[str, str] = {}
    stacktrace: str | None = None
    source = _source(headers.get("x-restate-error-source"))
    parsed = _json_object(body)
    if parsed is not None:
        raw_code, raw_message = parsed.get("code"), parsed.get("message")
        raw_metadata, raw_stacktrace = parsed.get("metadata"), parsed.get("stacktrace")
        if isinstance(raw_code, int) and not isinstance(raw_code, bool):
            code = raw_code
        if isinstance(raw_message, str):
            message = raw_message
        if isinstance(raw_metadata, dict):
            metadata = {str(k): str(v) for k, v in raw_metadata.items()}
        if isinstance(raw_stacktrace, str):
            stacktrace = raw_stacktrace
        source = source or _source(parsed.get("source"))
    else:
        message = body.decode("utf-8", errors="replace").strip()
    if not message:
        message = f"HTTP {status}"
    return cls(
        message,
        code=code,
        metadata=metadata,
        source=source,
        stacktrace=stacktrace,
        invocation_id=headers.get("x-restate-id"),
    )


def _source(value: object) -> ErrorSource | None:
    if value == "ingress":
        return "ingress"
    if value == "invocation":
        return "invocation"
    return None


def _json_object(body: bytes) -> dict[str, object] | None:
    try:
        parsed = json.loads(body) if body else None
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None
