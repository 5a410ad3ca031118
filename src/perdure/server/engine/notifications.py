"""Building the notification frames the server appends to journals.

All notification messages share one layout (an id oneof and a result oneof), so one builder
serves every type. A void result must be present on the wire (the SDK rejects a notification
without a result), hence ``SetInParent``.
"""

from __future__ import annotations

from typing import Any

from perdure.protocol import Frame, MessageType
from perdure.protocol import messages as m
from perdure.server.records import Result, notification_key

VOID = None


def completion(kind: MessageType, cid: int, result: Result | None = VOID) -> tuple[Frame, str]:
    """A completion notification for ``cid`` with a value, a failure, or void."""
    message = m.class_of(kind)()
    message.completion_id = cid  # type: ignore[union-attr]
    _set_result(message, result)
    return Frame.of(message), notification_key(completion_id=cid)


def invocation_id(cid: int, target: str) -> tuple[Frame, str]:
    message = m.CallInvocationIdCompletion(completion_id=cid, invocation_id=target)
    return Frame.of(message), notification_key(completion_id=cid)


def state_keys(cid: int, keys: list[bytes]) -> tuple[Frame, str]:
    message = m.GetLazyStateKeysCompletion(completion_id=cid, state_keys=m.StateKeys(keys=keys))
    return Frame.of(message), notification_key(completion_id=cid)


def signal(
    index: int | None = None, name: str | None = None, result: Result | None = VOID
) -> tuple[Frame, str]:
    message = m.SignalNotification()
    if index is not None:
        message.signal_id = index
    else:
        assert name is not None
        message.signal_name = name
    _set_result(message, result)
    return Frame.of(message), notification_key(signal=index, name=name)


def _set_result(message: object, result: Result | None) -> None:
    if result is None:
        message.void.SetInParent()  # type: ignore[attr-defined]
    elif result.ok:
        message.value.content = result.value or b""  # type: ignore[attr-defined]
    else:
        message.failure.code = result.failure_code  # type: ignore[attr-defined]
        message.failure.message = result.failure_message  # type: ignore[attr-defined]
        for key, value in result.failure_metadata:
            message.failure.metadata.add(key=key, value=value)  # type: ignore[attr-defined]


def failure_result(failure: m.Failure) -> Result:
    """The Result of a protocol ``Failure``, with its metadata (V6)."""
    metadata = tuple((entry.key, entry.value) for entry in failure.metadata)
    return Result.failure(failure.code, failure.message, metadata)


def for_protocol(frame: Frame, version: int | None) -> Frame:
    """The frame as a deployment speaking ``version`` may receive it: before V6 a failure
    carries no metadata (a V5 SDK would reject the message)."""
    if version is None or version >= 6:
        return frame
    message: Any = frame.message()
    if "failure" not in message.DESCRIPTOR.fields_by_name or not message.HasField("failure"):
        return frame
    failure = message.failure
    if not failure.metadata:
        return frame
    del failure.metadata[:]
    return Frame.of(message)
