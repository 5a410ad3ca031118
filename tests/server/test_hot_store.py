"""The in-memory layer (storage/hot.py): it answers what the store would, rolls back with a failed
event, keeps the hot path free of storage reads, and stays bounded.

Every engine-core test (tests/server/test_engine_core.py) runs here again on a ``HotStore``, and
after each one memory must equal what a fresh load from the store gives.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from perdure.protocol import Frame, InvocationId, Manifest
from perdure.protocol import messages as m
from perdure.server.engine import registrations
from perdure.server.engine.core import Core, InvokeRequest
from perdure.server.records import DeploymentRecord, Invocation, Status, TimerKind
from perdure.server.registry import Registry
from perdure.server.storage import Store
from perdure.server.storage.hot import HotStore
from tests.server import test_engine_core
from tests.server.test_engine_core import MANIFEST, PIN, Clock, command, output

# the engine-core tests, collected again in this module with ``core`` on a HotStore (below)
for _name in dir(test_engine_core):
    if _name.startswith("test_"):
        globals()[_name] = getattr(test_engine_core, _name)

_FOREVER = 1 << 62


def hot_core(clock: Clock, timer_window: int = 10_000) -> Core:
    store = HotStore(Store(":memory:"), timer_window=timer_window)
    record = DeploymentRecord(
        "dp_test", "http://x", False, {}, {}, "BIDI_STREAM", 5, 7, None,
        json.dumps(MANIFEST), 0,
    )  # fmt: skip
    core = Core(store, Registry(), clock)
    registrations.add_deployment(core, record, Manifest.from_json(MANIFEST))
    return core


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def core(clock: Clock) -> Iterator[Core]:
    core = hot_core(clock)
    yield core
    assert_memory_matches_store(hot(core))


def hot(core: Core) -> HotStore:
    assert isinstance(core.store, HotStore)
    return core.store


def memory(store: HotStore) -> dict[str, Any]:
    """Everything the layer holds, comparable with ==."""
    return {
        "live": dict(store._live),
        "live_keys": dict(store._live_keys),
        "journals": {i: list(j) for i, j in store._journals.items()},
        "sinks": {i: list(s) for i, s in store._sinks.items()},
        "state": {k: dict(v) for k, v in store._state.items()},
        "locks": dict(store._locks),
        "inbox": dict(store._inbox),
        "timers": dict(store._timers),
        "horizon": store._horizon,
    }


def sinks(store: HotStore, invocation_id: InvocationId) -> list[tuple[str, int, int]]:
    found = store._sinks.get(invocation_id, [])
    return sorted((str(s.caller), s.completion_id, int(s.notification_type)) for s in found)


def assert_memory_matches_store(store: HotStore) -> None:
    """What memory holds is what the store holds (and no more than live work needs)."""
    inner = store.inner
    fresh = HotStore(inner, timer_window=store.timer_window)
    assert store._live == fresh._live
    assert store._live_keys == fresh._live_keys
    assert store._locks == fresh._locks
    for pair in set(store._inbox) | set(fresh._inbox):
        if store._inbox.get(pair, 0) is not None:  # None: "ask the store"
            assert store._inbox.get(pair, 0) == fresh._inbox.get(pair, 0), pair
    for invocation_id in store._live:
        assert sinks(store, invocation_id) == sinks(fresh, invocation_id)
    assert set(store._sinks) <= set(store._live) | set(fresh._sinks)
    stored = inner.due_timers(_FOREVER, 1 << 30)
    horizon = store._horizon
    assert set(store._timers.values()) == {
        t for t in stored if horizon is None or t.fire_at <= horizon
    }
    assert set(store._journals) <= set(store._live)
    for invocation_id, journal in store._journals.items():
        assert [f for f, _ in journal] == inner.read_journal(invocation_id)
        for frame_key in {k for _, k in journal if k}:
            assert inner.has_notification(invocation_id, [frame_key])
    assert set(store._state) <= set(store._live_keys)
    for (service, key), state in store._state.items():
        assert sorted(state.items()) == inner.get_state(service, key)


def test_a_rolled_back_event_rolls_memory_back(clock: Clock) -> None:
    core = hot_core(clock)
    store = hot(core)
    holder = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    command(core, holder, m.SetStateCommand(key=b"a", value=m.Value(content=b"1")))
    core.take_effects()
    before = memory(store)

    store.begin_event()
    queued = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id  # inboxed
    sleeper = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    command(core, sleeper, m.SleepCommand(wake_up_time=clock.now + 50, result_completion_id=1))
    command(core, holder, m.SetStateCommand(key=b"a", value=m.Value(content=b"2")))
    command(core, holder, m.ClearAllStateCommand())
    child_call = m.CallCommand(
        service_name="Greeter",
        handler_name="greet",
        invocation_id_notification_idx=1,
        result_completion_id=2,
    )
    command(core, sleeper, child_call)
    output(core, holder, b"done")  # completes, releases the lock to ``queued``
    assert store.lock_holder("Counter", "k") == str(queued)
    assert memory(store) != before
    store.end_event(keep=False)
    core.take_effects()

    assert memory(store) == before
    assert store.lock_holder("Counter", "k") == str(holder)
    assert store.get_invocation(queued) is None and store.get_invocation(sleeper) is None
    assert store.get_state("Counter", "k") == [(b"a", b"1")]
    assert store.next_timer_at() is None
    assert store.pop_inbox("Counter", "k") is None
    assert_memory_matches_store(store)


def _puts(statements: list[str]) -> list[str]:
    return [s for s in statements if s.startswith("INSERT OR REPLACE INTO invocations")]


def test_a_record_put_by_several_events_of_a_batch_is_written_once(clock: Clock) -> None:
    core = hot_core(clock)
    store = hot(core)
    inner = store.inner
    assert isinstance(inner, Store)
    statements: list[str] = []
    inner.db.set_trace_callback(statements.append)
    store.begin_event()
    inv = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    store.end_event(keep=True)
    for n in range(3):
        store.begin_event()
        command(core, inv, m.SleepCommand(wake_up_time=clock.now + 50, result_completion_id=n))
        store.end_event(keep=n != 2)  # the last one is rolled back
    assert _puts(statements) == []  # memory answers until the commit
    store.commit()
    inner.db.set_trace_callback(None)
    assert len(_puts(statements)) == 1
    record = inner.get_invocation(inv)
    assert record is not None and record.journal_len == 3  # input + the two kept sleeps
    assert_memory_matches_store(store)


def test_a_query_inside_a_batch_sees_records_not_written_yet(clock: Clock) -> None:
    core = hot_core(clock)
    store = hot(core)
    store.begin_event()
    inv = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    store.end_event(keep=True)
    store.begin_event()
    command(core, inv, m.SleepCommand(wake_up_time=clock.now + 50, result_completion_id=1))
    (listed,) = store.list_invocations()
    assert listed.id == inv and listed.journal_len == 2
    store.end_event(keep=False)  # takes the rows written for the query back with it
    store.commit()
    record = store.inner.get_invocation(inv)
    assert record is not None and record.journal_len == 1
    assert [i.id for i in store.list_invocations()] == [inv]
    assert_memory_matches_store(store)


def test_a_record_the_store_would_refuse_fails_its_own_event(clock: Clock) -> None:
    core = hot_core(clock)
    store = hot(core)
    store.begin_event()
    inv = core.invoke(InvokeRequest("Greeter", "greet")).invocation_id
    store.end_event(keep=True)
    record = store.get_invocation(inv)
    assert record is not None
    record.next_retry_at = 1 << 64  # a retry delay setting that overflows
    store.begin_event()
    with pytest.raises(OverflowError):
        store.put_invocation(record)
    store.end_event(keep=False)
    store.commit()  # the batch still commits, with the first event
    assert store.inner.get_invocation(inv) is not None
    assert_memory_matches_store(store)


def test_a_nested_event_rolls_back_alone(clock: Clock) -> None:
    core = hot_core(clock)
    store = hot(core)
    store.begin_event()
    kept = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    store.begin_event()
    dropped = core.invoke(InvokeRequest("Counter", "add", key="k")).invocation_id
    store.end_event(keep=False)
    store.end_event(keep=True)
    store.commit()
    assert store.get_invocation(kept) is not None and store.get_invocation(dropped) is None
    assert store.pop_inbox("Counter", "k") is None  # the inboxed one went with its event
    assert_memory_matches_store(store)


def test_random_events_with_random_rollbacks_keep_memory_equal_to_the_store(
    clock: Clock,
) -> None:
    """Many transitions of every kind, a third of them rolled back; a tiny timer window so the
    index refills and shrinks; memory checked against the store after each event."""
    rng = random.Random(7)
    core = hot_core(clock, timer_window=4)
    store = hot(core)
    live: list[InvocationId] = []
    cids: dict[InvocationId, int] = {}

    def step() -> None:
        roll = rng.random()
        if roll < 0.3 or not live:
            target = rng.choice(
                [("Greeter", "greet", ""), ("Counter", "add", rng.choice("ab")),
                 ("Counter", "get", "a"), ("Flow", "poke", "w")]
            )  # fmt: skip
            later = clock.now + rng.choice([0, 0, 30, 90])
            outcome = core.invoke(
                InvokeRequest(target[0], target[1], key=target[2], execution_time=later)
            )
            live.append(outcome.invocation_id)
            return
        inv = rng.choice(live)
        record = store.get_invocation(inv)
        if record is None or record.status is Status.COMPLETED:
            live.remove(inv)
            return
        cid = cids[inv] = cids.get(inv, 0) + 1
        if record.status is not Status.INVOKED:
            return
        exclusive = record.exclusive
        match rng.randrange(6):
            case 0:
                output(core, inv, b"x")
            case 1:
                at = clock.now + rng.choice([10, 40, 100])
                command(core, inv, m.SleepCommand(wake_up_time=at, result_completion_id=cid))
            case 2 if exclusive:
                value = m.Value(content=bytes([cid % 256]))
                command(core, inv, m.SetStateCommand(key=rng.choice([b"a", b"b"]), value=value))
            case 3 if exclusive:
                command(core, inv, m.GetEagerStateCommand(key=b"a"))
            case 4:
                core.on_failure(inv, 500, "boom")
            case _:
                core.on_suspension(inv, m.SuspensionMessage(waiting_completions=[cid - 1]))

    for _ in range(600):
        store.begin_event()
        try:
            step()
            if rng.random() < 0.3:
                core.fire_timers(clock.now)
        finally:
            store.end_event(keep=rng.random() > 0.33)
        core.take_effects()
        store.commit()
        clock.now += rng.choice([0, 5, 20])
        assert_memory_matches_store(store)
    assert len(store._timers) <= 2 * store.timer_window + 20  # bounded by the window


def test_a_noop_invocation_reads_nothing_from_the_store(clock: Clock) -> None:
    """Invoke, output, end: every read the transitions make is answered from memory."""
    core = hot_core(clock)
    inner = hot(core).inner
    assert isinstance(inner, Store)
    statements: list[str] = []
    inner.db.set_trace_callback(statements.append)
    inv = core.invoke(InvokeRequest("Counter", "add", key="k", body=b"1")).invocation_id
    command(core, inv, m.GetEagerStateCommand(key=b"a"))
    core.on_command(inv, Frame.of(m.OutputCommand(value=m.Value(content=b"1"))), PIN)
    core.on_end(inv)
    inner.db.set_trace_callback(None)
    reads = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert reads == []
    assert not [s for s in statements if "FROM timers" in s]  # memory knows it has none
    assert any(s.startswith("INSERT OR REPLACE INTO invocations") for s in statements)
    record = core.get(inv)
    assert record is not None and record.status is Status.COMPLETED  # now read from the store
    assert hot(core).memory_sizes()["invocations"] == 0


def test_the_timer_index_holds_a_window_and_loads_the_next_one(clock: Clock) -> None:
    core = hot_core(clock, timer_window=10)
    store = hot(core)
    ids = [core.invoke(InvokeRequest("Greeter", "greet")).invocation_id for _ in range(50)]
    for n, inv in enumerate(ids):
        store.add_timer(clock.now + 1000 + n, inv, TimerKind.SLEEP, 1)
    store.commit()
    assert len(store._timers) <= 2 * store.timer_window  # bounded, the rest in the store only
    fired = 0
    now = clock.now + 1000
    while (at := store.next_timer_at()) is not None:
        due = store.due_timers(max(at, now))
        assert [t.fire_at for t in due] == sorted(t.fire_at for t in due)
        for timer in due:
            store.delete_timer(timer)
            fired += 1
        store.commit()
    assert fired == 50


def test_deleting_an_invocations_timers_deletes_those_memory_does_not_hold(clock: Clock) -> None:
    """Timers set beyond the index's window, or left out when it is refilled, are in the store
    only: deleting an invocation's timers must reach them too."""
    core = hot_core(clock, timer_window=4)
    store = hot(core)
    inner = store.inner
    assert isinstance(inner, Store)
    beyond, refilled, plain = (
        core.invoke(InvokeRequest("Greeter", "greet")).invocation_id for _ in range(3)
    )
    for n in range(12):  # fills the window: the later ones are stored only
        store.add_timer(clock.now + 1000 + n, beyond, TimerKind.SLEEP, n)
    store.commit()
    store.add_timer(clock.now + 999, refilled, TimerKind.SLEEP, 1)  # in memory, for now
    store.add_timer(clock.now + 998, plain, TimerKind.RETRY)
    for n in range(12):  # more than twice the window: the next commit refills the index
        store.add_timer(clock.now + 900 + n, InvocationId.new(), TimerKind.SLEEP, n)
    store.commit()
    for invocation_id in (beyond, refilled, plain):
        store.begin_event()
        store.delete_timers_of(invocation_id)
        store.end_event(keep=True)
    store.commit()
    left = {t.invocation_id for t in inner.due_timers(_FOREVER, 1 << 30)}
    assert not left & {beyond, refilled, plain}
    assert_memory_matches_store(store)


