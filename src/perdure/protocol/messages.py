"""Every message of service protocol V6: its type id, its class, and how it is (de)serialised.

Messages are protobuf classes generated from ``_pb/protocol.proto``; this module is the one place
that ties each class to its 16-bit type id. Dispatch on a decoded message with ``match``.
Type-id namespaces: 0x0000-0x03FF control, 0x0400-0x7FFF commands, 0x8000-0xFBFF notifications,
0xFC00-0xFFFF custom entries (which perdure never sends: the official server cannot handle them).
"""

from __future__ import annotations

import enum
from typing import TypeAlias

from google.protobuf.message import DecodeError

from perdure.protocol._pb import protocol_pb2 as pb
from perdure.protocol.errors import MessageDecodeError, UnknownMessageTypeError

# Re-exported nested types, so callers never import the generated module.
Value = pb.Value
Void = pb.Void
Failure = pb.Failure
FailureMetadata = pb.FailureMetadata
Header = pb.Header
StateKeys = pb.StateKeys
WorkflowTarget = pb.WorkflowTarget
IdempotentRequestTarget = pb.IdempotentRequestTarget
Future = pb.Future
StateEntry = pb.StartMessage.StateEntry

# Control messages
StartMessage = pb.StartMessage
SuspensionMessage = pb.SuspensionMessage
ErrorMessage = pb.ErrorMessage
EndMessage = pb.EndMessage
CommandAckMessage = pb.CommandAckMessage
ProposeRunCompletionMessage = pb.ProposeRunCompletionMessage
AwaitingOnMessage = pb.AwaitingOnMessage
ProposeRunCompletionAckMessage = pb.ProposeRunCompletionAckMessage

# Commands
InputCommand = pb.InputCommandMessage
OutputCommand = pb.OutputCommandMessage
GetLazyStateCommand = pb.GetLazyStateCommandMessage
SetStateCommand = pb.SetStateCommandMessage
ClearStateCommand = pb.ClearStateCommandMessage
ClearAllStateCommand = pb.ClearAllStateCommandMessage
GetLazyStateKeysCommand = pb.GetLazyStateKeysCommandMessage
GetEagerStateCommand = pb.GetEagerStateCommandMessage
GetEagerStateKeysCommand = pb.GetEagerStateKeysCommandMessage
GetPromiseCommand = pb.GetPromiseCommandMessage
PeekPromiseCommand = pb.PeekPromiseCommandMessage
CompletePromiseCommand = pb.CompletePromiseCommandMessage
SleepCommand = pb.SleepCommandMessage
CallCommand = pb.CallCommandMessage
OneWayCallCommand = pb.OneWayCallCommandMessage
SendSignalCommand = pb.SendSignalCommandMessage
RunCommand = pb.RunCommandMessage
AttachInvocationCommand = pb.AttachInvocationCommandMessage
GetInvocationOutputCommand = pb.GetInvocationOutputCommandMessage
CompleteAwakeableCommand = pb.CompleteAwakeableCommandMessage

# Notifications
GetLazyStateCompletion = pb.GetLazyStateCompletionNotificationMessage
GetLazyStateKeysCompletion = pb.GetLazyStateKeysCompletionNotificationMessage
GetPromiseCompletion = pb.GetPromiseCompletionNotificationMessage
PeekPromiseCompletion = pb.PeekPromiseCompletionNotificationMessage
CompletePromiseCompletion = pb.CompletePromiseCompletionNotificationMessage
SleepCompletion = pb.SleepCompletionNotificationMessage
CallCompletion = pb.CallCompletionNotificationMessage
CallInvocationIdCompletion = pb.CallInvocationIdCompletionNotificationMessage
RunCompletion = pb.RunCompletionNotificationMessage
AttachInvocationCompletion = pb.AttachInvocationCompletionNotificationMessage
GetInvocationOutputCompletion = pb.GetInvocationOutputCompletionNotificationMessage
SignalNotification = pb.SignalNotificationMessage

