"""The engine's transitions: (stored state, event) -> (writes, effects).

``Core`` owns no I/O. Each public method is one event; it reads and writes through the ``Store``
(inside the transaction the driver keeps open) and queues ``Effect``s that the driver releases
after the group commit. Time comes from the injected ``now`` function.

Events: an invocation is requested (ingress, or a Call/OneWayCall command); an attempt sends a
command, a run proposal, or ends (End, Suspension, Error/failure); a timer fires; a signal arrives
(awakeable, cancel); an operator cancels, kills, purges, pauses or resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from perdure.protocol import (
    AwakeableId,
    Frame,
    InvalidIdError,
    InvocationId,
    MessageType,
    partition_key_of,
)
from perdure.protocol import messages as m
from perdure.server.engine import notifications as note
from perdure.server.engine import state_edits
from perdure.server.engine.deadlock import WaitGraph, describe_cycle, find_cycle
from perdure.server.engine.effects import (
    AbortAttempt,
    Completed,
    DeadlockDetected,
    Effect,
    Forward,
    StartAttempt,
    TimerSet,
)
from perdure.server.records import (
    CANCELED,
    KILLED,
    NOT_FOUND,
    WORKFLOW_ALREADY_INVOKED,
    Invocation,
    Result,
    Sink,
    Status,
    Timer,
    TimerKind,
)
from perdure.server.registry import Registry
from perdure.server.storage import Store

T = MessageType
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


@dataclass(frozen=True, slots=True)
class InvokeOutcome:
    invocation_id: InvocationId
    previously_accepted: bool = False
    result: Result | None = None
    """Known at once: a stored result of a duplicate, or a workflow-run conflict."""
    expires_at: int | None = None
    """When a stored result (``result``) is dropped."""
    execution_time: int | None = None


class Core:
    def __init__(self, store: Store, registry: Registry, now: Callable[[], int]) -> None:
        self.store = store
        self.registry = registry
        self.now = now
        self._effects: list[Effect] = []

    def take_effects(self) -> list[Effect]:
        effects, self._effects = self._effects, []
        return effects

    def get(self, invocation_id: InvocationId) -> Invocation | None:
        return self.store.get_invocation(invocation_id)

    # =========================================================================================
    # Creating invocations
    # =========================================================================================

    def invoke(self, req: InvokeRequest) -> InvokeOutcome:
        service = self.registry.service(req.service)
        handler = service.handler(req.handler) if service else None
        if service is None or handler is None:
            raise UnknownTarget(f"{req.service}/{req.handler}")
        handler_ty = service.handler_type(handler)
        keyed = service.ty != "SERVICE"
        key = req.key if keyed else ""
        if handler_ty == "WORKFLOW":
            invocation_id = InvocationId.for_workflow(req.service, key)
        elif req.idempotency_key is not None:
            invocation_id = InvocationId.for_idempotent_request(
                req.service, req.handler, req.idempotency_key, key=key if keyed else None
            )
        else:
            invocation_id = InvocationId.new(partition_key_of(key) if keyed else None)

        if handler_ty == "WORKFLOW" or req.idempotency_key is not None:
            existing = self.store.get_invocation(invocation_id)
            if existing is not None:
                return self._duplicate(existing, req, handler_ty == "WORKFLOW")

        now = self.now()
        inv = Invocation(
            id=invocation_id,
            service=req.service,
            handler=req.handler,
            key=key,
            service_ty=service.ty,
            handler_ty=handler_ty,
            status=Status.INVOKED,
            created_at=now,
            modified_at=now,
            last_append_at=now,
            idempotency_key=req.idempotency_key,
            invoked_by=req.invoked_by,
        )
        headers = [m.Header(key=k, value=v) for k, v in req.headers]
        entry = m.InputCommand(headers=headers, value=m.Value(content=req.body))
        self.store.append_journal(inv, Frame.of(entry), now)
        if req.idempotency_key is not None:
            self.store.put_idempotency(
                req.service, key, req.handler, req.idempotency_key, invocation_id
            )
        if req.caller is not None:
            caller, cid = req.caller
            self.store.add_sink(invocation_id, Sink(caller, cid, T.CALL_COMPLETION))
        if req.execution_time is not None and req.execution_time > now:
            inv.status = Status.SCHEDULED
            inv.execution_time = req.execution_time
            self.store.add_timer(req.execution_time, invocation_id, TimerKind.START)
            self._effects.append(TimerSet(req.execution_time))
            self.store.put_invocation(inv)
        else:
            self._start_or_queue(inv)
        return InvokeOutcome(invocation_id, execution_time=inv.execution_time)

    def _duplicate(self, existing: Invocation, req: InvokeRequest, run: bool) -> InvokeOutcome:
        """A request whose deterministic id is taken: a workflow run or an idempotency key."""
        outcome = InvokeOutcome(
            existing.id,
            previously_accepted=True,
            execution_time=existing.execution_time,
            expires_at=existing.expires_at,
        )
        if req.send:
            return outcome
        if run:
            return InvokeOutcome(existing.id, result=WORKFLOW_ALREADY_INVOKED)
        if existing.status is Status.COMPLETED:
            return InvokeOutcome(
                existing.id, result=existing.result, expires_at=existing.expires_at
            )
        if req.caller is not None:
            caller, cid = req.caller
            self.store.add_sink(existing.id, Sink(caller, cid, T.CALL_COMPLETION))
        return InvokeOutcome(existing.id)

    def _start_or_queue(self, inv: Invocation) -> None:
        if inv.exclusive:
            holder = self.store.lock_holder(inv.service, inv.key)
            if holder is not None and holder != str(inv.id):
                inv.status = Status.INBOXED
                inv.modified_at = self.now()
                self.store.push_inbox(inv.service, inv.key, inv.id)
                self.store.put_invocation(inv)
                return
            self.store.take_lock(inv.service, inv.key, inv.id)
        self._start(inv)

    def _start(self, inv: Invocation) -> None:
        inv.status = Status.INVOKED
        inv.awaiting = []
        inv.next_retry_at = None
        inv.modified_at = self.now()
        self.store.put_invocation(inv)
        self._effects.append(StartAttempt(inv.id))

    def recover(self) -> int:
        """After a restart: start an attempt for every invocation that was running."""
        running = self.store.invocations_with_status(Status.INVOKED)
        for inv in running:
            self._effects.append(StartAttempt(inv.id))
        return len(running)

    def restart(self, invocation_id: InvocationId) -> bool:
        """Start a running invocation over from its journal (new code under its deployment):
        a running one gets a fresh attempt (the invoker replaces the live one), one backing off
        is retried now. False when it is in neither state."""
        inv = self.store.get_invocation(invocation_id)
        if inv is None:
            return False
        if inv.status is Status.INVOKED:
            self._effects.append(StartAttempt(inv.id))
            return True
        if inv.status is Status.BACKING_OFF:
            self._start(inv)
            return True
        return False

    # =========================================================================================
    # Attempt events
    # =========================================================================================

    def on_command(self, invocation_id: InvocationId, frame: Frame, pin: tuple[str, int]) -> None:
        """A command of the live attempt: check, journal, apply (one atomic step)."""
        inv = self.store.get_invocation(invocation_id)
        if inv is None or inv.status is not Status.INVOKED:
            return
        message = frame.message()
        self._check(inv, frame.type, message)
        now = self.now()
        if inv.deployment_id is None:
            inv.deployment_id, inv.protocol_version = pin
        self.store.append_journal(inv, frame, now)
        inv.attempts_since_progress = 0
        inv.modified_at = now
        if isinstance(message, m.OutputCommand):
            if message.HasField("failure"):
                inv.result = note.failure_result(message.failure)
            else:
                inv.result = Result(value=message.value.content)
        self.store.put_invocation(inv)
        self._apply(inv, message)

    def _check(self, inv: Invocation, kind: MessageType, message: m.Message) -> None:
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
        if (
            kind in (T.GET_PROMISE, T.PEEK_PROMISE, T.COMPLETE_PROMISE)
            and inv.service_ty != "WORKFLOW"
        ):
            raise AttemptRejected(PROTOCOL_VIOLATION, "promises are only available to workflows")
        if isinstance(message, m.CallCommand | m.OneWayCallCommand):
            service = self.registry.service(message.service_name)
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

    def _apply(self, inv: Invocation, message: m.Message) -> None:  # noqa: PLR0915
        store = self.store
        match message:
            case m.GetLazyStateCommand():
                value = store.get_state_value(inv.service, inv.key, message.key)
                result = None if value is None else Result(value=value)
                self._notify(
                    inv.id,
                    *note.completion(
                        T.GET_LAZY_STATE_COMPLETION, message.result_completion_id, result
                    ),
                )
            case m.GetLazyStateKeysCommand():
                keys = [k for k, _ in store.get_state(inv.service, inv.key)]
                self._notify(inv.id, *note.state_keys(message.result_completion_id, keys))
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
                    self._notify(
                        inv.id,
                        *note.completion(
                            T.GET_PROMISE_COMPLETION, message.result_completion_id, promise
                        ),
                    )
            case m.PeekPromiseCommand():
                promise = store.get_promise(inv.service, inv.key, message.key)
                self._notify(
                    inv.id,
                    *note.completion(
                        T.PEEK_PROMISE_COMPLETION, message.result_completion_id, promise
                    ),
                )
            case m.CompletePromiseCommand():
                self._complete_promise(inv, message)
            case m.SleepCommand():
                store.add_timer(
                    message.wake_up_time, inv.id, TimerKind.SLEEP, message.result_completion_id
                )
                self._effects.append(TimerSet(message.wake_up_time))
            case m.CallCommand():
                outcome = self.invoke(
                    _child_request(inv, message, caller=(inv.id, message.result_completion_id))
                )
                self._notify(
                    inv.id,
                    *note.invocation_id(
                        message.invocation_id_notification_idx, str(outcome.invocation_id)
                    ),
                )
                if outcome.result is not None:
                    self._notify(
                        inv.id,
                        *note.completion(
                            T.CALL_COMPLETION, message.result_completion_id, outcome.result
                        ),
                    )
                else:
                    self._check_deadlock(inv.id)
            case m.OneWayCallCommand():
                outcome = self.invoke(
                    _child_request(
                        inv, message, execution_time=message.invoke_time or None, send=True
                    )
                )
                self._notify(
                    inv.id,
                    *note.invocation_id(
                        message.invocation_id_notification_idx, str(outcome.invocation_id)
                    ),
                )
            case m.SendSignalCommand():
                target = _parse_id(message.target_invocation_id)
                result = _signal_result(message)
                if message.WhichOneof("signal_id") == "idx":
                    self.signal(target, index=message.idx, result=result)
                else:
                    self.signal(target, name=message.name, result=result)
            case m.CompleteAwakeableCommand():
                awakeable = AwakeableId.parse(message.awakeable_id)
                result = (
                    note.failure_result(message.failure)
                    if message.HasField("failure")
                    else Result(value=message.value.content)
                )
                if not awakeable.legacy:
                    self.signal(
                        awakeable.invocation_id, index=awakeable.signal_index, result=result
                    )
            case m.AttachInvocationCommand():
                attached = self.store.get_invocation(_target_id(message))
                cid = message.result_completion_id
                kind = T.ATTACH_INVOCATION_COMPLETION
                if attached is None:
                    self._notify(inv.id, *note.completion(kind, cid, NOT_FOUND))
                elif attached.status is Status.COMPLETED:
                    self._notify(inv.id, *note.completion(kind, cid, attached.result))
                else:
                    store.add_sink(attached.id, Sink(inv.id, cid, kind))
                    self._check_deadlock(inv.id)
            case m.GetInvocationOutputCommand():
                peeked = self.store.get_invocation(_target_id(message))
                cid = message.result_completion_id
                kind = T.GET_INVOCATION_OUTPUT_COMPLETION
                if peeked is None:
                    self._notify(inv.id, *note.completion(kind, cid, NOT_FOUND))
                elif peeked.status is Status.COMPLETED:
                    self._notify(inv.id, *note.completion(kind, cid, peeked.result))
                else:
                    self._notify(inv.id, *note.completion(kind, cid, note.VOID))
            case _:
                pass  # Output, Run, eager state reads: journaled, nothing else to do

    def _check_deadlock(self, waiter: InvocationId) -> None:
        """``waiter`` now waits for another invocation: report a wait-for cycle it closed."""
        cycle = find_cycle(waiter, WaitGraph(self.store))
        if cycle is not None:
            ids = tuple(c.id for c in cycle)
            self._effects.append(DeadlockDetected(ids, describe_cycle(cycle)))

    def _complete_promise(self, inv: Invocation, message: m.CompletePromiseCommand) -> None:
        store = self.store
        cid = message.result_completion_id
        if store.get_promise(inv.service, inv.key, message.key) is not None:
            failure = Result.failure(409, "promise was already completed")
            self._notify(inv.id, *note.completion(T.COMPLETE_PROMISE_COMPLETION, cid, failure))
            return
        if message.HasField("completion_failure"):
            f = message.completion_failure
            result = note.failure_result(f)
        else:
            result = Result(value=message.completion_value.content)
        store.complete_promise(inv.service, inv.key, message.key, result)
        self._notify(inv.id, *note.completion(T.COMPLETE_PROMISE_COMPLETION, cid, note.VOID))
        for listener, listener_cid in store.take_promise_listeners(
            inv.service, inv.key, message.key
        ):
            self._notify(listener, *note.completion(T.GET_PROMISE_COMPLETION, listener_cid, result))

    def on_proposal(self, invocation_id: InvocationId, frame: Frame) -> None:
        """A ctx.run result: store it as a RunCompletion and send that back."""
        proposal = frame.message()
        assert isinstance(proposal, m.ProposeRunCompletionMessage)
        inv = self.store.get_invocation(invocation_id)
        if inv is None or inv.status is not Status.INVOKED:
            return
        cid = proposal.result_completion_id
        runs = self.store.read_journal_of_type(invocation_id, T.RUN)
        if not any(_run_completion_id(run) == cid for run in runs):
            raise AttemptRejected(
                PROTOCOL_VIOLATION, f"a run completion for {cid}, which no Run command awaits"
            )
        if self.store.has_notification(invocation_id, [f"c{cid}"]):
            return  # already completed (and sent): a repeated proposal changes nothing
        if proposal.HasField("failure"):
            result = note.failure_result(proposal.failure)
        else:
            result = Result(value=proposal.value)
        self._notify(
            invocation_id,
            *note.completion(T.RUN_COMPLETION, proposal.result_completion_id, result),
            progress=True,
        )

    def on_end(self, invocation_id: InvocationId) -> None:
        inv = self.store.get_invocation(invocation_id)
        if inv is None or inv.status is not Status.INVOKED:
            return
        if inv.result is None:
            raise AttemptRejected(PROTOCOL_VIOLATION, "End without an Output in the journal")
        self._complete(inv, inv.result)

    def on_suspension(self, invocation_id: InvocationId, message: m.SuspensionMessage) -> None:
        inv = self.store.get_invocation(invocation_id)
        if inv is None or inv.status is not Status.INVOKED:
            return
        awaiting = (
            [f"c{c}" for c in message.waiting_completions]
            + [f"s{s}" for s in message.waiting_signals]
            + [f"n{n}" for n in message.waiting_named_signals]
        )
        if not awaiting:
            self.on_failure(invocation_id, PROTOCOL_VIOLATION, "suspension awaiting nothing")
            return
        if self.store.has_notification(inv.id, awaiting):  # arrived while the SDK suspended
            self._start(inv)
            return
        inv.status = Status.SUSPENDED
        inv.awaiting = awaiting
        inv.modified_at = self.now()
        self.store.put_invocation(inv)

    def on_failure(
        self,
        invocation_id: InvocationId,
        code: int,
        message: str,
        next_retry_delay: int | None = None,
    ) -> None:
        """The attempt failed (ErrorMessage, transport, protocol): back off, pause, or kill."""
        inv = self.store.get_invocation(invocation_id)
        if inv is None or inv.status is not Status.INVOKED:
            return
        now = self.now()
        # A delay the SDK chose (its ctx.run retry policy) does not consume the server's budget.
        if next_retry_delay is None:
            inv.retry_count += 1
        inv.attempts_since_progress += 1
        inv.last_failure = f"[{code}] {message}"
        inv.modified_at = now
        service = self.registry.service(inv.service)
        policy = (
            service.retry_policy(service.handler(inv.handler))
            if service
            else self.registry.default_retry_policy()
        )
        if next_retry_delay is None and policy.exhausted(inv.retry_count):
            if policy.on_max_attempts == "KILL":
                self._complete(inv, Result.failure(code, message))
            else:
                inv.status = Status.PAUSED
                self.store.put_invocation(inv)
            return
        delay = next_retry_delay if next_retry_delay is not None else policy.delay(inv.retry_count)
        inv.status = Status.BACKING_OFF
        inv.next_retry_at = now + delay
        self.store.add_timer(inv.next_retry_at, inv.id, TimerKind.RETRY)
        self._effects.append(TimerSet(inv.next_retry_at))
        self.store.put_invocation(inv)

    # =========================================================================================
    # Notifications, signals, timers
    # =========================================================================================

    def _notify(
        self, invocation_id: InvocationId, frame: Frame, key: str, *, progress: bool = False
    ) -> None:
        """Append a notification to an invocation's journal and act on it.

        Dropped when the invocation is gone or completed; signals are de-duplicated per id.
        """
        inv = self.store.get_invocation(invocation_id)
        if inv is None or inv.status is Status.COMPLETED:
            return
        if key[0] in "sn" and self.store.has_notification(invocation_id, [key]):
            return
        frame = note.for_protocol(frame, inv.protocol_version)
        self.store.append_journal(inv, frame, self.now(), key)
        if progress:
            inv.attempts_since_progress = 0
        if inv.status is Status.INVOKED:
            self.store.put_invocation(inv)
            self._effects.append(Forward(inv.id, frame))
        elif (inv.status is Status.SUSPENDED and key in inv.awaiting) or (
            inv.status is Status.PAUSED and key == "s1"
        ):
            self._start(inv)
        else:
            self.store.put_invocation(inv)

    def signal(
        self,
        invocation_id: InvocationId,
        *,
        index: int | None = None,
        name: str | None = None,
        result: Result | None = None,
    ) -> None:
        """Deliver a signal (awakeable completion, named signal); index 1 is cancel."""
        if index == 1:
            self.cancel(invocation_id)
            return
        self._notify(invocation_id, *note.signal(index, name, result))

    def fire_timers(self, now: int) -> int:
        """Fire every due timer; returns how many fired."""
        due = self.store.due_timers(now)
        for timer in due:
            self.fire_timer(timer)
        return len(due)

    def fire_timer(self, timer: Timer) -> None:
        self.store.delete_timer(timer)
        match timer.kind:
            case TimerKind.SLEEP:
                assert timer.completion_id is not None
                self._notify(
                    timer.invocation_id,
                    *note.completion(T.SLEEP_COMPLETION, timer.completion_id, note.VOID),
                )
            case TimerKind.START:
                inv = self.store.get_invocation(timer.invocation_id)
                if inv is not None and inv.status is Status.SCHEDULED:
                    self._start_or_queue(inv)
            case TimerKind.RETRY:
                inv = self.store.get_invocation(timer.invocation_id)
                if inv is not None and inv.status is Status.BACKING_OFF:
                    self._start(inv)
            case TimerKind.EXPIRE:
                inv = self.store.get_invocation(timer.invocation_id)
                if inv is not None and inv.status is Status.COMPLETED:
                    self._purge(inv)

    def retry_timer_later(self, timer: Timer, at: int, message: str) -> None:
        """Firing ``timer`` raised: fire it again at ``at``, and say why on its invocation."""
        self.store.delete_timer(timer)
        self.store.add_timer(at, timer.invocation_id, timer.kind, timer.completion_id)
        self._effects.append(TimerSet(at))
        self.record_failure(timer.invocation_id, message)

    # =========================================================================================
    # Containment: a transition that raised (rolled back) fails its own invocation only
    # =========================================================================================

    def on_internal_error(self, invocation_id: InvocationId, message: str) -> None:
        """A running invocation's attempt fails (retried per policy, visible as its last
        failure); any other is left as it is, with the failure recorded."""
        inv = self.store.get_invocation(invocation_id)
        if inv is None or inv.status is Status.COMPLETED:
            return
        if inv.status is Status.INVOKED:
            self.on_failure(invocation_id, INTERNAL_ERROR, message)
        else:
            self.record_failure(invocation_id, message)

    def record_failure(self, invocation_id: InvocationId, message: str) -> None:
        inv = self.store.get_invocation(invocation_id)
        if inv is not None and inv.status is not Status.COMPLETED:
            inv.last_failure = f"[{INTERNAL_ERROR}] {message}"
            inv.modified_at = self.now()
            self.store.put_invocation(inv)

    def park(self, invocation_id: InvocationId, message: str) -> None:
        """The last resort when even failing an invocation raised: pause it, with the reason
        (an operator resumes it once the cause is fixed)."""
        inv = self.store.get_invocation(invocation_id)
        if inv is not None and inv.status is not Status.COMPLETED:
            inv.status = Status.PAUSED
            inv.last_failure = f"[{INTERNAL_ERROR}] {message}"
            inv.modified_at = self.now()
            self.store.put_invocation(inv)

    # =========================================================================================
    # Completion and cleanup
    # =========================================================================================

    def _retention(self, inv: Invocation) -> int:
        service = self.registry.service(inv.service)
        if service is None:
            return self.registry.defaults.journal_retention
        handler = service.handler(inv.handler)
        if inv.handler_ty == "WORKFLOW":
            return service.retention(handler, "workflow_completion_retention")
        if inv.idempotency_key is not None:
            return service.retention(handler, "idempotency_retention")
        return service.retention(handler, "journal_retention")

    def _complete(self, inv: Invocation, result: Result) -> None:
        now = self.now()
        inv.status = Status.COMPLETED
        inv.result = result
        inv.completed_at = now
        inv.modified_at = now
        inv.awaiting = []
        retention = self._retention(inv)
        inv.expires_at = now + retention
        self.store.delete_timers_of(inv.id)
        self.store.put_invocation(inv)
        self._effects.append(Completed(inv.id, result, inv.expires_at))
        for sink in self.store.take_sinks(inv.id):
            self._notify(
                sink.caller,
                *note.completion(MessageType(sink.notification_type), sink.completion_id, result),
            )
        if inv.exclusive and self.store.lock_holder(inv.service, inv.key) == str(inv.id):
            self._release_lock(inv.service, inv.key)
        if retention <= 0:
            self._purge(inv)
        else:
            self.store.add_timer(inv.expires_at, inv.id, TimerKind.EXPIRE)
            self._effects.append(TimerSet(inv.expires_at))

    def _release_lock(self, service: str, key: str) -> None:
        self.store.release_lock(service, key)
        entry = self.store.pop_inbox(service, key)
        while entry is not None and state_edits.is_queued_edit(entry):
            state_edits.apply_queued(self.store, key, entry)  # queued behind the lock, like calls
            entry = self.store.pop_inbox(service, key)
        if entry is not None:
            nxt = self.store.get_invocation(InvocationId.parse(entry))
            if nxt is not None and nxt.status is Status.INBOXED:
                self.store.take_lock(service, key, nxt.id)
                self._start(nxt)
            else:
                self._release_lock(service, key)

    def _purge(self, inv: Invocation) -> None:
        self.store.delete_invocation(inv.id)
        if inv.idempotency_key is not None:
            self.store.delete_idempotency(inv.id)
        if inv.handler_ty == "WORKFLOW":
            self.store.clear_all_state(inv.service, inv.key)
            self.store.clear_promises(inv.service, inv.key)

    # =========================================================================================
    # Operator actions (admin API). Each returns an outcome word the API maps to a status code.
    # =========================================================================================

    def cancel(self, invocation_id: InvocationId) -> str:
        """'done' (ended at once), 'appended' (cancel signal sent), 'completed', 'not_found'."""
        inv = self.store.get_invocation(invocation_id)
        if inv is None:
            return "not_found"
        if inv.status is Status.COMPLETED:
            return "completed"
        if inv.status in (Status.SCHEDULED, Status.INBOXED):
            self.store.remove_from_inbox(inv.service, inv.key, inv.id)
            self._complete(inv, CANCELED)
            return "done"
        self._notify(inv.id, *note.signal(1, None, note.VOID))
        return "appended"

    def kill(self, invocation_id: InvocationId, _seen: set[InvocationId] | None = None) -> str:
        """End an invocation now with 409 killed, and its request-response children too."""
        inv = self.store.get_invocation(invocation_id)
        if inv is None:
            return "not_found"
        if inv.status is Status.COMPLETED:
            return "completed"
        seen = _seen if _seen is not None else set()
        seen.add(inv.id)
        children = self.store.callees_of(inv.id, T.CALL_COMPLETION)
        if inv.status is Status.INBOXED:
            self.store.remove_from_inbox(inv.service, inv.key, inv.id)
        self._effects.append(AbortAttempt(inv.id))
        self._complete(inv, KILLED)
        for child in children:
            if child not in seen:
                self.kill(child, seen)
        return "done"

    def purge(self, invocation_id: InvocationId) -> str:
        inv = self.store.get_invocation(invocation_id)
        if inv is None:
            return "not_found"
        if inv.status is not Status.COMPLETED:
            return "not_completed"
        self._purge(inv)
        return "done"

    def pause(self, invocation_id: InvocationId) -> str:
        """'pausing' (202), 'paused' (200, already), 'not_running' (409), 'not_found'."""
        inv = self.store.get_invocation(invocation_id)
        if inv is None:
            return "not_found"
        if inv.status in (Status.PAUSED, Status.SUSPENDED):
            return "paused"
        if inv.status in (Status.INVOKED, Status.BACKING_OFF):
            self.store.delete_timers_of(inv.id, TimerKind.RETRY)
            inv.status = Status.PAUSED
            inv.modified_at = self.now()
            self.store.put_invocation(inv)
            self._effects.append(AbortAttempt(inv.id))
            return "pausing"
        return "not_running"

    def resume(self, invocation_id: InvocationId) -> str:
        """'done', 'completed' (409), 'not_started' (425), 'not_found'."""
        inv = self.store.get_invocation(invocation_id)
        if inv is None:
            return "not_found"
        if inv.status is Status.COMPLETED:
            return "completed"
        if inv.status in (Status.SCHEDULED, Status.INBOXED):
            return "not_started"
        if inv.status in (Status.PAUSED, Status.SUSPENDED, Status.BACKING_OFF):
            if inv.status is Status.PAUSED:
                inv.retry_count = 0
            self.store.delete_timers_of(inv.id, TimerKind.RETRY)
            self._start(inv)
        return "done"


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
