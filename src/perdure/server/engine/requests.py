"""What a transition is asked and answers: an invocation request and its outcome, and the
errors a request or a command can fail with."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from perdure.protocol import InvocationId
from perdure.server.records import Result

PROTOCOL_VIOLATION = 571
INTERNAL_ERROR = 500


class AttemptRejected(Exception):
    """A command the server refuses (unknown target, state write in a shared handler, ...).

    The attempt fails and is retried, as with the official server.
    """

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class UnknownTarget(Exception):
    """The service or handler of a request is not registered."""


@dataclass(frozen=True, slots=True)
class InvokeRequest:
    service: str
    handler: str
    key: str = ""
    body: bytes = b""
    headers: Sequence[tuple[str, str]] = ()
    idempotency_key: str | None = None
    execution_time: int | None = None
    """Absolute ms; a time in the future schedules the invocation (delayed send)."""
    send: bool = False
    caller: tuple[InvocationId, int] | None = None
    """A Call's (caller, result completion id): the caller is notified of the result."""
    invoked_by: str | None = None
    invocation_id: InvocationId | None = None
    """Chosen by the requester (a caller invoking across partitions); None: derived here."""


@dataclass(frozen=True, slots=True)
class InvokeOutcome:
    invocation_id: InvocationId
    previously_accepted: bool = False
    result: Result | None = None
    """Known at once: a stored result of a duplicate, or a workflow-run conflict."""
    expires_at: int | None = None
    """When a stored result (``result``) is dropped."""
    execution_time: int | None = None
