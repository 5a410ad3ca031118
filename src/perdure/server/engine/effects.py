"""What the engine asks its drivers to do once the writes of a transition are durable.

Effects are released only after the group commit that contains their writes ("durable before
visible"), in the order the transitions produced them.
"""

from __future__ import annotations

from dataclasses import dataclass

from perdure.protocol import Frame, InvocationId
from perdure.server.records import Invocation, Result


@dataclass(frozen=True, slots=True)
class StartAttempt:
    """Run an attempt: replay the journal as committed by the batch that asked for it (the
    engine reads it right after that commit and hands it over as an ``AttemptStart``)."""

    invocation_id: InvocationId


@dataclass(frozen=True, slots=True)
class AttemptStart:
    """Everything an attempt replays, read by the engine from the batch that started it."""

    invocation: Invocation
    journal: tuple[Frame, ...]
    state: tuple[tuple[bytes, bytes], ...]
    """The key's whole state (eager state), or () with ``partial_state``."""
    partial_state: bool
    """The SDK must ask for state it reads (lazy state, or a service without state)."""


@dataclass(frozen=True, slots=True)
class Forward:
    """Stream a notification, now in the journal, into the live attempt (if there is one)."""

    invocation_id: InvocationId
    frame: Frame


@dataclass(frozen=True, slots=True)
class AbortAttempt:
    """Stop the live attempt without waiting for the deployment (kill, pause)."""

    invocation_id: InvocationId


@dataclass(frozen=True, slots=True)
class Completed:
    """Answer ingress requests waiting for this invocation."""

    invocation_id: InvocationId
    result: Result
    expires_at: int | None


@dataclass(frozen=True, slots=True)
class TimerSet:
    """A timer was added: the timer driver may need to wake earlier."""

    fire_at: int


@dataclass(frozen=True, slots=True)
class DeadlockDetected:
    """A request-response cycle closed: report it (it lasts until one member is cancelled)."""

    cycle: tuple[InvocationId, ...]
    description: str


@dataclass(frozen=True, slots=True)
class Outgoing:
    """A message to another engine's partition is in the outbox (up to ``seq`` of its source):
    deliver it."""

    source: int
    target: int
    seq: int


Effect = StartAttempt | Forward | AbortAttempt | Completed | TimerSet | DeadlockDetected | Outgoing
