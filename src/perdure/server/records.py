"""The records the engine keeps durably: invocations, their results, timers, sinks, promises.

Mutable dataclasses on purpose: an engine transition loads a record, changes it, and hands it back
to storage within the same transaction.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from perdure.protocol import InvocationId


class Status(enum.StrEnum):
    """The lifecycle of an invocation (the raw values the official server reports)."""

    SCHEDULED = "scheduled"  # a delayed send waiting for its execution time
    INBOXED = "inboxed"  # queued behind the exclusive lock of its object key
    INVOKED = "invoked"  # an attempt is running or about to start
    SUSPENDED = "suspended"  # waiting for one of the notifications in ``awaiting``
    BACKING_OFF = "backing-off"  # the last attempt failed; a retry timer is set
    PAUSED = "paused"  # retries exhausted (or paused by hand); waits for resume or cancel
    COMPLETED = "completed"  # finished; the result is kept for the retention period


class TimerKind(enum.StrEnum):
    SLEEP = "sleep"  # completes a Sleep command (completion_id)
    START = "start"  # a delayed send reaches its execution time
    RETRY = "retry"  # a backing-off invocation starts its next attempt
    EXPIRE = "expire"  # a completed invocation's retention ends: purge it


@dataclass(frozen=True, slots=True)
class Result:
    """What an invocation ended with: a value or a terminal failure."""

    value: bytes | None = None
    failure_code: int | None = None
    failure_message: str = ""
    failure_metadata: tuple[tuple[str, str], ...] = ()
    """Key/value pairs a terminal error carries (protocol V6 ``Failure.metadata``)."""

    @property
    def ok(self) -> bool:
        return self.failure_code is None

    @classmethod
    def failure(cls, code: int, message: str, metadata: tuple[tuple[str, str], ...] = ()) -> Result:
        return cls(failure_code=code, failure_message=message, failure_metadata=metadata)


CANCELED = Result.failure(409, "canceled")
KILLED = Result.failure(409, "killed")
WORKFLOW_ALREADY_INVOKED = Result.failure(409, "the workflow method was already invoked")
NOT_FOUND = Result.failure(404, "not found")


@dataclass(slots=True)
class Invocation:
    id: InvocationId
    service: str
    handler: str
    key: str
    """Object/workflow key; "" for services."""
    service_ty: str
    """SERVICE, VIRTUAL_OBJECT or WORKFLOW (the manifest's names)."""
    handler_ty: str | None
    """EXCLUSIVE, SHARED, WORKFLOW, or None for a service handler."""
    status: Status
    created_at: int
    modified_at: int
    last_append_at: int
    idempotency_key: str | None = None
    deployment_id: str | None = None
    protocol_version: int | None = None
    execution_time: int | None = None
    retry_count: int = 0
    """Failed attempts counted against the retry policy."""
    attempts_since_progress: int = 0
    """Failed attempts since the journal last grew (StartMessage field 7)."""
    next_retry_at: int | None = None
    last_failure: str | None = None
    awaiting: list[str] = field(default_factory=list)
    """Notification keys a suspended invocation waits for (any one resumes it)."""
    journal_len: int = 0
    result: Result | None = None
    completed_at: int | None = None
    expires_at: int | None = None
    invoked_by: str | None = None

    @property
    def keyed(self) -> bool:
        return self.service_ty != "SERVICE"

    @property
    def exclusive(self) -> bool:
        """Holds its object key's lock while it runs."""
        return self.service_ty == "VIRTUAL_OBJECT" and self.handler_ty == "EXCLUSIVE"

    @property
    def target(self) -> str:
        if self.keyed:
            return f"{self.service}/{self.key}/{self.handler}"
        return f"{self.service}/{self.handler}"


@dataclass(frozen=True, slots=True)
class Timer:
    pk: int
    seq: int
    fire_at: int
    invocation_id: InvocationId
    kind: TimerKind
    completion_id: int | None = None

    @property
    def retention(self) -> bool:
        """The end of a completed invocation's retention: no timer row, the invocation's own
        ``expires_at`` (see ``Timers.due_expiries``)."""
        return self.seq == RETENTION_SEQ


RETENTION_SEQ = 0
"""The ``seq`` of a retention end (stored timers count from 1)."""


@dataclass(frozen=True, slots=True)
class Sink:
    """Someone waiting for an invocation's result: a caller's Call or an AttachInvocation."""

    caller: InvocationId
    completion_id: int
    notification_type: int


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    id: str
    uri: str
    use_http_11: bool
    additional_headers: dict[str, str]
    metadata: dict[str, str]
    protocol_mode: str
    min_protocol_version: int
    max_protocol_version: int
    sdk_version: str | None
    manifest: str
    """The discovered manifest, JSON."""
    created_at: int


@dataclass(frozen=True, slots=True)
class ServiceRecord:
    name: str
    revision: int
    deployment_id: str
    manifest: str
    """The service's part of the manifest, JSON."""
    overrides: str
    """Admin-API changes (PATCH /services), JSON object of ServiceMetadata field -> value."""


def notification_key(
    completion_id: int | None = None, signal: int | None = None, name: str | None = None
) -> str:
    """How a notification is named in the journal index and in suspension sets.

    Completion ids, signal indices and signal names are separate namespaces.
    """
    if completion_id is not None:
        return f"c{completion_id}"
    if signal is not None:
        return f"s{signal}"
    assert name is not None
    return f"n{name}"
