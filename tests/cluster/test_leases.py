"""The lease layer on a real PostgreSQL: claims race safely, renewals keep leases, expired ones
move with epoch + 1, the fence refuses a commit after a takeover, and the balance plan spreads
partitions evenly as nodes join and leave."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from perdure.server.cluster.balance import plan, shares
from perdure.server.cluster.fencing import LeaseFence
from perdure.server.storage.postgres import FENCED_SQLSTATE
from perdure.server.storage.postgres.leases import ClusterError, LeaseTable, NodeAddress

P = 8


_open: list[LeaseTable] = []


@pytest.fixture(autouse=True)
def _close_tables() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()


def table(dsn: str, name: str, ttl: float = 5.0) -> LeaseTable:
    t = LeaseTable(dsn, NodeAddress(name, f"http://{name}:8080", f"http://{name}:9070"), ttl)
    _open.append(t)
    t.setup(P)
    return t


def test_two_nodes_claiming_everything_win_disjoint_sets(pg_dsn: str) -> None:
    a, b = table(pg_dsn, "a"), table(pg_dsn, "b")
    results: dict[str, dict[int, int]] = {}
    threads = [
        threading.Thread(target=lambda t=t: results.__setitem__(t.me.name, t.claim(range(P))))
        for t in (a, b)
    ]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not set(results["a"]) & set(results["b"])
    assert set(results["a"]) | set(results["b"]) == set(range(P))
    assert all(epoch == 1 for r in results.values() for epoch in r.values())
    # held leases cannot be claimed by another node
    assert b.claim(results["a"]) == {}


def test_renewal_keeps_a_lease_and_expiry_moves_it_with_a_new_epoch(pg_dsn: str) -> None:
    a, b = table(pg_dsn, "a", ttl=1.0), table(pg_dsn, "b", ttl=1.0)
    held = a.claim([0, 1])
    assert held == {0: 1, 1: 1}
    for _ in range(3):  # renewed past several TTLs: nobody can take it
        time.sleep(0.4)
        renewed, _ = a.tick(held)
        assert renewed == {0, 1}
        assert b.claim([0]) == {}
    time.sleep(1.3)  # a stops renewing
    assert b.claim([0]) == {0: 2}
    renewed, view = a.tick(held)
    assert renewed == {1}  # partition 0 was taken over: a learns it at its next renewal
    lease = view.leases[0]
    assert (lease.owner, lease.epoch) == ("b", 2)


def test_a_fenced_commit_writes_nothing(pg_dsn: str) -> None:
    a, b = table(pg_dsn, "a", ttl=0.5), table(pg_dsn, "b", ttl=0.5)
    fence = LeaseFence("a")
    for p, epoch in a.claim([3]).items():
        fence.grant(p, epoch)
    with psycopg.connect(pg_dsn) as db:
        db.execute("CREATE TABLE rows (p INTEGER, v TEXT)")
        db.commit()
        with db.transaction():  # while the lease is ours: the commit lands
            fence.check(db, frozenset({3}))
            db.execute("INSERT INTO rows VALUES (3, 'before')")
        time.sleep(0.8)
        assert b.claim([3]) == {3: 2}

        def commit_after_takeover() -> None:
            with db.pipeline(), db.transaction():
                fence.check(db, frozenset({3}))  # pipelined: the error surfaces at the commit
                db.execute("INSERT INTO rows VALUES (3, 'after')")

        with pytest.raises(psycopg.Error) as failure:
            commit_after_takeover()
        assert failure.value.sqlstate == FENCED_SQLSTATE
        assert "3:b@2" in str(failure.value)
        assert db.execute("SELECT v FROM rows").fetchall() == [("before",)]
        with pytest.raises(psycopg.Error) as failure, db.transaction():
            fence.check(db, frozenset({4}))  # never granted: refused
        assert failure.value.sqlstate == FENCED_SQLSTATE


def test_a_claim_waits_for_a_commit_holding_the_lease(pg_dsn: str) -> None:
    """The commit's share lock orders it before the takeover: the new owner sees its writes."""
    a, b = table(pg_dsn, "a", ttl=0.3), table(pg_dsn, "b", ttl=0.3)
    fence = LeaseFence("a")
    for p, epoch in a.claim([5]).items():
        fence.grant(p, epoch)
    time.sleep(0.5)  # expired but not yet taken: a's commit is still valid
    with psycopg.connect(pg_dsn) as db:
        db.execute("CREATE TABLE rows (p INTEGER, v TEXT)")
        db.commit()
        db.execute("BEGIN")
        fence.check(db, frozenset({5}))
        db.execute("INSERT INTO rows VALUES (5, 'late but valid')")
        claimed: dict[int, int] = {}
        claimer = threading.Thread(target=lambda: claimed.update(b.claim([5])))
        claimer.start()
        time.sleep(0.3)
        assert claimer.is_alive()  # blocked behind the commit's share lock
        db.execute("COMMIT")
        claimer.join(5)
    assert claimed == {5: 2}


