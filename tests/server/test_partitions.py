"""Partitions: engines owning a share of them exchange durable messages, and every interaction
across partitions happens exactly once (calls, awakeables, cancel, attach, kill, idempotency),
whatever the transport drops, repeats or reorders, and across a restart."""

from __future__ import annotations

import asyncio
import json
import logging
import random
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from perdure.cli.main import main
from perdure.protocol import Frame, InvocationId, Manifest, MessageType, partition_key_of
from perdure.protocol import messages as m
from perdure.server.engine import registrations
from perdure.server.engine.driver import Engine
from perdure.server.engine.messages import (
    AttachMessage,
    InvokeMessage,
    KillMessage,
    MessageError,
    NotifyMessage,
    NotOwned,
    OutboxMessage,
    SignalMessage,
    TargetNotRegisteredYet,
    decode_messages,
    encode_messages,
)
from perdure.server.engine.requests import InvokeRequest
from perdure.server.partitions import PartitionCountMismatch, PartitionMap
from perdure.server.records import DeploymentRecord, Result, Status
from perdure.server.registry import Registry
from perdure.server.runtime import Runtime
from perdure.server.storage import Store
from tests.server.partition_nodes import (
    PARTITIONS,
    MemoryTransport,
    Node,
    completed,
    eventually,
)
from tests.server.test_engine_core import MANIFEST, PIN

CORE_MANIFEST = Manifest.from_json(MANIFEST)

# -- the partition map and the messages ---------------------------------------------------------


def test_partitions_cut_the_key_space_into_equal_ranges() -> None:
    for count in (1, 3, 16, 1000):
        pm = PartitionMap(count)
        edges = [pm.key_range(p) for p in range(count)]
        assert edges[0].start == 0 and edges[-1].stop == 1 << 64
        for p, keys in enumerate(edges):
            assert pm.partition_of(keys.start) == p == pm.partition_of(keys.stop - 1)
            assert p == count - 1 or keys.stop == edges[p + 1].start
            assert pm.partition_of(pm.random_key(p)) == p
    with pytest.raises(ValueError, match="from 1 to"):
        PartitionMap(0)


def test_messages_round_trip_through_bytes() -> None:
    a, b = InvocationId.new(), InvocationId.new()
    bodies = [
        InvokeMessage(
            a, "S", "h", "k", b"\x00body", (("x", "y"),), "idem", 5, True, (b, 3), "me", 9
        ),
        InvokeMessage(a, "S", "h"),
        NotifyMessage(a, 0x8002, b"payload", "c3"),
        SignalMessage(a, 17, None, Result.failure(409, "no", (("k", "v"),))),
        SignalMessage(a, None, "named", Result(value=b"v")),
        SignalMessage(a, 1),
        AttachMessage(a, b, 4, 0x800A),
        KillMessage(a),
    ]
    messages = [OutboxMessage(2, n + 1, 5, body) for n, body in enumerate(bodies)]
    assert decode_messages(encode_messages(messages)) == messages
    assert OutboxMessage.from_bytes(messages[0].to_bytes()) == messages[0]
    for bad in (b"{", b"{}", b'[{"source": 1}]', b'[{"source":1,"seq":1,"target":2,"kind":"x",'
                b'"id":"inv_1"}]'):  # fmt: skip
        with pytest.raises(MessageError):
            decode_messages(bad)


def test_the_partition_count_is_fixed_when_the_store_is_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def scenario() -> None:
        runtime = Runtime(tmp_path / "perdure.sqlite3", partitions=8)
        assert runtime.engine.partitions == PartitionMap(8)
        await runtime.stop(0)
        with pytest.raises(PartitionCountMismatch, match="created with 8 partitions, not 16"):
            Runtime(tmp_path / "perdure.sqlite3", partitions=16)
        runtime = Runtime(tmp_path / "perdure.sqlite3")  # no flag: the store's count
        assert runtime.engine.partitions.count == 8
        await runtime.stop(0)

    asyncio.run(scenario())
    assert main(["server", "--data-dir", str(tmp_path), "--partitions", "4"]) == 1
    assert "created with 8 partitions, not 4" in capsys.readouterr().err
    assert main(["server", "--data-dir", str(tmp_path), "--partitions", "0"]) == 2
    assert "--partitions: the partition count must be" in capsys.readouterr().err


