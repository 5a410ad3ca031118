"""The replay state machine, fed exact message sequences (no sockets)."""

from __future__ import annotations

import pytest

from perdure.protocol import messages as m
from perdure.protocol.framing import decode_messages, encode_messages
from perdure.protocol.ids import AwakeableId, InvocationId
from perdure.sdk.errors import AttemptEnded, VMError
from perdure.sdk.vm import VM, Kind, Result, State

INV = InvocationId.new()


def start(known: int, *, partial: bool = True, state: dict[str, bytes] | None = None) -> m.Message:
    return m.StartMessage(
        id=INV.to_bytes(),
        debug_id=str(INV),
        known_entries=known,
        partial_state=partial,
        key="k",
        random_seed=7,
        state_map=[m.StateEntry(key=k.encode(), value=v) for k, v in (state or {}).items()],
    )


def vm_with(*journal: m.Message, eof: bool = False, **start_kwargs: object) -> VM:
    vm = VM()
    vm.feed(encode_messages([start(len(journal), **start_kwargs), *journal]))  # type: ignore[arg-type]
    if eof:
        vm.feed_eof()
    return vm


def output(vm: VM) -> list[m.Message]:
    return decode_messages(vm.take_output())


def test_fresh_invocation_writes_output_and_end() -> None:
    vm = vm_with(m.InputCommand(value=m.Value(content=b'"Ann"')))
    assert vm.state is State.REPLAYING
    assert vm.sys_input().value.content == b'"Ann"'
    assert vm.state is State.PROCESSING
    vm.sys_write_output(b'"Hello Ann"')
    vm.sys_end()
    assert output(vm) == [m.OutputCommand(value=m.Value(content=b'"Hello Ann"')), m.EndMessage()]
    assert vm.closed


def test_completion_ids_and_signal_ids_in_program_order() -> None:
    vm = vm_with(m.InputCommand(), partial=False, state={"a": b"1"})
    vm.sys_input()
    get = vm.sys_state_get("a")  # eager, still takes completion id 1
    assert get == (Kind.COMPLETION, 1) and vm.result(get) == Result("value", b"1")
    id_nid, result_nid = vm.sys_call("Svc", "h", b"x", idempotency_key="i")
    assert (id_nid, result_nid) == ((Kind.COMPLETION, 2), (Kind.COMPLETION, 3))
    assert vm.sys_sleep(1000) == (Kind.COMPLETION, 4)
    awakeable, signal = vm.sys_awakeable()
    assert signal == (Kind.SIGNAL, 17)
    assert AwakeableId.parse(awakeable) == AwakeableId(INV, 17)
    assert vm.sys_run("step") == (Kind.COMPLETION, 5)
    call = m.CallCommand(
        service_name="Svc",
        handler_name="h",
        parameter=b"x",
        idempotency_key="i",
        invocation_id_notification_idx=2,
        result_completion_id=3,
    )
    eager = m.GetEagerStateCommand(key=b"a", value=m.Value(content=b"1"))
    assert output(vm) == [
        eager,
        call,
        m.SleepCommand(wake_up_time=1000, result_completion_id=4),
        m.RunCommand(result_completion_id=5, name="step"),
    ]


def test_replayed_commands_are_matched_not_written() -> None:
    vm = vm_with(
        m.InputCommand(),
        m.SleepCommand(wake_up_time=5, result_completion_id=1),
        m.SleepCompletion(completion_id=1, void=m.Void()),
        m.SetStateCommand(key=b"x", value=m.Value(content=b"1")),
    )
    vm.sys_input()
    nid = vm.sys_sleep(99999)  # the wake-up time legitimately differs
    assert vm.replaying
    vm.sys_state_set("x", b"1")
    assert vm.state is State.PROCESSING  # the last journaled command was matched
    assert vm.result(nid) is None
    assert vm.pop_one()
    assert vm.result(nid) == Result("void")
    assert vm.take_output() == b""


def test_journal_mismatch_fails_with_570() -> None:
    vm = vm_with(m.InputCommand(), m.RunCommand(result_completion_id=1, name="charge"))
    vm.sys_input()
    with pytest.raises(AttemptEnded):
        vm.sys_run("refund")
    (error,) = output(vm)
    assert isinstance(error, m.ErrorMessage)
    assert error.code == 570
    assert error.related_command_index == 1
    assert error.related_command_type == 0x0411
    assert vm.closed
    with pytest.raises(AttemptEnded):
        vm.sys_state_set("x", b"")


