"""Engine transitions, without sockets or real time: an in-memory store, a fixed clock, and the
effects each event asks for."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from perdure.protocol import Frame, InvocationId, Manifest, MessageType
from perdure.protocol import messages as m
from perdure.server.engine import notifications as note
from perdure.server.engine import registrations
from perdure.server.engine.core import AttemptRejected, Core, InvokeRequest
from perdure.server.engine.deadlock import WaitGraph, find_cycle
from perdure.server.engine.effects import (
    AbortAttempt,
    Completed,
    DeadlockDetected,
    Forward,
    StartAttempt,
    TimerSet,
)
from perdure.server.records import DeploymentRecord, Result, Status, TimerKind
from perdure.server.registry import Registry
from perdure.server.storage import Store
from tests.support.postgres import pg_url, postgres, table_rows

__all__ = ["pg_url", "postgres"]  # fixtures

MANIFEST = {
    "protocolMode": "BIDI_STREAM",
    "minProtocolVersion": 5,
    "maxProtocolVersion": 7,
    "services": [
        {"name": "Greeter", "ty": "SERVICE", "handlers": [{"name": "greet"}]},
        {
            "name": "Counter",
            "ty": "VIRTUAL_OBJECT",
            "handlers": [{"name": "add", "ty": "EXCLUSIVE"}, {"name": "get", "ty": "SHARED"}],
        },
        {
            "name": "Flow",
            "ty": "WORKFLOW",
            "handlers": [{"name": "run", "ty": "WORKFLOW"}, {"name": "poke", "ty": "SHARED"}],
        },
    ],
}
PIN = ("dp_test", 6)


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000

    def __call__(self) -> int:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Each transition test runs on SQLite, and on PostgreSQL's working copy: there, at the end,
    everything is shipped and a working copy rebuilt from PostgreSQL must hold the same rows."""
    if request.param == "sqlite":
        yield Store(":memory:")
        return
    from perdure.server.storage.postgres import PostgresStore

    url = request.getfixturevalue("pg_url")
    store = PostgresStore(url, tmp_path / "working.sqlite3")
    yield store
    store.commit()
    store.sync()
    rebuilt = PostgresStore(url, tmp_path / "rebuilt.sqlite3")
    assert table_rows(rebuilt.db) == table_rows(store.db)
    rebuilt.close()
    store.close()


@pytest.fixture
def core(clock: Clock, store: Store) -> Core:
    registry = Registry()
    manifest = Manifest.from_json(MANIFEST)
    record = DeploymentRecord(
        "dp_test", "http://x", False, {}, {}, "BIDI_STREAM", 5, 7, None,
        json.dumps(MANIFEST), 0,
    )  # fmt: skip
    core = Core(store, registry, clock)
    registrations.add_deployment(core, record, manifest)
    return core


def starts(effects: list[object]) -> list[InvocationId]:
    return [e.invocation_id for e in effects if isinstance(e, StartAttempt)]


def command(core: Core, inv: InvocationId, message: m.Message) -> list[object]:
    core.on_command(inv, Frame.of(message), PIN)
    return list(core.take_effects())


def output(core: Core, inv: InvocationId, value: bytes) -> None:
    command(core, inv, m.OutputCommand(value=m.Value(content=value)))
    core.on_end(inv)


def journal_types(core: Core, inv: InvocationId) -> list[MessageType]:
    return [f.type for f in core.store.read_journal(inv)]


def test_a_new_invocation_journals_its_input_and_starts_an_attempt(core: Core) -> None:
    outcome = core.invoke(InvokeRequest("Greeter", "greet", body=b'"Ann"', headers=[("a", "b")]))
    assert starts(core.take_effects()) == [outcome.invocation_id]
    (entry,) = core.store.read_journal(outcome.invocation_id)
    message = entry.message()
    assert isinstance(message, m.InputCommand)
    assert message.value.content == b'"Ann"' and message.headers[0].key == "a"
    inv = core.get(outcome.invocation_id)
    assert inv is not None and inv.status is Status.INVOKED


def test_end_completes_with_the_last_output_and_answers_waiters(core: Core) -> None:
    inv = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    core.take_effects()
    output(core, inv, b"1")
    effects = core.take_effects()
    completed = [e for e in effects if isinstance(e, Completed)]
    assert completed and completed[0].result.value == b"1"
    record = core.get(inv)
    assert record is not None and record.status is Status.COMPLETED
    assert record.expires_at == record.completed_at + 24 * 3600 * 1000  # type: ignore[operator]


