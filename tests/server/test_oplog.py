"""The op log of a working copy: the final image of each row changed, undone with its event,
merged across batches, restored under newer changes when shipping fails."""

from __future__ import annotations

from perdure.server.storage.oplog import Change, OpLog


def shipped(log: OpLog) -> dict[tuple[str, tuple[object, ...]], Change]:
    return log.take()


def test_the_last_image_of_a_row_wins_across_batches() -> None:
    log = OpLog()
    log.put("state", (1, "S", "k", b"a", b"1"))
    log.commit()
    log.put("state", (1, "S", "k", b"a", b"2"))
    log.commit()
    assert shipped(log) == {
        ("state", (1, "S", "k", b"a")): Change((1, "S", "k", b"a", b"2"), False)
    }


def test_a_row_inserted_then_deleted_before_shipping_ships_nothing() -> None:
    log = OpLog()
    log.put("timers", (1, 7, 100, "inv", "sleep", None), fresh=True)
    log.commit()
    log.delete("timers", (1, 7))
    log.commit()
    assert shipped(log) == {}
    log.put("state", (1, "S", "k", b"a", b"1"))  # not fresh: it may exist remotely
    log.delete("state", (1, "S", "k", b"a"))
    log.commit()
    assert shipped(log) == {("state", (1, "S", "k", b"a")): Change(None, False)}


def test_an_undone_event_leaves_the_batch_as_before_it() -> None:
    log = OpLog()
    log.begin_event()
    log.put("locks", (1, "S", "k", "inv1"))
    log.end_event(keep=True)
    log.begin_event()
    log.put("locks", (1, "S", "k", "inv2"))
    log.delete("locks", (1, "S", "k"))
    log.put("inbox", (1, "S", "k", 3, "inv3"), fresh=True)
    log.end_event(keep=False)
    log.commit()
    assert shipped(log) == {("locks", (1, "S", "k")): Change((1, "S", "k", "inv1"), False)}


def test_a_failed_shipment_goes_back_under_newer_changes_none_fresh() -> None:
    log = OpLog()
    log.put("timers", (1, 7, 100, "inv", "sleep", None), fresh=True)
    log.put("state", (1, "S", "k", b"a", b"old"))
    log.commit()
    taken = log.take()
    log.put("state", (1, "S", "k", b"a", b"new"))
    log.commit()
    log.restore(taken)  # the transaction may or may not have committed
    log.delete("timers", (1, 7))
    log.commit()
    assert log.take() == {
        ("timers", (1, 7)): Change(None, False),  # it may be there now: delete it
        ("state", (1, "S", "k", b"a")): Change((1, "S", "k", b"a", b"new"), False),
    }