def test_suspension_lists_awaited_ids() -> None:
    vm = vm_with(m.InputCommand(), eof=True)
    vm.sys_input()
    vm.sys_suspend([(Kind.COMPLETION, 2), (Kind.SIGNAL, 1), (Kind.SIGNAL, 17)])
    assert output(vm) == [m.SuspensionMessage(waiting_completions=[2], waiting_signals=[1, 17])]


def test_lazy_state_waits_for_its_notification() -> None:
    vm = vm_with(m.InputCommand())
    vm.sys_input()
    nid = vm.sys_state_get("missing")
    assert output(vm) == [m.GetLazyStateCommand(key=b"missing", result_completion_id=1)]
    vm.feed(encode_messages([m.GetLazyStateCompletion(completion_id=1, void=m.Void())]))
    assert vm.result(nid) is None
    assert vm.pop_one() and vm.result(nid) == Result("void")


def test_state_get_replays_either_eager_or_lazy_form() -> None:
    vm = vm_with(
        m.InputCommand(),
        m.GetEagerStateCommand(key=b"a", value=m.Value(content=b"5")),
        m.GetLazyStateCommand(key=b"b", result_completion_id=2),
        m.GetLazyStateCompletion(completion_id=2, value=m.Value(content=b"6")),
    )
    vm.sys_input()
    assert vm.result(vm.sys_state_get("a")) == Result("value", b"5")
    nid = vm.sys_state_get("b")
    vm.pop_one()
    assert vm.result(nid) == Result("value", b"6")


def test_notifications_are_consumed_one_at_a_time_in_order() -> None:
    vm = vm_with(m.InputCommand())
    vm.sys_input()
    vm.feed(
        encode_messages(
            [
                m.SignalNotification(signal_id=17, value=m.Value(content=b"1")),
                m.SleepCompletion(completion_id=1, void=m.Void()),
            ]
        )
    )
    assert vm.pop_one()
    assert vm.result((Kind.SIGNAL, 17)) is not None
    assert vm.result((Kind.COMPLETION, 1)) is None
    assert vm.pop_one() and not vm.pop_one()


def test_run_proposal_and_retryable_error() -> None:
    vm = vm_with(m.InputCommand())
    vm.sys_input()
    nid = vm.sys_run("pay")
    vm.sys_propose_run_completion(int(nid[1]), Result("value", b"42"))
    vm.sys_error(500, "boom", related=(1, 0x0411, "pay"), next_retry_delay_ms=100)
    assert output(vm) == [
        m.RunCommand(result_completion_id=1, name="pay"),
        m.ProposeRunCompletionMessage(result_completion_id=1, value=b"42"),
        m.ErrorMessage(
            code=500,
            message="boom",
            related_command_index=1,
            related_command_type=0x0411,
            related_command_name="pay",
            next_retry_delay=100,
        ),
    ]


def test_one_way_call_ignores_invoke_time_on_replay() -> None:
    journaled = m.OneWayCallCommand(
        service_name="S", handler_name="h", invoke_time=111, invocation_id_notification_idx=1
    )
    vm = vm_with(m.InputCommand(), journaled)
    vm.sys_input()
    vm.sys_send("S", "h", b"", invoke_time_ms=222)
    assert vm.take_output() == b""


@pytest.mark.parametrize(
    ("messages", "error"),
    [
        ([m.InputCommand()], "expected StartMessage"),
        ([start(1), m.InputCommand(), m.OutputCommand()], "after the journal replay"),
        ([start(1), m.SleepCommand()], "must start with Input"),
        ([start(1), m.InputCommand(), start(1)], "a second StartMessage"),
    ],
)
def test_protocol_violations_are_571(messages: list[m.Message], error: str) -> None:
    with pytest.raises(VMError, match=error) as info:
        VM().feed(encode_messages(messages))
    assert info.value.code == 571


def test_eof_before_the_journal_is_a_protocol_violation() -> None:
    vm = VM()
    vm.feed(encode_messages([start(2), m.InputCommand()]))
    with pytest.raises(VMError):
        vm.feed_eof()