def test_exclusive_handlers_of_one_key_queue_in_arrival_order(core: Core) -> None:
    first = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    second = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    third = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    shared = core.invoke(InvokeRequest("Counter", "get", key="k")).invocation_id
    other = core.invoke(InvokeRequest("Counter", "add", key="other")).invocation_id
    assert starts(core.take_effects()) == [first, shared, other]
    assert core.get(second).status is Status.INBOXED  # type: ignore[union-attr]
    output(core, first, b"")
    assert starts(core.take_effects()) == [second]
    output(core, second, b"")
    assert starts(core.take_effects()) == [third]


def test_state_writes_are_refused_in_shared_handlers_and_services(core: Core) -> None:
    shared = core.invoke(InvokeRequest("Counter", "get", key="k")).invocation_id
    with pytest.raises(AttemptRejected):
        command(core, shared, m.SetStateCommand(key=b"a", value=m.Value(content=b"1")))
    service = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    with pytest.raises(AttemptRejected):
        command(core, service, m.GetEagerStateCommand(key=b"a"))
    assert journal_types(core, shared) == [MessageType.INPUT]


def test_lazy_state_reads_are_answered_right_after_the_command(core: Core) -> None:
    inv = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    command(core, inv, m.SetStateCommand(key=b"a", value=m.Value(content=b"1")))
    effects = command(core, inv, m.GetLazyStateCommand(key=b"a", result_completion_id=1))
    assert journal_types(core, inv)[-2:] == [
        MessageType.GET_LAZY_STATE,
        MessageType.GET_LAZY_STATE_COMPLETION,
    ]
    forwarded = [e for e in effects if isinstance(e, Forward)]
    assert forwarded[0].frame.message().value.content == b"1"  # type: ignore[union-attr]


def test_sleep_suspend_and_resume_when_the_timer_fires(core: Core, clock: Clock) -> None:
    inv = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    core.take_effects()
    effects = command(core, inv, m.SleepCommand(wake_up_time=clock.now + 500,
                                                result_completion_id=1))  # fmt: skip
    assert TimerSet(clock.now + 500) in effects
    core.on_suspension(inv, m.SuspensionMessage(waiting_completions=[1], waiting_signals=[1]))
    assert core.get(inv).status is Status.SUSPENDED  # type: ignore[union-attr]
    assert core.fire_timers(clock.now + 499) == 0
    assert core.fire_timers(clock.now + 500) == 1
    assert starts(core.take_effects()) == [inv]
    last = core.store.read_journal(inv)[-1]
    assert last.type is MessageType.SLEEP_COMPLETION
    assert last.payload == b"\x08\x01\x22\x00"  # completion_id=1, void present


def test_suspension_resumes_at_once_when_the_awaited_notification_is_there(core: Core) -> None:
    inv = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    command(core, inv, m.RunCommand(result_completion_id=1, name="x"))
    core.on_proposal(inv, Frame.of(m.ProposeRunCompletionMessage(result_completion_id=1,
                                                                 value=b"7")))  # fmt: skip
    core.take_effects()
    core.on_suspension(inv, m.SuspensionMessage(waiting_completions=[1]))
    assert starts(core.take_effects()) == [inv]
    assert core.get(inv).status is Status.INVOKED  # type: ignore[union-attr]


def test_calls_notify_the_caller_with_the_id_then_the_result(core: Core) -> None:
    parent = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    core.take_effects()
    effects = command(core, parent, m.CallCommand(service_name="Greeter", handler_name="greet",
                      parameter=b"p", invocation_id_notification_idx=1,
                      result_completion_id=2))  # fmt: skip
    (child,) = starts(effects)
    id_note = core.store.read_journal(parent)[-1].message()
    assert id_note.invocation_id == str(child)  # type: ignore[union-attr]
    output(core, child, b"r")
    last = core.store.read_journal(parent)[-1]
    assert last.type is MessageType.CALL_COMPLETION
    assert last.message().value.content == b"r"  # type: ignore[union-attr]


def test_unknown_call_targets_fail_the_attempt(core: Core) -> None:
    inv = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    with pytest.raises(AttemptRejected):
        command(core, inv, m.CallCommand(service_name="Nope", handler_name="x"))


def test_idempotent_duplicates_share_the_invocation_and_its_result(core: Core) -> None:
    request = InvokeRequest("Counter", "add", key="k", idempotency_key="i")
    first = core.invoke(request)
    duplicate = core.invoke(request)
    assert duplicate.invocation_id == first.invocation_id and duplicate.result is None
    sent = core.invoke(InvokeRequest("Counter", "add", key="k", idempotency_key="i", send=True))
    assert sent.previously_accepted
    output(core, first.invocation_id, b"5")
    after = core.invoke(request)
    assert after.result is not None and after.result.value == b"5"
    other_key = core.invoke(InvokeRequest("Counter", "add", key="k2", idempotency_key="i"))
    assert other_key.invocation_id != first.invocation_id


