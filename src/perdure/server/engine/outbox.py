"""Sending to partitions this engine does not own: a message written to the sender partition's
durable outbox, in the batch of the transition that sends it (see ``messages``). The driver
delivers it once that batch is durable (``delivery``).

The sender partition is the partition of the invocation whose transition sends (``sending_as``),
so that what one partition sends to another arrives in the order it was sent (an invoke before
the cancel of the same callee, say).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from perdure.server.engine.effects import Outgoing
from perdure.server.engine.messages import Body, NotOwned, OutboxMessage

if TYPE_CHECKING:
    from perdure.server.engine.core import Core


class sending_as:  # used like a function: ``with sending_as(core, pk):``
    """Messages sent within are sent by the partition of ``partition_key`` (a plain class, not
    ``contextlib.contextmanager``: it wraps every command, so it should cost next to nothing)."""

    __slots__ = ("core", "partition")

    def __init__(self, core: Core, partition_key: int) -> None:
        self.core = core
        self.partition = core.partitions.partition_of(partition_key)

    def __enter__(self) -> None:
        self.core.senders.append(self.partition)

    def __exit__(self, *exc: object) -> None:
        self.core.senders.pop()


def sender(core: Core) -> int:
    """The partition sending now: the innermost ``sending_as``, else the lowest owned one (an
    event not of one invocation, e.g. an awakeable completed through the ingress)."""
    if core.senders:
        return core.senders[-1]
    if not core.owned:
        raise NotOwned(-1)
    return min(core.owned)


def send(core: Core, target_pk: int, body: Body) -> None:
    """Write a message to the partition of ``target_pk`` (not owned here) into the outbox."""
    source = sender(core)
    target = core.partitions.partition_of(target_pk)
    source_pk = core.partitions.key_range(source).start
    seq = core.store.next_outbox_seq(source_pk)
    message = OutboxMessage(source, seq, target, body)
    core.store.add_outbox(source_pk, seq, target, message.to_bytes())
    core.emit(Outgoing(source, target, seq))
