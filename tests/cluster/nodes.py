"""A real cluster for tests: N ``perdure server`` processes on one PostgreSQL database (each
with ``--store``, ``--node-name`` and a data dir of its own for its working copy), and the
helpers the cluster tests and the chaos suite share (wait for the leases to settle, who owns
what, kill, pause, restart).

Each node's store connection carries ``application_name=perdure-store-NAME`` (a DSN parameter)
so that PostgreSQL can tell whose transaction wrote a row (see ``WriteAudit``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.support.perdure_server import REPO, server_command, wait_ready
from tests.support.processes import Restartable, free_port

TTL = 5.0
"""The lease TTL of a node (perdure's default)."""


@dataclass
class Node(Restartable):
    """One ``perdure server`` of the cluster; the process faults are ``Restartable``'s."""

    name: str
    dsn: str
    tmp: Path
    ingress_port: int = field(default_factory=free_port)
    admin_port: int = field(default_factory=free_port)
    args: tuple[str, ...] = ()

    @property
    def ingress(self) -> str:
        return f"http://127.0.0.1:{self.ingress_port}"

    @property
    def admin(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    @property
    def store_dsn(self) -> str:
        sep = "&" if "?" in self.dsn else "?"
        return f"{self.dsn}{sep}application_name=perdure-store-{self.name}"

    def start(self, *, wait: bool = True) -> None:
        command = server_command(
            self.tmp / f"node-{self.name}", self.ingress_port, self.admin_port,
            "--store", self.store_dsn, "--node-name", self.name, "--no-ui", *self.args,
        )  # fmt: skip
        self.spawn(f"node {self.name}", command, self.tmp / f"node-{self.name}", cwd=REPO)
        if wait:
            self.wait_ready()

    def wait_ready(self) -> None:
        wait_ready(f"node {self.name}", self.admin, self.ingress, self.child)


@dataclass
class Cluster:
    nodes: list[Node]
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.name == name)

    def live(self) -> list[Node]:
        return [n for n in self.nodes if n.alive()]

    def status(self, via: Node | None = None) -> dict[str, Any]:
        """``GET /cluster`` from ``via`` (default: the first live node that answers)."""
        for node in [via] if via is not None else self.live():
            with contextlib.suppress(httpx.HTTPError):
                resp = self.http.get(node.admin + "/cluster")
                if resp.status_code == 200:
                    status: dict[str, Any] = resp.json()
                    return status
        raise RuntimeError("no node answered GET /cluster")

    def owners(self, via: Node | None = None) -> dict[int, str | None]:
        return {lease["partition"]: lease["owner"] for lease in self.status(via)["leases"]}

    def wait_settled(
        self, names: Sequence[str], timeout: float = 30.0, *, even: bool = True
    ) -> dict[int, str | None]:
        """Until every partition is held by one of ``names`` (and, when ``even``, each holds
        its fair share: P // n or P // n + 1), as every one of those nodes sees it; returns the
        owners."""
        deadline = time.monotonic() + timeout
        owners: dict[int, str | None] = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(RuntimeError):
                views = [self.owners(self.node(n)) for n in names]
                owners = views[0]
                counts = [sum(o == n for o in owners.values()) for n in names]
                p = len(owners)
                if (
                    all(view == owners for view in views)
                    and all(o in names for o in owners.values())
                    and (
                        not even or all(p // len(names) <= c <= -(-p // len(names)) for c in counts)
                    )
                ):
                    return owners
            time.sleep(0.1)
        raise TimeoutError(f"the leases did not settle on {list(names)}: {owners}")

    def register(self, uri: str, via: Node | None = None) -> None:
        node = via or self.live()[0]
        resp = self.http.post(node.admin + "/deployments", json={"uri": uri, "force": True})
        assert resp.status_code in (200, 201), resp.text

    def close(self) -> None:
        self.http.close()
        for node in self.nodes:
            node.thaw()
            node.stop()


@contextlib.contextmanager
def cluster(dsn: str, tmp: Path, names: Sequence[str] = ("a", "b", "c"),
            args: Sequence[str] = ()) -> Iterator[Cluster]:  # fmt: skip
    """Start the nodes (the first alone, so that it creates the schema, then the others at
    once) and wait until the leases are spread over all of them."""
    tmp.mkdir(parents=True, exist_ok=True)
    nodes = [Node(name, dsn, tmp, args=tuple(args)) for name in names]
    c = Cluster(nodes)
    try:
        nodes[0].start()
        for node in nodes[1:]:
            node.start(wait=False)
        for node in nodes[1:]:
            node.wait_ready()
        c.wait_settled(names)
        yield c
    finally:
        c.close()


class WriteAudit:
    """Proof of who wrote what: a trigger on every table a node's store writes records the
    writing connection's ``application_name`` and the time of each row change."""

    TABLES = ("invocations", "journal", "state", "timers", "inbox", "locks", "outbox", "dedup",
              "idempotency", "sinks", "promises")  # fmt: skip

    def __init__(self, dsn: str) -> None:
        import psycopg

        with psycopg.connect(dsn, autocommit=True) as db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS write_audit (app TEXT, tbl TEXT, at TIMESTAMPTZ)"
            )
            db.execute(
                """CREATE OR REPLACE FUNCTION write_audit() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    INSERT INTO write_audit VALUES (
                        current_setting('application_name'), TG_TABLE_NAME, clock_timestamp());
                    RETURN NULL;
                END $$"""
            )
            for table in self.TABLES:
                db.execute(
                    f"CREATE OR REPLACE TRIGGER audit_{table} AFTER INSERT OR UPDATE OR DELETE "
                    f"ON {table} FOR EACH ROW EXECUTE FUNCTION write_audit()"
                )
        self.dsn = dsn

    def writes_by(self, node: str, since: float) -> list[tuple[str, str]]:
        """(table, time) of the rows ``node``'s store wrote at or after ``since`` (epoch s)."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as db:
            rows = db.execute(
                "SELECT tbl, at::text FROM write_audit WHERE app = %s "
                "AND at >= to_timestamp(%s) ORDER BY at",
                (f"perdure-store-{node}", since),
            ).fetchall()
        return [(str(t), str(a)) for t, a in rows]

    def count_by(self, node: str) -> int:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as db:
            row = db.execute(
                "SELECT count(*) FROM write_audit WHERE app = %s", (f"perdure-store-{node}",)
            ).fetchone()
        return int(row[0]) if row else 0
