"""The lease keeper: a thread that, every ``interval`` seconds, heartbeats, renews this node's
leases, reads the cluster's view, and claims or gives back partitions (``balance.plan``).

It runs apart from the event loop so that a busy loop does not let the leases lapse. It owns
``held`` (partition -> epoch of the leases this process holds in PostgreSQL) and tells the node
what changed through callbacks, called on the keeper's thread:

* ``gained(leases)``: claimed; the node loads and acquires them (asynchronously);
* ``lost(partitions)``: another node took them over (this one was paused or cut off past its
  lease); its writes to them are fenced anyway;
* ``give_back(partitions)``: surplus to hand over; returns once the node has stopped them and
  everything it wrote for them is durable (False: not now); only then is the lease released;
* ``renewed(began)``: every lease held was renewed by a tick that began at ``began``
  (monotonic): the node's leases are sure until ``began`` + TTL (see ``gate``).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import psycopg

from perdure.server.cluster.balance import plan
from perdure.server.cluster.leases import ClusterView, LeaseTable

log = logging.getLogger("perdure.server.cluster")


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
        give_back: Callable[[list[int]], bool],
        renewed: Callable[[float], None] | None = None,
    ) -> None:
        self.table = table
        self.timing = timing
        self._gained, self._lost, self._give_back = gained, lost, give_back
        self._renewed = renewed
        self.held: dict[int, int] = {}
        self.view: ClusterView | None = None
        self.view_changed = threading.Condition()
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
            except Exception:
                log.exception("lease tick failed (retrying)")
            self._stop.wait(self.timing.interval)

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
        todo = plan(view, self.table.me.name, self.held)
        moved = False
        if todo.release and self._give_back(todo.release):
            given = {p: self.held.pop(p) for p in todo.release}
            self.table.release(given)
            log.info("gave back partitions %s", sorted(given))
            moved = True
        if todo.claim:
            won = self.table.claim(todo.claim)
            if won:
                self.held.update(won)
                log.info("claimed partitions %s", {p: won[p] for p in sorted(won)})
                self._gained(won)
                moved = True
        if moved:  # the router reads owners from the view: show the moves at once
            self._publish(self.table.view())

    def _publish(self, view: ClusterView) -> None:
        with self.view_changed:
            self.view = view
            self.view_changed.notify_all()