# -- engines exchanging messages ----------------------------------------------------------------

Scenario = Callable[[list[Node], MemoryTransport], Awaitable[None]]


def run_nodes(
    tmp_path: Path, scenario: Scenario, *, count: int = 2, synchronous: str = "OFF"
) -> None:
    """``count`` engines, engine i owning the partitions p with p % count == i (with
    ``synchronous=FULL``: messages leave only after the fsync of their batch)."""

    errors: list[logging.LogRecord] = []
    collect = logging.Handler(logging.ERROR)
    collect.emit = errors.append  # type: ignore[method-assign]
    engine_log = logging.getLogger("perdure.server.engine")

    async def main_() -> None:
        transport = MemoryTransport()
        nodes = [
            Node(
                tmp_path / f"node{i}.sqlite3",
                [p for p in range(PARTITIONS.count) if p % count == i],
                transport,
                synchronous,
            )
            for i in range(count)
        ]
        for node in nodes:
            await node.start()
        try:
            await asyncio.wait_for(scenario(nodes, transport), 60)
        finally:
            for node in nodes:
                await node.stop()

    engine_log.addHandler(collect)
    try:
        asyncio.run(main_())
    finally:
        engine_log.removeHandler(collect)
    assert [r.getMessage() for r in errors] == []  # no message failed to apply, say


def hits(nodes: list[Node], key: str) -> int:
    owner = next(n for n in nodes if n.owns_key(key))
    return int(owner.state("Chain", key).get("hits", b"0"))


def test_a_call_chain_across_partitions_completes_exactly_once(tmp_path: Path) -> None:
    async def scenario(nodes: list[Node], transport: MemoryTransport) -> None:
        a, b, c = nodes
        keys = [a.key("x"), b.key("y"), c.key("z"), a.key("w"), b.key("v")]
        response = await a.post(f"/Chain/{keys[0]}/hop", keys[1:])
        assert (response.status_code, response.json()) == (200, keys)
        assert [hits(nodes, k) for k in keys] == [1] * len(keys)
        assert transport.delivered >= 8  # 4 invokes and 4 results crossed, at least
        await eventually(lambda: all(n.engine.deliveries_pending == 0 for n in nodes))
        for node in nodes:  # acknowledged messages leave the outbox
            assert all(node.engine.outbox_rows(p) == [] for p in node.owned)

    run_nodes(tmp_path, scenario, count=3, synchronous="FULL")


def test_a_keyed_call_and_idempotent_and_workflow_duplicates_across_partitions(
    tmp_path: Path,
) -> None:
    async def scenario(nodes: list[Node], transport: MemoryTransport) -> None:
        a, b = nodes
        counter = b.key("c")
        response = await a.post(f"/Dup/{a.key('d')}/twice", counter)
        assert response.status_code == 200, response.text
        first, second, run, again = response.json()
        assert (first, second) == (1, 1)  # the idempotent duplicate shares the first's result
        assert b.state("Counter", counter) == {"total": b"1"}
        assert run == "run a #1"
        assert again == "409 the workflow method was already invoked"
        assert b.state("Flow", counter) == {"runs": b"1"}

    run_nodes(tmp_path, scenario)


def test_an_awakeable_is_completed_across_partitions(tmp_path: Path) -> None:
    async def scenario(nodes: list[Node], transport: MemoryTransport) -> None:
        a, b = nodes
        resolver = b.key("r")
        response = await a.post(f"/Waiter/{a.key('w')}/wait", resolver)
        assert (response.status_code, response.json()) == (200, f"resolved by {resolver}")

    run_nodes(tmp_path, scenario)


