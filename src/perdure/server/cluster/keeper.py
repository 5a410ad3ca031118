"""The lease keeper: a thread that, every ``interval`` seconds, heartbeats, renews this node's
leases, reads the cluster's view, and claims or gives back partitions (``balance.plan``).

It runs apart from the event loop so that a busy loop does not let the leases lapse. It owns
``held`` (partition -> epoch of the leases this process holds in PostgreSQL) and tells the node
what changed through callbacks, called on the keeper's thread:

* ``gained(leases)``: claimed; the node loads and acquires them (asynchronously);
* ``lost(partitions)``: another node took them over (this one was paused or cut off past its
  lease); its writes to them are fenced anyway;
* ``give_back(partitions)``: surplus to hand over; returns a future done once the node has
  stopped them and everything it wrote for them is durable; only then is the lease released
  (the keeper waits for it a little, then frees the lease at a later tick);
* ``renewed(began)``: every lease held was renewed by a tick that began at ``began``
  (monotonic): the node's leases are sure until ``began`` + TTL (see ``gate``).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from perdure.server.cluster.balance import plan
from perdure.server.storage.postgres.leases import ClusterView, LeaseTable

log = logging.getLogger("perdure.server.cluster")
STUCK_AFTER = 3.0
"""Seconds a store transaction may hold lease rows before a blocked keeper ends it."""


@dataclass(frozen=True, slots=True)
class Timing:
    interval: float = 1.0
    """Seconds between two ticks (heartbeat, renewals, claims)."""
    ttl: float = 5.0
    """Seconds a lease lasts without renewal (a node silent this long loses its partitions)."""


class LeaseKeeper:
    def __init__(
        self,
        table: LeaseTable,
        timing: Timing,
        *,
        gained: Callable[[dict[int, int]], None],
        lost: Callable[[set[int]], None],
        give_back: Callable[[list[int]], concurrent.futures.Future[None]],
        renewed: Callable[[float], None] | None = None,
    ) -> None:
        self.table = table
        self.timing = timing
        self._gained, self._lost, self._give_back = gained, lost, give_back
        self._renewed = renewed
        self.held: dict[int, int] = {}
        self.view: ClusterView | None = None
        self.view_changed = threading.Condition()
        self._handing: list[tuple[list[int], concurrent.futures.Future[None]]] = []
        """Hand-overs under way: their leases are freed once they are done."""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="perdure-leases", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop ticking (the leases are left to ``leave`` or to expire)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def leave(self) -> None:
        """Give every lease back and leave the nodes table (after the engine stopped)."""
        self.stop()
        try:
            self.table.leave(self.held)
        except psycopg.Error as exc:
            log.warning("could not give the leases back (they expire in %ss): %s",
                        self.timing.ttl, exc)  # fmt: skip
        self.held = {}

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except psycopg.Error as exc:
                log.warning("lease tick failed (retrying): %s", exc)
                with contextlib.suppress(psycopg.Error):
                    self.table.db.rollback()
                if isinstance(exc, psycopg.errors.LockNotAvailable):
                    with contextlib.suppress(psycopg.Error):
                        self._end_stuck_writers()
            except Exception:
                log.exception("lease tick failed (retrying)")
            self._stop.wait(self.timing.interval)

    def _end_stuck_writers(self) -> None:
        """A lease row stayed locked past the lock timeout: a commit of some node holds it in
        a transaction that does not end (that node frozen or cut off mid-commit). Its lease
        lapses anyway, so end that transaction, or the lease could never change hands."""
        for pid in self.table.end_stuck_writers(STUCK_AFTER):
            log.warning("ended a store transaction stuck for over %ss holding lease rows "
                        "(backend %s)", STUCK_AFTER, pid)  # fmt: skip

    def tick(self) -> None:
        began = time.monotonic()
        renewed, view = self.table.tick(self.held)
        lost = set(self.held) - renewed
        if lost:
            for p in lost:
                del self.held[p]
            self._lost(lost)
        elif self._renewed is not None:
            self._renewed(began)
        self._publish(view)
        moved = self._finish_hand_overs()
        todo = plan(view, self.table.me.name, self.held)
        releasing = [p for p in todo.release if not any(p in ps for ps, _ in self._handing)]
        if releasing:
            handed = self._give_back(releasing)
            done, _ = concurrent.futures.wait([handed], timeout=self.timing.ttl / 2)
            if not done:
                log.warning("handing partitions %s over takes long; their leases are given "
                            "back once it is done", releasing)  # fmt: skip
            self._handing.append((releasing, handed))
            moved = self._finish_hand_overs() or moved
        if todo.claim:
            won = self.table.claim(todo.claim)
            if won:
                self.held.update(won)
                log.info("claimed partitions %s", {p: won[p] for p in sorted(won)})
                self._gained(won)
                moved = True
        if moved:  # the router reads owners from the view: show the moves at once
            self._publish(self.table.view())

    def _finish_hand_overs(self) -> bool:
        """Free the leases of the hand-overs that are done (their partitions stopped, their
        writes durable); a failed one is acquired again. True when a lease was freed."""
        freed = False
        pending = []
        for partitions, handed in self._handing:
            if not handed.done():
                pending.append((partitions, handed))
                continue
            mine = {p: self.held[p] for p in partitions if p in self.held}
            if handed.exception() is not None:
                log.warning("handing partitions %s over failed (%r); running them again",
                            partitions, handed.exception())  # fmt: skip
                self._gained(mine)
                continue
            for p in mine:
                del self.held[p]
            self.table.release(mine)
            log.info("gave back partitions %s", sorted(mine))
            freed = True
        self._handing = pending
        return freed

    def _publish(self, view: ClusterView) -> None:
        with self.view_changed:
            self.view = view
            self.view_changed.notify_all()
