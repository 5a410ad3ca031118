"""The commands of a live attempt: checked against the official server's preconditions,
journaled, then applied (state, promises, sleeps, calls, signals, attach/output); and ``ctx.run``
proposals, stored as run completions."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from perdure.protocol import AwakeableId, Frame, InvalidIdError, InvocationId, MessageType
from perdure.protocol import messages as m
from perdure.server.engine import lifecycle, outbox
from perdure.server.engine import notifications as note
from perdure.server.engine.deadlock import WaitGraph, describe_cycle, find_cycle
from perdure.server.engine.effects import DeadlockDetected, TimerSet
from perdure.server.engine.messages import AttachMessage, InvokeMessage
from perdure.server.engine.requests import (
    PROTOCOL_VIOLATION,
    AttemptRejected,
    InvokeOutcome,
    InvokeRequest,
)
from perdure.server.records import NOT_FOUND, Invocation, Result, Sink, Status, TimerKind

if TYPE_CHECKING:
    from perdure.server.engine.core import Core

T = MessageType


def on_command(core: Core, invocation_id: InvocationId, frame: Frame, pin: tuple[str, int]) -> None:
    """A command of the live attempt: check, journal, apply (one atomic step)."""
    inv = core.store.get_invocation(invocation_id)
    if inv is None or inv.status is not Status.INVOKED:
        return
    message = frame.message()
    check(core, inv, frame.type, message)
    now = core.now()
    if inv.deployment_id is None:
        inv.deployment_id, inv.protocol_version = pin
    core.store.append_journal(inv, frame, now)
    inv.attempts_since_progress = 0
    inv.modified_at = now
    if isinstance(message, m.OutputCommand):
        if message.HasField("failure"):
            inv.result = note.failure_result(message.failure)
        else:
            inv.result = Result(value=message.value.content)
    core.store.put_invocation(inv)
    if core.local_only:
        apply(core, inv, message)
    else:
        with outbox.sending_as(core, inv.id.partition_key):
            apply(core, inv, message)


def check(core: Core, inv: Invocation, kind: MessageType, message: m.Message) -> None:
    """The official server's preconditions; a violation fails the attempt."""
    if not kind.is_command or kind is T.INPUT:
        raise AttemptRejected(PROTOCOL_VIOLATION, f"unexpected message {kind.name}")
    state_reads = (T.GET_LAZY_STATE, T.GET_LAZY_STATE_KEYS, T.GET_EAGER_STATE,
                   T.GET_EAGER_STATE_KEYS)  # fmt: skip
    if kind in state_reads and not inv.keyed:
        raise AttemptRejected(PROTOCOL_VIOLATION, "state is only available to keyed handlers")
    if kind in (T.SET_STATE, T.CLEAR_STATE, T.CLEAR_ALL_STATE) and inv.handler_ty not in (
        "EXCLUSIVE",
        "WORKFLOW",
    ):
        raise AttemptRejected(
            PROTOCOL_VIOLATION, "state can only be written by exclusive or workflow handlers"
        )
    if kind in (T.GET_PROMISE, T.PEEK_PROMISE, T.COMPLETE_PROMISE) and inv.service_ty != "WORKFLOW":
        raise AttemptRejected(PROTOCOL_VIOLATION, "promises are only available to workflows")
    if isinstance(message, m.CallCommand | m.OneWayCallCommand):
        service = core.registry.service(message.service_name)
        if service is None or service.handler(message.handler_name) is None:
            raise AttemptRejected(
                404, f"the target {message.service_name}/{message.handler_name} is not found"
            )
        if message.HasField("idempotency_key") and not message.idempotency_key:
            raise AttemptRejected(400, "the idempotency key must not be empty")
    if isinstance(message, m.OutputCommand) and inv.result is not None:
        raise AttemptRejected(PROTOCOL_VIOLATION, "a second Output: the journal has one")
    if isinstance(message, m.SleepCommand) and message.wake_up_time > MAX_TIME_MS:
        raise AttemptRejected(PROTOCOL_VIOLATION, _too_late("a sleep", message.wake_up_time))
    if isinstance(message, m.OneWayCallCommand) and message.invoke_time > MAX_TIME_MS:
        raise AttemptRejected(PROTOCOL_VIOLATION, _too_late("a call", message.invoke_time))
    if isinstance(message, m.SendSignalCommand):
        _parse_id(message.target_invocation_id)
    if isinstance(message, m.AttachInvocationCommand | m.GetInvocationOutputCommand):
        _target_id(message)
    if isinstance(message, m.CompleteAwakeableCommand):
        try:
            AwakeableId.parse(message.awakeable_id)
        except InvalidIdError as exc:
            raise AttemptRejected(400, str(exc)) from None