ControlMessage: TypeAlias = (
    StartMessage
    | SuspensionMessage
    | ErrorMessage
    | EndMessage
    | CommandAckMessage
    | ProposeRunCompletionMessage
    | AwaitingOnMessage
    | ProposeRunCompletionAckMessage
)
Command: TypeAlias = (
    InputCommand
    | OutputCommand
    | GetLazyStateCommand
    | SetStateCommand
    | ClearStateCommand
    | ClearAllStateCommand
    | GetLazyStateKeysCommand
    | GetEagerStateCommand
    | GetEagerStateKeysCommand
    | GetPromiseCommand
    | PeekPromiseCommand
    | CompletePromiseCommand
    | SleepCommand
    | CallCommand
    | OneWayCallCommand
    | SendSignalCommand
    | RunCommand
    | AttachInvocationCommand
    | GetInvocationOutputCommand
    | CompleteAwakeableCommand
)
Notification: TypeAlias = (
    GetLazyStateCompletion
    | GetLazyStateKeysCompletion
    | GetPromiseCompletion
    | PeekPromiseCompletion
    | CompletePromiseCompletion
    | SleepCompletion
    | CallCompletion
    | CallInvocationIdCompletion
    | RunCompletion
    | AttachInvocationCompletion
    | GetInvocationOutputCompletion
    | SignalNotification
)
Message: TypeAlias = ControlMessage | Command | Notification


class MessageType(enum.IntEnum):
    """The 16-bit type id in a frame header."""

    START = 0x0000
    SUSPENSION = 0x0001
    ERROR = 0x0002
    END = 0x0003
    COMMAND_ACK = 0x0004  # only in reply to a command sent with REQUESTED_ACK
    PROPOSE_RUN_COMPLETION = 0x0005
    AWAITING_ON = 0x0006  # V7
    PROPOSE_RUN_COMPLETION_ACK = 0x0007  # V7

    INPUT = 0x0400
    OUTPUT = 0x0401
    GET_LAZY_STATE = 0x0402
    SET_STATE = 0x0403
    CLEAR_STATE = 0x0404
    CLEAR_ALL_STATE = 0x0405
    GET_LAZY_STATE_KEYS = 0x0406
    GET_EAGER_STATE = 0x0407
    GET_EAGER_STATE_KEYS = 0x0408
    GET_PROMISE = 0x0409
    PEEK_PROMISE = 0x040A
    COMPLETE_PROMISE = 0x040B
    SLEEP = 0x040C
    CALL = 0x040D
    ONE_WAY_CALL = 0x040E
    SEND_SIGNAL = 0x0410
    RUN = 0x0411
    ATTACH_INVOCATION = 0x0412
    GET_INVOCATION_OUTPUT = 0x0413
    COMPLETE_AWAKEABLE = 0x0414

    GET_LAZY_STATE_COMPLETION = 0x8002
    GET_LAZY_STATE_KEYS_COMPLETION = 0x8006
    GET_PROMISE_COMPLETION = 0x8009
    PEEK_PROMISE_COMPLETION = 0x800A
    COMPLETE_PROMISE_COMPLETION = 0x800B
    SLEEP_COMPLETION = 0x800C
    CALL_COMPLETION = 0x800D
    CALL_INVOCATION_ID_COMPLETION = 0x800E
    RUN_COMPLETION = 0x8011
    ATTACH_INVOCATION_COMPLETION = 0x8012
    GET_INVOCATION_OUTPUT_COMPLETION = 0x8013
    SIGNAL = 0xFBFF

    @property
    def is_control(self) -> bool:
        return self < 0x0400

    @property
    def is_command(self) -> bool:
        return 0x0400 <= self < 0x8000

    @property
    def is_notification(self) -> bool:
        return 0x8000 <= self < 0xFC00