def test_cancel_and_kill_reach_callees_in_other_partitions(tmp_path: Path) -> None:
    async def scenario(nodes: list[Node], transport: MemoryTransport) -> None:
        a, b = nodes
        for action, expected in (("cancel", "cancel"), ("kill", "killed")):
            sleeper = b.key(f"s-{action}-")
            sent = await a.post(f"/Parent/{a.key(action)}/call_sleeper/send", sleeper)
            parent = sent.json()["invocationId"]

            def asleep(key: str = sleeper) -> bool:  # the callee runs, in its sleep
                return any(
                    i.key == key and MessageType.SLEEP in [f.type for f in b.engine.journal(i.id)]
                    for i in b.invocations_of("Sleeper")
                )

            await eventually(asleep)
            child = next(i for i in b.invocations_of("Sleeper") if i.key == sleeper)
            response = await a.admin("PATCH", f"/invocations/{parent}/{action}")
            assert response.status_code in (200, 202), response.text

            def ended(child_id: InvocationId = child.id) -> bool:
                inv = b.invocation(child_id)
                return inv is not None and inv.status is Status.COMPLETED

            await eventually(ended)
            result = b.invocation(child.id).result  # type: ignore[union-attr]
            assert result is not None and result.failure_code == 409
            assert expected in (result.failure_message or "")  # the SDK says "cancelled"
            await eventually(lambda p=parent: a.invocation(p).status is Status.COMPLETED)  # type: ignore[union-attr]
            assert a.invocation(parent).result.failure_code == 409  # type: ignore[union-attr]

    run_nodes(tmp_path, scenario)


def test_attach_and_output_across_partitions(tmp_path: Path) -> None:
    async def scenario(nodes: list[Node], transport: MemoryTransport) -> None:
        a, b = nodes
        sent = await b.post(f"/Sleeper/{b.key('n')}/nap/send", 300)
        target = sent.json()["invocationId"]
        response = await a.post(f"/Attacher/{a.key('t')}/attach", target)
        assert response.json() == [None, f"slept {b.key('n')}"]  # not ready yet, then attached
        again = await a.post(f"/Attacher/{a.key('u')}/attach", target)  # completed: at once
        assert again.json() == [f"slept {b.key('n')}"] * 2
        missing = str(InvocationId.new(PARTITIONS.random_key(next(iter(b.owned)))))
        gone = await a.post(f"/Attacher/{a.key('v')}/attach", missing)
        assert gone.status_code == 404 or gone.json() is None or "not found" in gone.text

    run_nodes(tmp_path, scenario)


def test_an_unreliable_transport_still_applies_each_message_once(tmp_path: Path) -> None:
    async def scenario(nodes: list[Node], transport: MemoryTransport) -> None:
        a, b = nodes
        transport.chaos = random.Random(7)
        chains = [[a.key(f"a{n}-"), b.key(f"b{n}-"), a.key(f"c{n}-"), b.key(f"d{n}-")]
                  for n in range(8)]  # fmt: skip
        responses = await asyncio.gather(
            *(a.post(f"/Chain/{keys[0]}/hop", keys[1:]) for keys in chains)
        )
        assert [r.json() for r in responses] == chains
        assert [hits(nodes, k) for keys in chains for k in keys] == [1] * 32
        resolver = b.key("r")
        waited = await a.post(f"/Waiter/{a.key('w')}/wait", resolver)
        assert waited.json() == f"resolved by {resolver}"

    run_nodes(tmp_path, scenario)