def test_a_workflow_runs_once_per_key(core: Core) -> None:
    first = core.invoke(InvokeRequest("Flow", "run", key="w"))
    conflict = core.invoke(InvokeRequest("Flow", "run", key="w"))
    assert conflict.result is not None and conflict.result.failure_code == 409
    assert core.invoke(InvokeRequest("Flow", "run", key="w", send=True)).previously_accepted
    assert first.invocation_id == InvocationId.for_workflow("Flow", "w")


def test_promises_complete_once_and_wake_their_listeners(core: Core) -> None:
    run = core.invoke(InvokeRequest("Flow", "run", key="w")).invocation_id
    poke = core.invoke(InvokeRequest("Flow", "poke", key="w")).invocation_id
    core.take_effects()
    command(core, run, m.GetPromiseCommand(key="p", result_completion_id=1))
    core.on_suspension(run, m.SuspensionMessage(waiting_completions=[1]))
    complete = m.CompletePromiseCommand(key="p", completion_value=m.Value(content=b"v"),
                                        result_completion_id=1)  # fmt: skip
    assert starts(command(core, poke, complete)) == [run]
    assert core.store.read_journal(run)[-1].type is MessageType.GET_PROMISE_COMPLETION
    command(core, poke, m.CompletePromiseCommand(key="p", completion_value=m.Value(content=b"w"),
                                                 result_completion_id=2))  # fmt: skip
    again = core.store.read_journal(poke)[-1].message()
    assert again.failure.code == 409  # type: ignore[union-attr]


def test_failures_back_off_exponentially_then_pause(core: Core, clock: Clock) -> None:
    inv = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    delays = []
    for _ in range(4):
        core.take_effects()
        core.on_failure(inv, 500, "boom")
        record = core.get(inv)
        assert record is not None and record.status is Status.BACKING_OFF
        delays.append(record.next_retry_at - clock.now)  # type: ignore[operator]
        core.fire_timers(record.next_retry_at)  # type: ignore[arg-type]
        assert starts(core.take_effects()) == [inv]
    assert delays == [500, 1000, 2000, 4000]
    for _ in range(66):
        core.on_failure(inv, 500, "boom")
        record = core.get(inv)
        if record is not None and record.status is Status.PAUSED:
            break
        core.fire_timers(record.next_retry_at)  # type: ignore[union-attr, arg-type]
    assert core.get(inv).status is Status.PAUSED  # type: ignore[union-attr]
    assert core.get(inv).retry_count == 70  # type: ignore[union-attr]
    core.take_effects()
    assert core.resume(inv) == "done" and starts(core.take_effects()) == [inv]


def test_cancel_ends_queued_invocations_and_signals_running_ones(core: Core) -> None:
    running = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    queued = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    assert core.cancel(queued) == "done"
    assert core.get(queued).result.failure_code == 409  # type: ignore[union-attr]
    core.on_suspension(running, m.SuspensionMessage(waiting_signals=[1]))
    core.take_effects()
    assert core.cancel(running) == "appended"
    assert starts(core.take_effects()) == [running]
    assert core.store.read_journal(running)[-1].type is MessageType.SIGNAL
    assert core.cancel(queued) == "completed"
    assert core.cancel(InvocationId.new()) == "not_found"


def test_kill_ends_the_invocation_and_its_children(core: Core) -> None:
    parent = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    core.take_effects()
    effects = command(core, parent, m.CallCommand(service_name="Greeter", handler_name="greet",
                      invocation_id_notification_idx=1, result_completion_id=2))  # fmt: skip
    (child,) = starts(effects)
    assert core.kill(parent) == "done"
    effects = core.take_effects()
    assert AbortAttempt(parent) in effects and AbortAttempt(child) in effects
    for inv in (parent, child):
        record = core.get(inv)
        assert record is not None and record.result is not None
        assert (record.result.failure_code, record.result.failure_message) == (409, "killed")


def test_completed_invocations_are_purged_when_retention_ends(core: Core, clock: Clock) -> None:
    inv = core.invoke(InvokeRequest("Greeter", "greet", idempotency_key="x")).invocation_id
    output(core, inv, b"")
    record = core.get(inv)
    assert record is not None and record.expires_at is not None
    core.fire_timers(record.expires_at)
    assert core.get(inv) is None
    assert core.store.read_journal(inv) == []