def apply(core: Core, inv: Invocation, message: m.Message) -> None:  # noqa: PLR0915
    store = core.store
    match message:
        case m.GetLazyStateCommand():
            value = store.get_state_value(inv.service, inv.key, message.key)
            result = None if value is None else Result(value=value)
            core._notify(
                inv.id,
                *note.completion(T.GET_LAZY_STATE_COMPLETION, message.result_completion_id, result),
            )
        case m.GetLazyStateKeysCommand():
            keys = [k for k, _ in store.get_state(inv.service, inv.key)]
            core._notify(inv.id, *note.state_keys(message.result_completion_id, keys))
        case m.SetStateCommand():
            store.set_state(inv.service, inv.key, message.key, message.value.content)
        case m.ClearStateCommand():
            store.clear_state(inv.service, inv.key, message.key)
        case m.ClearAllStateCommand():
            store.clear_all_state(inv.service, inv.key)
        case m.GetPromiseCommand():
            promise = store.get_promise(inv.service, inv.key, message.key)
            if promise is None:
                store.add_promise_listener(
                    inv.service, inv.key, message.key, inv.id, message.result_completion_id
                )
            else:
                core._notify(
                    inv.id,
                    *note.completion(
                        T.GET_PROMISE_COMPLETION, message.result_completion_id, promise
                    ),
                )
        case m.PeekPromiseCommand():
            promise = store.get_promise(inv.service, inv.key, message.key)
            core._notify(
                inv.id,
                *note.completion(T.PEEK_PROMISE_COMPLETION, message.result_completion_id, promise),
            )
        case m.CompletePromiseCommand():
            complete_promise(core, inv, message)
        case m.SleepCommand():
            store.add_timer(
                message.wake_up_time, inv.id, TimerKind.SLEEP, message.result_completion_id
            )
            core.emit(TimerSet(message.wake_up_time))
        case m.CallCommand():
            caller = (inv.id, message.result_completion_id)
            outcome = _invoke_child(core, _child_request(inv, message, caller=caller))
            core._notify(
                inv.id,
                *note.invocation_id(
                    message.invocation_id_notification_idx, str(outcome.invocation_id)
                ),
            )
            if outcome.result is not None:
                core._notify(
                    inv.id,
                    *note.completion(
                        T.CALL_COMPLETION, message.result_completion_id, outcome.result
                    ),
                )
            elif core.owns(outcome.invocation_id.partition_key):
                check_deadlock(core, inv.id)  # local only: see deadlock
        case m.OneWayCallCommand():
            outcome = _invoke_child(
                core,
                _child_request(inv, message, execution_time=message.invoke_time or None, send=True),
            )
            core._notify(
                inv.id,
                *note.invocation_id(
                    message.invocation_id_notification_idx, str(outcome.invocation_id)
                ),
            )
        case m.SendSignalCommand():
            target = _parse_id(message.target_invocation_id)
            result = _signal_result(message)
            if message.WhichOneof("signal_id") == "idx":
                core.signal(target, index=message.idx, result=result)
            else:
                core.signal(target, name=message.name, result=result)
        case m.CompleteAwakeableCommand():
            awakeable = AwakeableId.parse(message.awakeable_id)
            result = (
                note.failure_result(message.failure)
                if message.HasField("failure")
                else Result(value=message.value.content)
            )
            if not awakeable.legacy:
                core.signal(awakeable.invocation_id, index=awakeable.signal_index, result=result)
        case m.AttachInvocationCommand() | m.GetInvocationOutputCommand() if not core.owns(
            _target_id(message).partition_key
        ):
            kind = (
                T.ATTACH_INVOCATION_COMPLETION
                if isinstance(message, m.AttachInvocationCommand)
                else T.GET_INVOCATION_OUTPUT_COMPLETION
            )
            target = _target_id(message)
            body = AttachMessage(target, inv.id, message.result_completion_id, int(kind))
            outbox.send(core, target.partition_key, body)
        case m.AttachInvocationCommand():
            attached = core.store.get_invocation(_target_id(message))
            cid = message.result_completion_id
            kind = T.ATTACH_INVOCATION_COMPLETION
            if attached is None:
                core._notify(inv.id, *note.completion(kind, cid, NOT_FOUND))
            elif attached.status is Status.COMPLETED:
                core._notify(inv.id, *note.completion(kind, cid, attached.result))
            else:
                store.add_sink(attached.id, Sink(inv.id, cid, kind))
                check_deadlock(core, inv.id)
        case m.GetInvocationOutputCommand():
            peeked = core.store.get_invocation(_target_id(message))
            cid = message.result_completion_id
            kind = T.GET_INVOCATION_OUTPUT_COMPLETION
            if peeked is None:
                core._notify(inv.id, *note.completion(kind, cid, NOT_FOUND))
            elif peeked.status is Status.COMPLETED:
                core._notify(inv.id, *note.completion(kind, cid, peeked.result))
            else:
                core._notify(inv.id, *note.completion(kind, cid, note.VOID))
        case _:
            pass  # Output, Run, eager state reads: journaled, nothing else to do