class MovingStore(Store):
    """A store whose ``load_partitions`` writes rows through a connection of its own (as the
    PostgreSQL store fills its working copy from a worker thread)."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, synchronous="OFF")
        self.other = Store(path, synchronous="OFF")

    def load_partitions(self, ps: Iterable[int]) -> None:
        other = self.other
        other.begin()
        inv = Invocation(
            id=InvocationId.new(None), service="Counter", handler="add", key="moved",
            service_ty="VIRTUAL_OBJECT", handler_ty="EXCLUSIVE", status=Status.SUSPENDED,
            created_at=1, modified_at=1, last_append_at=1, awaiting=["c1"],
        )  # fmt: skip
        other.put_invocation(inv)
        other.take_lock("Counter", "moved", inv.id)
        other.add_timer(5_000, inv.id, TimerKind.SLEEP, 1)
        other.commit()


def test_rows_loaded_under_memory_are_picked_up_before_the_next_event(tmp_path: Path) -> None:
    store = HotStore(MovingStore(tmp_path / "db"))
    assert store.lock_holder("Counter", "moved") is None
    store.load_partitions([3])  # rows written through another connection
    store.begin_event()  # memory reloads first
    holder = store.lock_holder("Counter", "moved")
    store.end_event(keep=True)
    store.commit()
    assert holder is not None
    assert store.next_timer_at() == 5_000
    (suspended,) = store.invocations_with_status(Status.SUSPENDED)
    assert str(suspended.id) == holder
    assert_memory_matches_store(store)
    store.close()