_CLASS_BY_TYPE: dict[MessageType, type[Message]] = {
    MessageType.START: StartMessage,
    MessageType.SUSPENSION: SuspensionMessage,
    MessageType.ERROR: ErrorMessage,
    MessageType.END: EndMessage,
    MessageType.COMMAND_ACK: CommandAckMessage,
    MessageType.PROPOSE_RUN_COMPLETION: ProposeRunCompletionMessage,
    MessageType.AWAITING_ON: AwaitingOnMessage,
    MessageType.PROPOSE_RUN_COMPLETION_ACK: ProposeRunCompletionAckMessage,
    MessageType.INPUT: InputCommand,
    MessageType.OUTPUT: OutputCommand,
    MessageType.GET_LAZY_STATE: GetLazyStateCommand,
    MessageType.SET_STATE: SetStateCommand,
    MessageType.CLEAR_STATE: ClearStateCommand,
    MessageType.CLEAR_ALL_STATE: ClearAllStateCommand,
    MessageType.GET_LAZY_STATE_KEYS: GetLazyStateKeysCommand,
    MessageType.GET_EAGER_STATE: GetEagerStateCommand,
    MessageType.GET_EAGER_STATE_KEYS: GetEagerStateKeysCommand,
    MessageType.GET_PROMISE: GetPromiseCommand,
    MessageType.PEEK_PROMISE: PeekPromiseCommand,
    MessageType.COMPLETE_PROMISE: CompletePromiseCommand,
    MessageType.SLEEP: SleepCommand,
    MessageType.CALL: CallCommand,
    MessageType.ONE_WAY_CALL: OneWayCallCommand,
    MessageType.SEND_SIGNAL: SendSignalCommand,
    MessageType.RUN: RunCommand,
    MessageType.ATTACH_INVOCATION: AttachInvocationCommand,
    MessageType.GET_INVOCATION_OUTPUT: GetInvocationOutputCommand,
    MessageType.COMPLETE_AWAKEABLE: CompleteAwakeableCommand,
    MessageType.GET_LAZY_STATE_COMPLETION: GetLazyStateCompletion,
    MessageType.GET_LAZY_STATE_KEYS_COMPLETION: GetLazyStateKeysCompletion,
    MessageType.GET_PROMISE_COMPLETION: GetPromiseCompletion,
    MessageType.PEEK_PROMISE_COMPLETION: PeekPromiseCompletion,
    MessageType.COMPLETE_PROMISE_COMPLETION: CompletePromiseCompletion,
    MessageType.SLEEP_COMPLETION: SleepCompletion,
    MessageType.CALL_COMPLETION: CallCompletion,
    MessageType.CALL_INVOCATION_ID_COMPLETION: CallInvocationIdCompletion,
    MessageType.RUN_COMPLETION: RunCompletion,
    MessageType.ATTACH_INVOCATION_COMPLETION: AttachInvocationCompletion,
    MessageType.GET_INVOCATION_OUTPUT_COMPLETION: GetInvocationOutputCompletion,
    MessageType.SIGNAL: SignalNotification,
}
_TYPE_BY_CLASS: dict[type[Message], MessageType] = {cls: t for t, cls in _CLASS_BY_TYPE.items()}
_TYPE_BY_ID: dict[int, MessageType] = {int(t): t for t in MessageType}


def message_type(type_id: int) -> MessageType:
    """The MessageType for a raw id; UnknownMessageTypeError if V6 does not define it."""
    try:
        return _TYPE_BY_ID[type_id]
    except KeyError:
        raise UnknownMessageTypeError(type_id) from None


def type_of(message: Message) -> MessageType:
    """The type id a message is framed with."""
    try:
        return _TYPE_BY_CLASS[type(message)]
    except KeyError:
        raise TypeError(f"{type(message).__name__} is not a protocol message") from None


def class_of(type_id: int) -> type[Message]:
    return _CLASS_BY_TYPE[message_type(type_id)]


def decode_payload(type_id: int, payload: bytes) -> Message:
    """Parse a frame's payload as the message its type id names."""
    cls = class_of(type_id)
    message = cls()
    try:
        message.ParseFromString(payload)
    except DecodeError as exc:
        raise MessageDecodeError(
            f"payload of {_TYPE_BY_ID[type_id].name} (0x{type_id:04X}, {len(payload)} bytes) "
            f"is not valid protobuf: {exc}"
        ) from None
    return message


def encode_payload(message: Message) -> bytes:
    """Serialise a message's payload (no frame header)."""
    return message.SerializeToString()
