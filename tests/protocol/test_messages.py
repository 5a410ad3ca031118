"""The message catalogue: type ids, classes and field numbers exactly as V6 defines them."""

from __future__ import annotations

import pytest

from perdure.protocol import MessageType, encode_message
from perdure.protocol import messages as m

# Field numbers of every V6 message, from the protocol description (section 4).
FIELD_NUMBERS: dict[MessageType, dict[str, int]] = {
    MessageType.START: {
        "id": 1, "debug_id": 2, "known_entries": 3, "state_map": 4, "partial_state": 5, "key": 6,
        "retry_count_since_last_stored_entry": 7, "duration_since_last_stored_entry": 8,
        "random_seed": 9, "scope": 10, "limit_key": 11, "idempotency_key": 12,
    },
    MessageType.SUSPENSION: {
        "waiting_completions": 1, "waiting_signals": 2, "waiting_named_signals": 3,
        "awaiting_on": 4,
    },
    MessageType.ERROR: {
        "code": 1, "message": 2, "stacktrace": 3, "related_command_index": 4,
        "related_command_name": 5, "related_command_type": 6, "next_retry_delay": 8,
        "behavior": 9,
    },
    MessageType.END: {},
    MessageType.COMMAND_ACK: {"command_index": 1},
    MessageType.PROPOSE_RUN_COMPLETION: {"result_completion_id": 1, "value": 14, "failure": 15},
    MessageType.AWAITING_ON: {"awaiting_on": 1, "executing_side_effects": 2},
    MessageType.PROPOSE_RUN_COMPLETION_ACK: {"completion_id": 1},
    MessageType.INPUT: {"headers": 1, "value": 14, "name": 12},
    MessageType.OUTPUT: {"value": 14, "failure": 15, "name": 12},
    MessageType.GET_LAZY_STATE: {"key": 1, "result_completion_id": 11, "name": 12},
    MessageType.SET_STATE: {"key": 1, "value": 3, "name": 12},
    MessageType.CLEAR_STATE: {"key": 1, "name": 12},
    MessageType.CLEAR_ALL_STATE: {"name": 12},
    MessageType.GET_LAZY_STATE_KEYS: {"result_completion_id": 11, "name": 12},
    MessageType.GET_EAGER_STATE: {"key": 1, "void": 13, "value": 14, "name": 12},
    MessageType.GET_EAGER_STATE_KEYS: {"value": 14, "name": 12},
    MessageType.GET_PROMISE: {"key": 1, "result_completion_id": 11, "name": 12},
    MessageType.PEEK_PROMISE: {"key": 1, "result_completion_id": 11, "name": 12},
    MessageType.COMPLETE_PROMISE: {
        "key": 1, "completion_value": 2, "completion_failure": 3, "result_completion_id": 11,
        "name": 12,
    },
    MessageType.SLEEP: {"wake_up_time": 1, "result_completion_id": 11, "name": 12},
    MessageType.CALL: {
        "service_name": 1, "handler_name": 2, "parameter": 3, "headers": 4, "key": 5,
        "idempotency_key": 6, "scope": 7, "limit_key": 8, "invocation_id_notification_idx": 10,
        "result_completion_id": 11, "name": 12,
    },
    MessageType.ONE_WAY_CALL: {
        "service_name": 1, "handler_name": 2, "parameter": 3, "invoke_time": 4, "headers": 5,
        "key": 6, "idempotency_key": 7, "scope": 8, "limit_key": 9,
        "invocation_id_notification_idx": 10, "name": 12,
    },
    MessageType.SEND_SIGNAL: {
        "target_invocation_id": 1, "idx": 2, "name": 3, "void": 4, "value": 5, "failure": 6,
        "entry_name": 12,
    },
    MessageType.RUN: {"result_completion_id": 11, "name": 12},
    MessageType.ATTACH_INVOCATION: {
        "invocation_id": 1, "idempotent_request_target": 3, "workflow_target": 4,
        "result_completion_id": 11, "name": 12,
    },
    MessageType.GET_INVOCATION_OUTPUT: {
        "invocation_id": 1, "idempotent_request_target": 3, "workflow_target": 4,
        "result_completion_id": 11, "name": 12,
    },
    MessageType.COMPLETE_AWAKEABLE: {"awakeable_id": 1, "value": 2, "failure": 3, "name": 12},
}  # fmt: skip
NOTIFICATION_FIELDS = {
    "completion_id": 1, "signal_id": 2, "signal_name": 3, "void": 4, "value": 5, "failure": 6,
    "invocation_id": 16, "state_keys": 17,
}  # fmt: skip
NESTED_FIELDS = {
    m.Value: {"content": 1},
    m.Failure: {"code": 1, "message": 2, "metadata": 3},
    m.FailureMetadata: {"key": 1, "value": 2},
    m.Header: {"key": 1, "value": 2},
    m.StateKeys: {"keys": 1},
    m.StateEntry: {"key": 1, "value": 2},
    m.WorkflowTarget: {"workflow_name": 1, "workflow_key": 2, "scope": 3},
    m.IdempotentRequestTarget: {
        "service_name": 1, "service_key": 2, "handler_name": 3, "idempotency_key": 4, "scope": 5,
    },
}  # fmt: skip


def _fields(cls: type) -> dict[str, int]:
    return {f.name: f.number for f in cls.DESCRIPTOR.fields}  # type: ignore[attr-defined]


def test_every_type_id_has_one_class_and_back() -> None:
    classes = {m.class_of(t) for t in MessageType}
    assert len(classes) == len(MessageType)
    for t in MessageType:
        assert m.type_of(m.class_of(t)()) is t


@pytest.mark.parametrize("kind", [t for t in MessageType if not t.is_notification])
def test_field_numbers_match_the_protocol(kind: MessageType) -> None:
    assert _fields(m.class_of(kind)) == FIELD_NUMBERS[kind]


@pytest.mark.parametrize("kind", [t for t in MessageType if t.is_notification])
def test_notifications_share_one_layout(kind: MessageType) -> None:
    assert _fields(m.class_of(kind)) == NOTIFICATION_FIELDS


@pytest.mark.parametrize("cls", list(NESTED_FIELDS))
def test_nested_type_field_numbers(cls: type) -> None:
    assert _fields(cls) == NESTED_FIELDS[cls]


def test_namespaces() -> None:
    assert MessageType.START.is_control and not MessageType.START.is_command
    assert MessageType.COMPLETE_AWAKEABLE.is_command
    assert MessageType.SIGNAL.is_notification and not MessageType.SIGNAL.is_command
    assert next(t for t in MessageType if t.is_command) is MessageType.INPUT


def test_raw_versus_value_wrapped_payloads() -> None:
    # Call.parameter and ProposeRunCompletion.value are raw bytes; SetState.value is a Value.
    call = m.CallCommand(service_name="S", handler_name="h", parameter=b"\x01")
    assert encode_message(call)[8:] == bytes.fromhex("0a0153 120168 1a0101")
    run = m.ProposeRunCompletionMessage(result_completion_id=1, value=b"ok")
    assert encode_message(run)[8:] == bytes.fromhex("0801 72026f6b")
    state = m.SetStateCommand(key=b"k", value=m.Value(content=b"v"))
    assert encode_message(state)[8:] == bytes.fromhex("0a016b 1a030a0176")


def test_a_message_that_is_not_a_protocol_message_has_no_type() -> None:
    with pytest.raises(TypeError, match="not a protocol message"):
        m.type_of(m.Value())  # type: ignore[arg-type]