def test_a_retention_end_fires_when_due_and_not_before(core: Core) -> None:
    inv = core.invoke(InvokeRequest("Greeter", "greet", idempotency_key="x")).invocation_id
    output(core, inv, b"")
    record = core.get(inv)
    assert record is not None and record.expires_at is not None
    assert core.fire_timers(record.expires_at - 1) == 0
    assert core.get(inv) is not None
    assert core.fire_timers(record.expires_at) == 1
    assert core.get(inv) is None


def test_a_retention_end_stored_as_a_timer_row_still_purges(core: Core) -> None:
    """Stores written before retention ends were the invocations' own expires_at keep an
    EXPIRE timer row per completed invocation: it fires as before (once, with the index)."""
    inv = core.invoke(InvokeRequest("Greeter", "greet", idempotency_key="x")).invocation_id
    output(core, inv, b"")
    record = core.get(inv)
    assert record is not None and record.expires_at is not None
    core.store.add_timer(record.expires_at, inv, TimerKind.EXPIRE)
    core.fire_timers(record.expires_at)
    assert core.get(inv) is None
    assert core.store.due_timers(record.expires_at) == []


def test_a_terminal_error_reaches_the_caller_with_its_metadata(core: Core) -> None:
    parent = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    core.take_effects()
    effects = command(core, parent, m.CallCommand(service_name="Greeter", handler_name="greet",
                      invocation_id_notification_idx=1, result_completion_id=2))  # fmt: skip
    (child,) = starts(effects)
    failure = m.Failure(
        code=418, message="teapot", metadata=[m.FailureMetadata(key="k", value="v")]
    )
    command(core, child, m.OutputCommand(failure=failure))
    core.on_end(child)
    received = core.store.read_journal(parent)[-1].message()
    assert received.failure.code == 418  # type: ignore[union-attr]
    assert [(e.key, e.value) for e in received.failure.metadata] == [("k", "v")]  # type: ignore[union-attr]
    stored = core.get(child)
    assert stored is not None and stored.result is not None
    assert stored.result.failure_metadata == (("k", "v"),)


def test_failure_metadata_is_dropped_for_a_v5_deployment() -> None:
    result = Result.failure(418, "teapot", (("k", "v"),))
    frame, _ = note.completion(MessageType.CALL_COMPLETION, 2, result)
    assert note.for_protocol(frame, 6) is frame
    v5 = note.for_protocol(frame, 5).message()
    assert v5.failure.code == 418 and not v5.failure.metadata  # type: ignore[union-attr]


def test_a_call_back_into_a_locked_key_is_reported_as_a_deadlock(core: Core) -> None:
    outer = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    core.take_effects()
    effects = command(core, outer, m.CallCommand(service_name="Counter", handler_name="add",
                      key="k", invocation_id_notification_idx=1,
                      result_completion_id=2))  # fmt: skip
    assert starts(effects) == []  # queued behind the caller, which holds the lock
    (report,) = [e for e in effects if isinstance(e, DeadlockDetected)]
    (inner,) = [i for i in report.cycle if i != outer]
    assert report.cycle == (outer, inner)
    assert report.description == (
        f"deadlock: Counter/k/add ({outer}) waits for Counter/k/add ({inner}), "
        f"which is queued behind Counter/k/add ({outer})"
    )
    assert find_cycle(inner, WaitGraph(core.store)) is not None
    assert core.cancel(inner) == "done"
    assert find_cycle(outer, WaitGraph(core.store)) is None


def test_calls_without_a_cycle_are_not_reported(core: Core) -> None:
    outer = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    core.take_effects()
    effects = command(core, outer, m.CallCommand(service_name="Counter", handler_name="add",
                      key="other", invocation_id_notification_idx=1,
                      result_completion_id=2))  # fmt: skip
    assert len(starts(effects)) == 1
    assert not [e for e in effects if isinstance(e, DeadlockDetected)]


def test_a_retry_delay_the_sdk_asks_for_does_not_consume_the_budget(
    core: Core, clock: Clock
) -> None:
    inv = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    for _ in range(100):  # more than the 70 attempts of the default policy
        core.take_effects()
        core.on_failure(inv, 500, "step failed, retry later", next_retry_delay=250)
        record = core.get(inv)
        assert record is not None
        assert record.status is Status.BACKING_OFF
        assert record.next_retry_at == clock.now + 250
        core.fire_timers(record.next_retry_at)
    assert core.get(inv).retry_count == 0  # type: ignore[union-attr]
    core.on_failure(inv, 500, "boom")
    assert core.get(inv).retry_count == 1  # type: ignore[union-attr]