def test_a_commit_stuck_holding_a_lease_is_ended_so_the_lease_can_move(pg_dsn: str) -> None:
    """A node frozen mid-commit keeps its share lock: the blocked claimer ends that transaction
    (its lease lapsed anyway), then wins; the stuck commit wrote nothing."""
    a, b = table(pg_dsn, "a", ttl=0.3), table(pg_dsn, "b", ttl=0.3)
    fence = LeaseFence("a")
    for p, epoch in a.claim([6]).items():
        fence.grant(p, epoch)
    with psycopg.connect(pg_dsn, autocommit=True) as setup:
        setup.execute("CREATE TABLE stuck_rows (p INTEGER)")
    stuck = psycopg.connect(pg_dsn)
    try:
        fence.check(stuck, frozenset({6}))  # the commit took its share lock, then froze
        stuck.execute("INSERT INTO stuck_rows VALUES (6)")
        time.sleep(0.6)  # a's lease lapses; a keeper's own connections are never ended
        with pytest.raises(psycopg.errors.LockNotAvailable):
            b.claim([6])
        b.db.rollback()
        assert a.end_stuck_writers(60.0) == []  # nothing that old
        ended = b.end_stuck_writers(0.5)
        assert ended == [stuck.info.backend_pid]
        assert b.claim([6]) == {6: 2}
        with pytest.raises(psycopg.OperationalError):
            stuck.execute("COMMIT")
    finally:
        stuck.close()
    with psycopg.connect(pg_dsn) as db:
        assert db.execute("SELECT count(*) FROM stuck_rows").fetchone() == (0,)


def test_a_store_of_another_partition_count_is_refused(pg_dsn: str) -> None:
    table(pg_dsn, "a")
    other = LeaseTable(pg_dsn, NodeAddress("b", "http://b:8080", "http://b:9070"), 5.0)
    _open.append(other)
    with pytest.raises(ClusterError, match="--partitions 8"):
        other.setup(16)


def test_shares_are_even() -> None:
    assert shares({"a", "b", "c"}, 16) == {"a": 6, "b": 5, "c": 5}
    assert max(shares({str(i) for i in range(5)}, 16).values()) == 4  # ceil(16/5)


def test_the_plan_spreads_on_join_and_takes_over_on_leave(pg_dsn: str) -> None:
    a, b = table(pg_dsn, "a", ttl=1.0), table(pg_dsn, "b", ttl=1.0)
    held_a = a.claim(plan(a.tick({})[1], "a", set()).claim)
    assert set(held_a) == set(range(P))  # alone: everything
    _, view = b.tick({})  # b joins
    held_b = b.claim(plan(view, "b", set()).claim)
    assert held_b == {}  # nothing free yet
    _, view = a.tick(held_a)
    todo = plan(view, "a", set(held_a))
    assert len(todo.release) == P // 2 and not todo.claim
    a.release({p: held_a.pop(p) for p in todo.release})
    _, view = b.tick({})
    held_b = b.claim(plan(view, "b", set()).claim)
    assert len(held_b) == P // 2 and all(e == 2 for e in held_b.values())
    time.sleep(1.2)  # a dies (no renewal): its leases expire, b takes over beyond its share
    _, view = b.tick(held_b)
    assert not view.node("a").live  # type: ignore[union-attr]
    todo = plan(view, "b", set(held_b))
    assert sorted(todo.claim) == sorted(held_a)


def test_the_store_ships_nothing_once_a_lease_moved_on(pg_dsn: str, tmp_path: Path) -> None:
    """The real store under the lease fence: a commit while the lease is ours lands in
    PostgreSQL; after another node's claim the next one raises Fenced and writes nothing."""
    from perdure.protocol import InvocationId
    from perdure.server.partitions import PartitionMap
    from perdure.server.records import Invocation, Status
    from perdure.server.storage.postgres import Fenced, PostgresStore

    a, b = table(pg_dsn, "a", ttl=0.5), table(pg_dsn, "b", ttl=0.5)
    fence = LeaseFence("a")
    store = PostgresStore(pg_dsn, tmp_path / "wc.sqlite3", partitions=P, owned=(), fence=fence)
    try:
        won = a.claim(range(P))
        for p, epoch in won.items():
            fence.grant(p, epoch)
        store.load_partitions(range(P))
        parts = PartitionMap(P)
        first, second = InvocationId.new(), InvocationId.new()
        victim = parts.partition_of_id(second)

        def write(inv: InvocationId) -> None:
            store.begin_event()
            store.put_invocation(
                Invocation(inv, "S", "h", "", "SERVICE", None, Status.INVOKED, 1, 1, 1)
            )
            store.end_event(keep=True)
            store.commit()
            store.sync()

        write(first)
        time.sleep(0.8)
        assert b.claim([victim]) == {victim: 2}
        with pytest.raises(Fenced):
            write(second)
    finally:
        store.close()
    with psycopg.connect(pg_dsn) as db:
        ids = {r[0] for r in db.execute("SELECT id FROM invocations").fetchall()}
    assert ids == {str(first)}