def test_a_restarted_engine_sends_its_outbox_again_and_nothing_is_applied_twice(
    tmp_path: Path,
) -> None:
    async def scenario(nodes: list[Node], transport: MemoryTransport) -> None:
        a, b = nodes
        keys = [a.key("x"), b.key("y"), a.key("z")]
        transport.blocked = set(b.owned)  # b unreachable: a's invoke waits in its outbox
        sent = await a.post(f"/Chain/{keys[0]}/hop/send", keys[1:])
        first = sent.json()["invocationId"]
        await eventually(lambda: any(a.engine.outbox_rows(p) for p in a.owned))
        await a.stop()  # the outbox is in a's store only
        await a.start()
        transport.blocked = set()
        await eventually(completed(a, "Chain", 2))  # a's two hops; b's in between
        inv = a.invocation(first)
        assert inv is not None and inv.status is Status.COMPLETED
        assert json.loads(inv.result.value or b"") == keys  # type: ignore[union-attr]
        # Now every answer is lost after it is applied, and the receiver restarts meanwhile:
        # the sender sends again, and the receiver's stored high-water marks drop the repeats.
        transport.lose_answers = True
        more = [a.key("p"), b.key("q")]
        sent = await a.post(f"/Chain/{more[0]}/hop/send", more[1:])
        await eventually(lambda: hits(nodes, more[1]) == 1)
        await b.stop()
        await b.start()
        transport.lose_answers = False
        await eventually(lambda: a.invocation(sent.json()["invocationId"]).status  # type: ignore[union-attr]
                         is Status.COMPLETED)  # fmt: skip
        assert [hits(nodes, k) for k in keys + more] == [1] * 5
        await eventually(lambda: all(n.engine.deliveries_pending == 0 for n in nodes))

    run_nodes(tmp_path, scenario)


def test_release_stops_a_partition_and_acquire_takes_it_back(tmp_path: Path) -> None:
    async def scenario(nodes: list[Node], transport: MemoryTransport) -> None:
        a, b = nodes
        key = b.key("m")
        moved = PARTITIONS.partition_of(partition_key_of(key))
        assert a.engine.owned == a.owned and moved not in a.owned
        sent = await b.post(f"/Sleeper/{key}/nap/send", 400)
        napping = sent.json()["invocationId"]
        await eventually(lambda: b.engine.journal(InvocationId.parse(napping))[-1:] != []
                         and MessageType.SLEEP in [f.type for f in b.engine.journal(
                             InvocationId.parse(napping))])  # fmt: skip
        await b.engine.release([moved])
        assert moved not in b.engine.owned and not b.engine.owns(InvocationId.parse(napping))
        refused = await b.post(f"/Counter/{key}/add", 1)  # the ingress of a non-owner
        assert refused.status_code >= 500
        await asyncio.sleep(0.8)  # the nap is due: nothing fires or completes it meanwhile
        assert b.invocation(napping).status is not Status.COMPLETED  # type: ignore[union-attr]
        await b.engine.acquire([moved])
        assert moved in b.engine.owned
        await eventually(lambda: b.invocation(napping).status is Status.COMPLETED)  # type: ignore[union-attr]
        assert json.loads(b.invocation(napping).result.value or b"") == f"slept {key}"  # type: ignore[union-attr]
        response = await b.post(f"/Counter/{key}/add", 5)
        assert response.json() == 5

    run_nodes(tmp_path, scenario)


def test_an_engine_runs_only_what_it_owns_until_it_acquires_the_rest(tmp_path: Path) -> None:
    """One store, first owned in full, then reopened owning half: the other half's timers and
    invocations wait, and messages to it stay in the outbox, until ``acquire`` (which recovers
    them and delivers the outbox locally)."""

    async def main_() -> None:
        transport = MemoryTransport()  # knows no owner: messages to unowned partitions wait
        path = tmp_path / "node.sqlite3"
        full = Node(path, PARTITIONS.all, transport)
        await full.start()
        half = Node(path, [0, 1], transport)
        sleeper = next(f"s{n}" for n in range(1000) if not half.owns_key(f"s{n}"))
        sent = await full.post(f"/Sleeper/{sleeper}/nap/send", 300)
        napping = sent.json()["invocationId"]
        await full.stop()
        half = Node(path, [0, 1], transport)
        await half.start()
        try:
            keys = [half.key("x"), next(f"c{n}" for n in range(99) if not half.owns_key(f"c{n}"))]
            chained = await half.post(f"/Chain/{keys[0]}/hop/send", keys[1:])
            await eventually(lambda: any(half.engine.outbox_rows(p) for p in half.owned))
            await asyncio.sleep(0.6)  # the nap is due, but its partition is not owned
            assert half.invocation(napping).status is not Status.COMPLETED  # type: ignore[union-attr]
            assert half.invocation(chained.json()["invocationId"]).status is not Status.COMPLETED  # type: ignore[union-attr]
            await half.engine.acquire([2, 3])
            assert half.engine.owned == PARTITIONS.all
            await eventually(lambda: half.invocation(napping).status is Status.COMPLETED)  # type: ignore[union-attr]
            await eventually(
                lambda: (
                    half.invocation(chained.json()["invocationId"]).status  # type: ignore[union-attr]
                    is Status.COMPLETED
                )
            )
            assert int(half.state("Chain", keys[1])["hits"]) == 1
            await eventually(lambda: half.engine.deliveries_pending == 0)
            assert all(half.engine.outbox_rows(p) == [] for p in PARTITIONS.all)
        finally:
            await half.stop()

    asyncio.run(asyncio.wait_for(main_(), 60))