def _invoke_child(core: Core, req: InvokeRequest) -> InvokeOutcome:
    """Invoke a Call's or OneWayCall's callee: here, or in the partition that owns it (a
    message; the caller chose the callee's id, so it learns the id at once and the result, if
    any, later)."""
    if core.local_only:
        return core.invoke(req)
    invocation_id = lifecycle.invocation_id_for(core, req)
    req = dataclasses.replace(req, invocation_id=invocation_id)
    if core.owns(invocation_id.partition_key):
        return core.invoke(req)
    body = InvokeMessage(
        invocation_id, req.service, req.handler, req.key, req.body, tuple(req.headers),
        req.idempotency_key, req.execution_time, req.send, req.caller, req.invoked_by, core.now(),
    )  # fmt: skip
    outbox.send(core, invocation_id.partition_key, body)
    return InvokeOutcome(invocation_id)


def check_deadlock(core: Core, waiter: InvocationId) -> None:
    """``waiter`` now waits for another invocation: report a wait-for cycle it closed."""
    cycle = find_cycle(waiter, WaitGraph(core.store))
    if cycle is not None:
        ids = tuple(c.id for c in cycle)
        core.emit(DeadlockDetected(ids, describe_cycle(cycle)))


def complete_promise(core: Core, inv: Invocation, message: m.CompletePromiseCommand) -> None:
    store = core.store
    cid = message.result_completion_id
    if store.get_promise(inv.service, inv.key, message.key) is not None:
        failure = Result.failure(409, "promise was already completed")
        core._notify(inv.id, *note.completion(T.COMPLETE_PROMISE_COMPLETION, cid, failure))
        return
    if message.HasField("completion_failure"):
        f = message.completion_failure
        result = note.failure_result(f)
    else:
        result = Result(value=message.completion_value.content)
    store.complete_promise(inv.service, inv.key, message.key, result)
    core._notify(inv.id, *note.completion(T.COMPLETE_PROMISE_COMPLETION, cid, note.VOID))
    for listener, listener_cid in store.take_promise_listeners(inv.service, inv.key, message.key):
        core._notify(listener, *note.completion(T.GET_PROMISE_COMPLETION, listener_cid, result))


def on_proposal(core: Core, invocation_id: InvocationId, frame: Frame) -> None:
    """A ctx.run result: store it as a RunCompletion and send that back."""
    proposal = frame.message()
    assert isinstance(proposal, m.ProposeRunCompletionMessage)
    inv = core.store.get_invocation(invocation_id)
    if inv is None or inv.status is not Status.INVOKED:
        return
    cid = proposal.result_completion_id
    runs = core.store.read_journal_of_type(invocation_id, T.RUN)
    if not any(_run_completion_id(run) == cid for run in runs):
        raise AttemptRejected(
            PROTOCOL_VIOLATION, f"a run completion for {cid}, which no Run command awaits"
        )
    if core.store.has_notification(invocation_id, [f"c{cid}"]):
        return  # already completed (and sent): a repeated proposal changes nothing
    if proposal.HasField("failure"):
        result = note.failure_result(proposal.failure)
    else:
        result = Result(value=proposal.value)
    core._notify(
        invocation_id,
        *note.completion(T.RUN_COMPLETION, proposal.result_completion_id, result),
        progress=True,
    )


MAX_TIME_MS = 2**63 - 1 - 100 * 365 * 86_400_000
"""Times are stored as signed 64-bit milliseconds; leave room for a retention added later."""


def _too_late(what: str, at: int) -> str:
    return f"{what} until {at} ms since the epoch is beyond the largest time the server keeps"


def _run_completion_id(frame: Frame) -> int:
    message = frame.message()
    assert isinstance(message, m.RunCommand)
    return message.result_completion_id


def _parse_id(text: str) -> InvocationId:
    try:
        return InvocationId.parse(text)
    except InvalidIdError as exc:
        raise AttemptRejected(400, str(exc)) from None


def _target_id(message: m.AttachInvocationCommand | m.GetInvocationOutputCommand) -> InvocationId:
    match message.WhichOneof("target"):
        case "invocation_id":
            return _parse_id(message.invocation_id)
        case "idempotent_request_target":
            t = message.idempotent_request_target
            return InvocationId.for_idempotent_request(
                t.service_name,
                t.handler_name,
                t.idempotency_key,
                key=t.service_key if t.HasField("service_key") else None,
            )
        case "workflow_target":
            w = message.workflow_target
            return InvocationId.for_workflow(w.workflow_name, w.workflow_key)
        case _:
            raise AttemptRejected(PROTOCOL_VIOLATION, "attach/get-output without a target")


def _signal_result(message: m.SendSignalCommand) -> Result | None:
    match message.WhichOneof("result"):
        case "value":
            return Result(value=message.value.content)
        case "failure":
            return note.failure_result(message.failure)
        case _:
            return None


def _child_request(
    parent: Invocation, message: m.CallCommand | m.OneWayCallCommand, **extra: Any
) -> InvokeRequest:
    """The invocation a Call or OneWayCall command of ``parent`` asks for."""
    return InvokeRequest(
        service=message.service_name,
        handler=message.handler_name,
        key=message.key,
        body=message.parameter,
        headers=[(h.key, h.value) for h in message.headers],
        idempotency_key=message.idempotency_key if message.HasField("idempotency_key") else None,
        invoked_by=str(parent.id),
        **extra,
    )
