"""The SDK's replay state machine for service protocol V6: sans-IO, one per invocation attempt.

The VM owns the rules that make a handler durable; it never touches sockets or clocks.

* Input: ``feed(bytes)`` with the request body as it arrives, ``feed_eof()`` when it ends.
  ``StartMessage`` comes first; the next ``known_entries`` messages are the journal to replay
  (commands to a replay queue, notifications to a FIFO); later only notifications may come.
* Commands: every ``sys_*`` call is one command. While replaying, it is matched against the next
  journaled command (a difference is a journal mismatch, code 570) and nothing is written; once
  the last journaled command has been matched the VM is processing and writes commands out.
* Identifiers: completion ids count from 1 in program order (a state get takes one even when
  answered eagerly; a call takes two, invocation id first); awakeable signals count from 17.
* Notifications move from the FIFO to the ready map one at a time (``pop_one``), so that a race
  between futures resolves the same way on every replay.
* Output: ``take_output()`` returns the framed bytes to send; after a terminal message (End,
  Suspension, Error) the VM is closed and refuses further commands.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from perdure.protocol import messages as m
from perdure.protocol.errors import ProtocolError
from perdure.protocol.framing import FrameDecoder, encode_message
from perdure.protocol.ids import FIRST_AWAKEABLE_SIGNAL, AwakeableId, InvocationId
from perdure.protocol.messages import MessageType, type_of
from perdure.sdk.errors import JOURNAL_MISMATCH, PROTOCOL_VIOLATION, AttemptEnded, VMError


class State(enum.Enum):
    WAITING_START = "waiting start"  # nothing read yet
    WAITING_REPLAY_ENTRIES = "waiting replay entries"  # Start read, journal still arriving
    REPLAYING = "replaying"  # user code runs; commands are matched against the journal
    PROCESSING = "processing"  # user code runs; commands are written out
    CLOSED = "closed"  # a terminal message was written


class Kind(enum.IntEnum):
    """The three namespaces of notification ids."""

    COMPLETION = 0
    SIGNAL = 1
    NAMED_SIGNAL = 2


NotificationId: TypeAlias = tuple[Kind, int | str]
CANCEL_SIGNAL: NotificationId = (Kind.SIGNAL, 1)


@dataclass(frozen=True, slots=True)
class Failure:
    code: int
    message: str
    metadata: Mapping[str, str] = field(default_factory=dict)

    def to_pb(self) -> m.Failure:
        return m.Failure(
            code=self.code,
            message=self.message,
            metadata=[m.FailureMetadata(key=k, value=v) for k, v in self.metadata.items()],
        )

    @classmethod
    def from_pb(cls, failure: m.Failure) -> Failure:
        return cls(failure.code, failure.message, {e.key: e.value for e in failure.metadata})


@dataclass(frozen=True, slots=True)
class Result:
    """What a notification carries: exactly one of these kinds."""

    kind: str  # "void" | "value" | "failure" | "invocation_id" | "state_keys"
    value: Any = None
    """bytes for value, Failure for failure, str for invocation_id, list[bytes] for state_keys."""

    @property
    def is_failure(self) -> bool:
        return self.kind == "failure"


VOID = Result("void")


@dataclass(frozen=True, slots=True)
class StartInfo:
    """What user code may know about the invocation (from StartMessage and Input)."""

    invocation_id: str
    raw_id: bytes
    key: str
    random_seed: int
    retry_count: int
    retry_duration_ms: int


_END = encode_message(m.EndMessage())
"""EndMessage has no fields: always the same bytes."""


def _notification_id(msg: Any) -> NotificationId:
    which = msg.WhichOneof("id")
    if which == "completion_id":
        return (Kind.COMPLETION, msg.completion_id)
    if which == "signal_id":
        return (Kind.SIGNAL, msg.signal_id)
    if which == "signal_name":
        return (Kind.NAMED_SIGNAL, msg.signal_name)
    raise VMError(PROTOCOL_VIOLATION, f"{type(msg).__name__} has no id")


def _notification_result(msg: Any) -> Result:
    which = msg.WhichOneof("result")
    if which == "void":
        return VOID
    if which == "value":
        return Result("value", msg.value.content)
    if which == "failure":
        return Result("failure", Failure.from_pb(msg.failure))
    if which == "invocation_id":
        return Result("invocation_id", msg.invocation_id)
    if which == "state_keys":
        return Result("state_keys", list(msg.state_keys.keys))
    raise VMError(PROTOCOL_VIOLATION, f"{type(msg).__name__} has no result")


def _without(msg: Any, *fields: str) -> Any:
    copy = type(msg)()
    copy.CopyFrom(msg)
    for name in fields:
        copy.ClearField(name)
    return copy


class VM:
    """One attempt of one invocation, from the first request byte to the terminal message."""

    def __init__(self) -> None:
        self.state = State.WAITING_START
        self.input_closed = False
        self._decoder = FrameDecoder()
        self._start: m.StartMessage | None = None
        self._start_info: StartInfo | None = None
        self._entries_left = 0
        self._replay: deque[m.Command] = deque()
        self._fifo: deque[tuple[NotificationId, Result]] = deque()
        self._ready: dict[NotificationId, Result] = {}
        self._out: list[bytes] = []
        self._next_completion = 1
        self._next_signal = FIRST_AWAKEABLE_SIGNAL
        self._command_index = -1  # index of the last command issued (Input is 0)
        self._last_command: tuple[int, str] | None = None  # (type id, name)
        self.replayed_commands = 0
        """Commands the journal held at the start of this attempt (for run retry counting)."""
        self._state: dict[str, bytes | None] = {}
        self._state_complete = False
        self.error: VMError | None = None
        """The protocol error that closed this attempt, if any."""

    # -----------------------------------------------------------------------------------------
    # Input side
    # -----------------------------------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Consume request body bytes. Raises VMError on a protocol violation."""
        try:
            frames = self._decoder.feed(data)
        except ProtocolError as exc:
            raise VMError(PROTOCOL_VIOLATION, str(exc)) from None
        for frame in frames:
            try:
                msg = frame.message()
            except ProtocolError as exc:
                raise VMError(PROTOCOL_VIOLATION, str(exc)) from None
            self._on_message(frame.type, msg)

    def feed_eof(self) -> None:
        self.input_closed = True
        if self.state in (State.WAITING_START, State.WAITING_REPLAY_ENTRIES):
            raise VMError(PROTOCOL_VIOLATION, "the request ended before the journal was replayed")

    def _on_message(self, kind: MessageType, msg: m.Message) -> None:
        if kind is MessageType.START:
            if self.state is not State.WAITING_START:
                raise VMError(PROTOCOL_VIOLATION, "a second StartMessage")
            assert isinstance(msg, m.StartMessage)
            if msg.known_entries < 1:
                raise VMError(PROTOCOL_VIOLATION, "StartMessage.known_entries must be >= 1")
            self._start = msg
            self._entries_left = msg.known_entries
            self._state = {e.key.decode(): e.value for e in msg.state_map}
            self._state_complete = not msg.partial_state
            self.state = State.WAITING_REPLAY_ENTRIES
            return
        if self.state is State.WAITING_START:
            raise VMError(PROTOCOL_VIOLATION, f"expected StartMessage, got {kind.name}")
        if kind.is_notification:
            self._fifo.append((_notification_id(msg), _notification_result(msg)))
        elif kind.is_command:
            if self.state is not State.WAITING_REPLAY_ENTRIES:
                raise VMError(
                    PROTOCOL_VIOLATION, f"command {kind.name} received after the journal replay"
                )
            self._replay.append(msg)  # type: ignore[arg-type]
        else:
            raise VMError(PROTOCOL_VIOLATION, f"unexpected {kind.name} from the server")
        if self.state is State.WAITING_REPLAY_ENTRIES:
            self._entries_left -= 1
            if self._entries_left == 0:
                if not self._replay or type_of(self._replay[0]) is not MessageType.INPUT:
                    raise VMError(PROTOCOL_VIOLATION, "the journal must start with Input")
                self.replayed_commands = len(self._replay)
                self.state = State.REPLAYING

    @property
    def ready(self) -> bool:
        """User code may start (the whole journal has been received)."""
        return self.state in (State.REPLAYING, State.PROCESSING)

    @property
    def replaying(self) -> bool:
        return self.state is State.REPLAYING

    @property
    def closed(self) -> bool:
        return self.state is State.CLOSED

    def start_info(self) -> StartInfo:
        if self._start_info is not None:
            return self._start_info
        assert self._start is not None
        s = self._start
        count = s.retry_count_since_last_stored_entry
        self._start_info = StartInfo(
            invocation_id=s.debug_id,
            raw_id=s.id,
            key=s.key,
            random_seed=s.random_seed,
            retry_count=count,
            retry_duration_ms=s.duration_since_last_stored_entry if count else 0,
        )
        return self._start_info

    # -----------------------------------------------------------------------------------------
    # Output side
    # -----------------------------------------------------------------------------------------

    @property
    def has_output(self) -> bool:
        return bool(self._out)

    def take_output(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def _write(self, msg: m.Message) -> None:
        self._out.append(encode_message(msg))

    # -----------------------------------------------------------------------------------------
    # Notifications
    # -----------------------------------------------------------------------------------------

    def result(self, nid: NotificationId) -> Result | None:
        """The result of a notification already moved to the ready map."""
        return self._ready.get(nid)

    def pop_one(self) -> bool:
        """Move the oldest buffered notification to the ready map; False if none is buffered."""
        if not self._fifo:
            return False
        nid, result = self._fifo.popleft()
        self._ready[nid] = result
        return True

    def complete_locally(self, nid: NotificationId, result: Result) -> None:
        """A result the SDK knows without a notification (eager state)."""
        self._ready[nid] = result

    # -----------------------------------------------------------------------------------------
    # Command issuing: replay matching or writing
    # -----------------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self.state is State.CLOSED:
            raise AttemptEnded()
        if not self.ready:
            raise RuntimeError("user code ran before the journal was replayed")

    def _mismatch(self, expected: m.Message, actual: m.Message, what: str) -> AttemptEnded:
        """Write the journal-mismatch error (570), close, and return what unwinds user code."""
        error = VMError(
            JOURNAL_MISMATCH,
            f"journal mismatch at command {self._command_index}: the code issued "
            f"{type_of(expected).name} ({what}) but the journal has {type_of(actual).name}: "
            f"{str(actual).strip()!r} vs code {str(expected).strip()!r}",
            command_index=self._command_index,
            command_type=int(type_of(expected)),
            command_name=getattr(expected, "name", None),
        )
        self.fail(error)
        self.error = error
        return AttemptEnded(error.message)

    def _issue(self, command: m.Message, *ignored: str) -> m.Message | None:
        """Match ``command`` against the journal (returns the journaled one) or write it."""
        self._check_open()
        self._command_index += 1
        self._last_command = (int(type_of(command)), getattr(command, "name", ""))
        if self.state is State.REPLAYING:
            journaled = self._replay.popleft()
            if not self._replay:
                self.state = State.PROCESSING
            if type(journaled) is not type(command):
                raise self._mismatch(command, journaled, "different command")
            if type(command) is m.InputCommand:
                return journaled  # Input always matches: the server wrote it
            if _without(journaled, *ignored) != _without(command, *ignored):
                raise self._mismatch(command, journaled, "different fields")
            return journaled
        self._write(command)
        return None

    def _completion_id(self) -> int:
        cid = self._next_completion
        self._next_completion += 1
        return cid

    @property
    def last_command(self) -> tuple[int, int, str] | None:
        """(index, type id, name) of the last command issued."""
        if self._last_command is None:
            return None
        return (self._command_index, *self._last_command)

    @property
    def command_index(self) -> int:
        return self._command_index

    # -- input / output ---------------------------------------------------------------------

    def sys_input(self) -> m.InputCommand:
        self._check_open()
        if self.state is not State.REPLAYING or self._command_index != -1:
            raise RuntimeError("Input must be read first and once")
        journaled = self._issue(m.InputCommand())
        assert isinstance(journaled, m.InputCommand)
        return journaled

    def sys_write_output(self, value: bytes | None = None, failure: Failure | None = None) -> None:
        if failure is not None:
            self._issue(m.OutputCommand(failure=failure.to_pb()))
        else:
            self._issue(m.OutputCommand(value=m.Value(content=value or b"")))

    def sys_end(self) -> None:
        self._check_open()
        self._out.append(_END)
        self.state = State.CLOSED

    def sys_suspend(self, awaited: Iterable[NotificationId]) -> None:
        self._check_open()
        msg = m.SuspensionMessage()
        for kind, ident in sorted(set(awaited), key=lambda n: (n[0], str(n[1]))):
            if kind is Kind.COMPLETION:
                msg.waiting_completions.append(int(ident))
            elif kind is Kind.SIGNAL:
                msg.waiting_signals.append(int(ident))
            else:
                msg.waiting_named_signals.append(str(ident))
        self._write(msg)
        self.state = State.CLOSED

    def sys_error(
        self,
        code: int,
        message: str,
        *,
        stacktrace: str = "",
        related: tuple[int, int, str] | None = None,
        next_retry_delay_ms: int | None = None,
    ) -> None:
        """A retryable failure of this attempt; closes the VM (no-op if already closed)."""
        if self.state is State.CLOSED:
            return
        msg = m.ErrorMessage(code=code, message=message, stacktrace=stacktrace)
        if related is not None:
            msg.related_command_index, msg.related_command_type = related[0], related[1]
            if related[2]:
                msg.related_command_name = related[2]
        if next_retry_delay_ms is not None:
            msg.next_retry_delay = next_retry_delay_ms
        self._write(msg)
        self.state = State.CLOSED

    def fail(self, error: VMError) -> None:
        related = None
        if error.command_index is not None and error.command_type is not None:
            related = (error.command_index, error.command_type, error.command_name or "")
        self.sys_error(error.code, error.message, related=related)

    # -- state ------------------------------------------------------------------------------

    def sys_state_get(self, key: str) -> NotificationId:
        """A state read; its result is ready at once when answered eagerly."""
        self._check_open()
        cid = self._completion_id()
        nid: NotificationId = (Kind.COMPLETION, cid)
        if self.state is State.REPLAYING:
            self._command_index += 1
            self._last_command = (int(MessageType.GET_EAGER_STATE), "")
            journaled = self._replay.popleft()
            if not self._replay:
                self.state = State.PROCESSING
            if isinstance(journaled, m.GetEagerStateCommand) and journaled.key == key.encode():
                which = journaled.WhichOneof("result")
                value = journaled.value.content if which == "value" else None
                self._ready[nid] = VOID if value is None else Result("value", value)
                return nid
            expected = m.GetLazyStateCommand(key=key.encode(), result_completion_id=cid)
            if not (isinstance(journaled, m.GetLazyStateCommand) and journaled == expected):
                raise self._mismatch(expected, journaled, f"get state {key!r}")
            return nid
        if key in self._state or self._state_complete:
            value = self._state.get(key)
            cmd = m.GetEagerStateCommand(key=key.encode())
            if value is None:
                cmd.void.SetInParent()
                self._ready[nid] = VOID
            else:
                cmd.value.content = value
                self._ready[nid] = Result("value", value)
            self._issue(cmd)
        else:
            self._issue(m.GetLazyStateCommand(key=key.encode(), result_completion_id=cid))
        return nid

    def sys_state_keys(self) -> NotificationId:
        self._check_open()
        cid = self._completion_id()
        nid: NotificationId = (Kind.COMPLETION, cid)
        if self.state is State.REPLAYING:
            self._command_index += 1
            self._last_command = (int(MessageType.GET_EAGER_STATE_KEYS), "")
            journaled = self._replay.popleft()
            if not self._replay:
                self.state = State.PROCESSING
            if isinstance(journaled, m.GetEagerStateKeysCommand):
                self._ready[nid] = Result("state_keys", list(journaled.value.keys))
                return nid
            expected = m.GetLazyStateKeysCommand(result_completion_id=cid)
            if journaled != expected:
                raise self._mismatch(expected, journaled, "get state keys")
            return nid
        if self._state_complete:
            keys = sorted(k.encode() for k, v in self._state.items() if v is not None)
            self._issue(m.GetEagerStateKeysCommand(value=m.StateKeys(keys=keys)))
            self._ready[nid] = Result("state_keys", keys)
        else:
            self._issue(m.GetLazyStateKeysCommand(result_completion_id=cid))
        return nid

    def sys_state_set(self, key: str, value: bytes) -> None:
        self._issue(m.SetStateCommand(key=key.encode(), value=m.Value(content=value)))
        self._state[key] = value

    def sys_state_clear(self, key: str) -> None:
        self._issue(m.ClearStateCommand(key=key.encode()))
        self._state[key] = None

    def sys_state_clear_all(self) -> None:
        self._issue(m.ClearAllStateCommand())
        self._state = {}
        self._state_complete = True

    # -- timers, calls, sends ---------------------------------------------------------------

    def sys_sleep(self, wake_up_time_ms: int, name: str = "") -> NotificationId:
        cid = self._completion_id()
        cmd = m.SleepCommand(wake_up_time=wake_up_time_ms, result_completion_id=cid, name=name)
        self._issue(cmd, "wake_up_time")
        return (Kind.COMPLETION, cid)

    def sys_call(
        self,
        service: str,
        handler: str,
        parameter: bytes,
        *,
        key: str = "",
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
    ) -> tuple[NotificationId, NotificationId]:
        """(invocation id notification, result notification) of a request-response call."""
        _check_idempotency_key(idempotency_key)
        id_cid, result_cid = self._completion_id(), self._completion_id()
        cmd = m.CallCommand(
            service_name=service,
            handler_name=handler,
            parameter=parameter,
            headers=[m.Header(key=k, value=v) for k, v in (headers or {}).items()],
            key=key,
            invocation_id_notification_idx=id_cid,
            result_completion_id=result_cid,
        )
        if idempotency_key is not None:
            cmd.idempotency_key = idempotency_key
        self._issue(cmd)
        return (Kind.COMPLETION, id_cid), (Kind.COMPLETION, result_cid)

    def sys_send(
        self,
        service: str,
        handler: str,
        parameter: bytes,
        *,
        key: str = "",
        headers: Mapping[str, str] | None = None,
        idempotency_key: str | None = None,
        invoke_time_ms: int = 0,
    ) -> NotificationId:
        """The invocation id notification of a one-way call."""
        _check_idempotency_key(idempotency_key)
        cid = self._completion_id()
        cmd = m.OneWayCallCommand(
            service_name=service,
            handler_name=handler,
            parameter=parameter,
            invoke_time=invoke_time_ms,
            headers=[m.Header(key=k, value=v) for k, v in (headers or {}).items()],
            key=key,
            invocation_id_notification_idx=cid,
        )
        if idempotency_key is not None:
            cmd.idempotency_key = idempotency_key
        self._issue(cmd, "invoke_time")
        return (Kind.COMPLETION, cid)

    def sys_send_signal(
        self, target_invocation_id: str, idx: int, result: Result = VOID, name: str = ""
    ) -> None:
        cmd = m.SendSignalCommand(target_invocation_id=target_invocation_id, idx=idx)
        _set_result(cmd, result, "void", "value", "failure")
        if name:
            cmd.entry_name = name
        self._issue(cmd)

    def sys_cancel_invocation(self, target_invocation_id: str) -> None:
        self.sys_send_signal(target_invocation_id, 1)

    # -- awakeables and promises ------------------------------------------------------------

    def sys_awakeable(self) -> tuple[str, NotificationId]:
        self._check_open()
        idx = self._next_signal
        self._next_signal += 1
        raw = self.start_info().raw_id
        awakeable = AwakeableId(InvocationId.from_bytes(raw), idx)
        return str(awakeable), (Kind.SIGNAL, idx)

    def sys_complete_awakeable(self, awakeable_id: str, result: Result) -> None:
        cmd = m.CompleteAwakeableCommand(awakeable_id=awakeable_id)
        _set_result(cmd, result, None, "value", "failure")
        self._issue(cmd)

    def sys_get_promise(self, key: str) -> NotificationId:
        cid = self._completion_id()
        self._issue(m.GetPromiseCommand(key=key, result_completion_id=cid))
        return (Kind.COMPLETION, cid)

    def sys_peek_promise(self, key: str) -> NotificationId:
        cid = self._completion_id()
        self._issue(m.PeekPromiseCommand(key=key, result_completion_id=cid))
        return (Kind.COMPLETION, cid)

    def sys_complete_promise(self, key: str, result: Result) -> NotificationId:
        cid = self._completion_id()
        cmd = m.CompletePromiseCommand(key=key, result_completion_id=cid)
        _set_result(cmd, result, None, "completion_value", "completion_failure")
        self._issue(cmd)
        return (Kind.COMPLETION, cid)

    # -- runs -------------------------------------------------------------------------------

    def sys_run(self, name: str) -> NotificationId:
        """Journal a durable step; its result arrives as a RunCompletion notification."""
        cid = self._completion_id()
        self._issue(m.RunCommand(result_completion_id=cid, name=name))
        return (Kind.COMPLETION, cid)

    def sys_propose_run_completion(self, cid: int, result: Result) -> None:
        """The outcome of a step (value or terminal failure); the server journals it."""
        if self.state is State.CLOSED:
            raise AttemptEnded()
        msg = m.ProposeRunCompletionMessage(result_completion_id=cid)
        if result.kind == "failure":
            msg.failure.CopyFrom(result.value.to_pb())
        else:
            msg.value = result.value or b""
        self._write(msg)

    # -- attach, output ---------------------------------------------------------------------

    def sys_attach(self, target: Target) -> NotificationId:
        cid = self._completion_id()
        cmd = m.AttachInvocationCommand(result_completion_id=cid)
        target.apply(cmd)
        self._issue(cmd)
        return (Kind.COMPLETION, cid)

    def sys_get_output(self, target: Target) -> NotificationId:
        cid = self._completion_id()
        cmd = m.GetInvocationOutputCommand(result_completion_id=cid)
        target.apply(cmd)
        self._issue(cmd)
        return (Kind.COMPLETION, cid)


@dataclass(frozen=True, slots=True)
class Target:
    """What attach/get-output address: an invocation id, an idempotent request or a workflow."""

    invocation_id: str | None = None
    service: str | None = None
    handler: str | None = None
    key: str | None = None
    idempotency_key: str | None = None
    workflow: str | None = None

    def apply(self, cmd: Any) -> None:
        if self.invocation_id is not None:
            cmd.invocation_id = self.invocation_id
        elif self.idempotency_key is not None:
            _check_idempotency_key(self.idempotency_key)
            t = cmd.idempotent_request_target
            t.service_name = self.service or ""
            t.handler_name = self.handler or ""
            t.idempotency_key = self.idempotency_key
            if self.key is not None:
                t.service_key = self.key
        elif self.workflow is not None:
            cmd.workflow_target.workflow_name = self.workflow
            cmd.workflow_target.workflow_key = self.key or ""
        else:
            raise ValueError("a target needs an invocation id, an idempotency key or a workflow")


def _check_idempotency_key(key: str | None) -> None:
    if key is not None and not key:
        raise ValueError("an idempotency key must not be empty")


def _set_result(
    cmd: Any, result: Result, void_field: str | None, value_field: str, failure_field: str
) -> None:
    if result.kind == "failure":
        getattr(cmd, failure_field).CopyFrom(result.value.to_pb())
    elif result.kind == "value":
        getattr(cmd, value_field).content = result.value
    elif void_field is not None:
        getattr(cmd, void_field).SetInParent()
    else:
        getattr(cmd, value_field).content = b""


__all__ = [
    "CANCEL_SIGNAL",
    "VM",
    "VOID",
    "Failure",
    "Kind",
    "NotificationId",
    "Result",
    "StartInfo",
    "State",
    "Target",
]