class RecordingTransport:
    """Records deliveries; holds each one until ``hold`` is set."""

    def __init__(self) -> None:
        self.deliveries: list[tuple[int, list[OutboxMessage]]] = []
        self.hold = asyncio.Event()

    async def deliver(self, target_partition: int, messages: list[OutboxMessage]) -> None:
        self.deliveries.append((target_partition, messages))
        await self.hold.wait()


def test_a_message_leaves_only_once_the_batch_that_sent_it_is_durable(tmp_path: Path) -> None:
    async def scenario() -> None:
        store = Store(tmp_path / "db", synchronous="FULL")
        transport = RecordingTransport()
        engine = Engine(store, Registry(), partitions=PARTITIONS, owned=[0, 1],
                        transport=transport)  # fmt: skip
        record = DeploymentRecord("dp_test", "http://x", False, {}, {}, "BIDI_STREAM", 5, 7, None,
                                  json.dumps(MANIFEST), 0)  # fmt: skip
        engine.run(lambda core: registrations.add_deployment(core, record, CORE_MANIFEST))
        keys = {PARTITIONS.partition_of(partition_key_of(f"k{n}")) >= 2: f"k{n}" for n in range(99)}
        mine, theirs = keys[False], keys[True]
        caller = engine.run(lambda core: core.invoke(InvokeRequest("Counter", "add", mine)))
        await engine.durable()

        def call(n: int) -> None:
            message = m.CallCommand(service_name="Counter", handler_name="add", key=theirs,
                                    parameter=b"1", invocation_id_notification_idx=n,
                                    result_completion_id=n + 1)  # fmt: skip
            frame = Frame.of(message)
            engine.run(lambda core: core.on_command(caller.invocation_id, frame, PIN))

        call(1)
        await engine.durable()
        await eventually(lambda: len(transport.deliveries) == 1)  # in flight, held
        gate = threading.Event()
        sync = store.sync

        def gated_sync() -> None:
            gate.wait(10)
            sync()

        store.sync = gated_sync  # type: ignore[method-assign]
        call(3)  # applied and committed, not durable yet
        durable = engine.durable()
        transport.hold.set()  # the first is acknowledged; the second must wait for the fsync
        await asyncio.sleep(0.3)
        assert len(transport.deliveries) == 1 and not durable.done()
        source = PARTITIONS.partition_of_id(caller.invocation_id)
        assert [seq for seq, _, _ in engine.outbox_rows(source)] == [2]
        gate.set()
        await durable
        await eventually(lambda: engine.deliveries_pending == 0)
        first, second = (messages[0] for _, messages in transport.deliveries)
        for message, cid in ((first, 2), (second, 4)):
            assert message.target == PARTITIONS.partition_of(partition_key_of(theirs))
            assert isinstance(message.body, InvokeMessage) and message.body.key == theirs
            assert message.body.caller == (caller.invocation_id, cid)
        assert engine.outbox_rows(source) == []  # acknowledged: deleted
        notes = [f.message() for f in engine.journal(caller.invocation_id)]
        ids = [n.invocation_id for n in notes if isinstance(n, m.CallInvocationIdCompletion)]
        assert ids == [str(first.body.invocation_id), str(second.body.invocation_id)]
        with pytest.raises(NotOwned):  # a delivery for a partition this engine does not own
            await engine.accept(first.source, [first])
        await engine.stop()
        engine.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_a_message_that_fails_to_apply_fails_its_invocation_and_blocks_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        engine = Engine(Store(":memory:"), Registry(), partitions=PARTITIONS, owned=[2, 3])
        record = DeploymentRecord("dp_test", "http://x", False, {}, {}, "BIDI_STREAM", 5, 7, None,
                                  json.dumps(MANIFEST), 0)  # fmt: skip
        engine.run(lambda core: registrations.add_deployment(core, record, CORE_MANIFEST))
        key = next(
            f"k{n}" for n in range(99) if PARTITIONS.partition_of(partition_key_of(f"k{n}")) == 2
        )
        target = engine.run(lambda core: core.invoke(InvokeRequest("Counter", "add", key)))
        target_id = target.invocation_id
        broken = OutboxMessage(0, 1, 2, NotifyMessage(target_id, 0x7FFF, b"", "c5"))
        signal = OutboxMessage(0, 2, 2, SignalMessage(target_id, 17, None, Result(value=b"v")))
        await engine.accept(0, [broken, signal])
        await engine.accept(0, [broken, signal])  # again: both dropped as applied
        inv = engine.invocation(target_id)
        assert inv is not None and "applying a message" in (inv.last_failure or "")
        signals = [f for f in engine.journal(target_id) if f.type is MessageType.SIGNAL]
        assert len(signals) == 1
        with pytest.raises(MessageError):
            await engine.accept(1, [signal])  # a message of partition 0 in a delivery from 1
        await engine.stop()
        engine.close()

    with caplog.at_level(logging.ERROR, "perdure.server.engine"):
        asyncio.run(asyncio.wait_for(scenario(), 30))
    assert "it is dropped" in caplog.text


def test_an_invoke_waits_for_the_registry_then_fails_with_404_after_the_grace() -> None:
    async def scenario() -> None:
        clock = FixedClock()
        engine = Engine(Store(":memory:"), Registry(), clock, partitions=PARTITIONS, owned=[2, 3])
        keys = {PARTITIONS.partition_of(partition_key_of(f"k{n}")): f"k{n}" for n in range(99)}
        caller = InvocationId.new(PARTITIONS.random_key(0))

        def invoke(seq: int, key: str, sent_at: int) -> OutboxMessage:
            callee = InvocationId.new(partition_key_of(key))
            body = InvokeMessage(callee, "Counter", "add", key, b"1", caller=(caller, seq),
                                 sent_at=sent_at)  # fmt: skip
            return OutboxMessage(0, seq, PARTITIONS.partition_of(partition_key_of(key)), body)

        early = invoke(1, keys[2], clock.now)
        with pytest.raises(TargetNotRegisteredYet):  # the registry may be behind: retried
            await engine.accept(0, [early])
        assert engine.invocations() == []
        record = DeploymentRecord("dp_test", "http://x", False, {}, {}, "BIDI_STREAM", 5, 7, None,
                                  json.dumps(MANIFEST), 0)  # fmt: skip
        engine.run(lambda core: registrations.add_deployment(core, record, CORE_MANIFEST))
        await engine.accept(0, [early])
        assert [i.key for i in engine.invocations()] == [keys[2]]
        engine.run(lambda core: registrations.remove_deployment(core, "dp_test"))
        late = invoke(2, keys[3], clock.now - 61_000)  # the grace is over: the call fails
        await engine.accept(0, [late])
        ((_, target, data),) = engine.outbox_rows(3)
        answer = OutboxMessage.from_bytes(data)
        assert (target, answer.source) == (0, 3)
        assert isinstance(answer.body, NotifyMessage) and answer.body.invocation_id == caller
        failure = Frame(MessageType(answer.body.frame_type), 0, answer.body.payload).message()
        assert failure.failure.code == 404  # type: ignore[union-attr]
        await engine.stop()
        engine.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


class FixedClock:
    now = 5_000_000_000

    def now_ms(self) -> int:
        return self.now
