"""``perdure server --workers 2``: real processes (a supervisor, two workers, a perdure-SDK
deployment). Keys land on both workers, call chains and awakeables cross between them, the admin
API and ``/query`` show both, registrations reach both and survive restarts, a worker killed
with SIGKILL is restarted and nothing is lost or done twice, and a data dir keeps its worker
count."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from perdure.protocol import InvocationId, partition_key_of
from tests.support.official import serve_asgi
from tests.support.perdure_server import REPO, PerdureServer, wait_until

SERVICES = "tests.server.worker_services:app"
WORKERS = 2
PARTITIONS = 16


def worker_of_key(key: str) -> int:
    return ((partition_key_of(key) * PARTITIONS) >> 64) % WORKERS


def worker_of_id(invocation_id: str) -> int:
    return ((InvocationId.parse(invocation_id).partition_key * PARTITIONS) >> 64) % WORKERS


def keys_on(worker: int, n: int, prefix: str = "k") -> list[str]:
    found = []
    i = 0
    while len(found) < n:
        if worker_of_key(f"{prefix}{i}") == worker:
            found.append(f"{prefix}{i}")
        i += 1
    return found


class Setup:
    def __init__(self, server: PerdureServer, effects: Path) -> None:
        self.server = server
        self.effects = effects
        fresh = httpx.Limits(max_keepalive_connections=0)  # spread over both workers' accepts
        self.ingress = httpx.Client(base_url=server.ingress, timeout=60.0, limits=fresh)
        self.admin = httpx.Client(base_url=server.admin, timeout=60.0, limits=fresh)

    def lines(self, kind: str) -> list[str]:
        path = self.effects / f"{kind}.log"
        return path.read_text().splitlines() if path.exists() else []

    def query(self, sql: str) -> list[dict[str, Any]]:
        resp = self.admin.post("/query", json={"query": sql})
        assert resp.status_code == 200, resp.text
        rows: list[dict[str, Any]] = resp.json()["rows"]
        return rows

    def close(self) -> None:
        self.ingress.close()
        self.admin.close()


@contextmanager
def _start(tmp: Path) -> Iterator[Setup]:
    effects = tmp / "effects"
    effects.mkdir(parents=True)
    os.environ["PERDURE_EFFECTS"] = str(effects)
    try:
        with (
            PerdureServer.start(tmp, args=["--workers", str(WORKERS)], store="sqlite") as server,
            serve_asgi(SERVICES, tmp) as url,
        ):
            server.register(url)
            setup = Setup(server, effects)
            try:
                yield setup
            finally:
                setup.close()
    finally:
        os.environ.pop("PERDURE_EFFECTS", None)


@pytest.fixture(scope="module")
def workers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    with _start(tmp_path_factory.mktemp("workers")) as setup:
        yield setup


def test_keyed_calls_run_on_the_owning_worker_and_the_admin_api_shows_both(
    workers: Setup,
) -> None:
    keys = keys_on(0, 6, "dep") + keys_on(1, 6, "dep")
    ids = {}
    for key in keys:
        for _ in range(2):
            resp = workers.ingress.post(f"/Account/{key}/deposit", json=5)
            assert resp.status_code == 200, resp.text
        assert resp.json() == 10  # state kept by the one worker that owns the key
        ids[key] = resp.headers["x-restate-id"]
    # Each invocation is stored by the worker owning its key, in that worker's own file.
    data = workers.server.data_dir
    for key, inv in ids.items():
        db = data / f"worker-{worker_of_key(key)}" / "perdure.sqlite3"
        other = data / f"worker-{1 - worker_of_key(key)}" / "perdure.sqlite3"
        assert _has_invocation(db, inv) and not _has_invocation(other, inv)
    listed = {r["id"] for r in workers.admin.get("/invocations").json()["invocations"]}
    assert set(ids.values()) <= listed
    for inv in ids.values():  # describing one goes to its owner, whichever worker is asked
        resp = workers.admin.get(f"/invocations/{inv}")
        assert resp.status_code == 200 and resp.json()["status"] == "completed", resp.text
    rows = workers.query(
        "SELECT target_service_key AS k, count(*) AS n FROM sys_invocation "
        "WHERE target_handler_name = 'deposit' GROUP BY target_service_key"
    )
    assert {r["k"]: r["n"] for r in rows} == dict.fromkeys(keys, 2)
    for raw in ("SELECT * FROM w1.invocations", "SELECT * FROM main.invocations"):
        refused = workers.admin.post("/query", json={"query": raw})  # the stores stay hidden
        assert refused.status_code == 400 and "read-only" in refused.text, refused.text
    totals = workers.query("SELECT service_key, value_utf8 FROM state WHERE key = 'total'")
    assert {r["service_key"]: r["value_utf8"] for r in totals if r["service_key"] in keys} == {
        k: "10" for k in keys
    }


def test_a_call_chain_hops_between_workers(workers: Setup) -> None:
    a, b = keys_on(0, 3, "chain"), keys_on(1, 3, "chain")
    path = [a[0], b[0], a[1], b[1], a[2], b[2]]
    resp = workers.ingress.post(f"/Account/{path[0]}/hop", json={"tag": "c1", "keys": path[1:]})
    assert resp.status_code == 200, resp.text
    assert resp.json() == path
    hops = [line.split()[0] for line in workers.lines("ack") if line.startswith("hop/c1/")]
    assert hops == [f"hop/c1/{k}" for k in path]


def test_awakeables_are_resolved_across_workers(workers: Setup) -> None:
    for n, (waiter, resolver) in enumerate(
        [(keys_on(0, 1, "w")[0], keys_on(1, 1, "r")[0]),
         (keys_on(1, 1, "w")[0], keys_on(0, 1, "r")[0])]
    ):  # fmt: skip
        sent = workers.ingress.post(f"/Account/{waiter}/wait/send", json=f"a{n}")
        assert sent.status_code == 202, sent.text
        inv = sent.json()["invocationId"]
        published = wait_until(
            lambda n=n: [line.split()[1] for line in workers.lines("awakeables")
                         if line.startswith(f"a{n} ")],
            "the awakeable id",
        )  # fmt: skip
        # resolved by a handler of an object on the other worker (a message between partitions)
        resp = workers.ingress.post(
            f"/Account/{resolver}/resolve", json={"id": published[0], "value": f"v{n}"}
        )
        assert resp.status_code == 200, resp.text
        out = workers.ingress.get(f"/restate/invocation/{inv}/attach")
        assert out.status_code == 200 and out.json() == f"a{n}:v{n}", out.text
    # and through the ingress, whichever worker takes the request
    sent = workers.ingress.post(f"/Account/{keys_on(1, 1, 'w')[0]}/wait/send", json="a9")
    inv = sent.json()["invocationId"]
    published = wait_until(
        lambda: [line.split()[1] for line in workers.lines("awakeables") if line.startswith("a9 ")],
        "the awakeable id",
    )
    for _ in range(3):  # the duplicates are ignored
        resp = workers.ingress.post(f"/restate/awakeables/{published[0]}/resolve", json="z")
        assert resp.status_code == 202, resp.text
    out = workers.ingress.get(f"/restate/invocation/{inv}/output")
    assert out.status_code in (200, 470)
    out = workers.ingress.get(f"/restate/invocation/{inv}/attach")
    assert out.json() == "a9:z"


def test_idempotent_requests_are_one_invocation_whichever_worker_takes_them(
    workers: Setup,
) -> None:
    for key in (keys_on(0, 1, "idem")[0], keys_on(1, 1, "idem")[0]):
        answers = []
        for _ in range(4):
            resp = workers.ingress.post(
                f"/Account/{key}/deposit", json=1, headers={"idempotency-key": f"once-{key}"}
            )
            assert resp.status_code == 200, resp.text
            answers.append((resp.headers["x-restate-id"], resp.json()))
        assert len(set(answers)) == 1
        inv = answers[0][0]
        assert worker_of_id(inv) == worker_of_key(key)
        assert len([x for x in workers.lines("exec") if x.startswith(f"deposit/{key}/{inv}")]) == 1
        by_key = workers.ingress.get(f"/restate/invocation/Account/{key}/deposit/once-{key}/output")
        assert by_key.status_code == 200 and by_key.headers["x-restate-id"] == inv


def test_admin_actions_on_one_invocation_reach_its_owner(workers: Setup) -> None:
    key = keys_on(1, 1, "cancel")[0]
    sent = workers.ingress.post(f"/Account/{key}/wait/send", json="never")
    inv = sent.json()["invocationId"]
    wait_until(lambda: any(x.startswith("never ") for x in workers.lines("awakeables")),
               "the waiter to start")  # fmt: skip
    for _ in range(2):  # whichever worker receives it
        resp = workers.admin.patch(f"/invocations/{inv}/cancel")
        assert resp.status_code in (200, 202, 409), resp.text
    out = workers.ingress.get(f"/restate/invocation/{inv}/attach")
    assert out.status_code == 409, out.text  # cancelled


def test_registrations_reach_every_worker_and_survive_a_worker_restart(workers: Setup) -> None:
    services = workers.admin.get("/services").json()["services"]
    assert [s["name"] for s in services] == ["Account"]
    # Kill each worker in turn: its replacement still knows the deployment (its own file, or
    # worker 0's snapshot), and keys of both workers are served.
    for victim in range(WORKERS):
        pids = workers.server.worker_pids()
        os.kill(pids[victim], signal.SIGKILL)
        _wait_restart(workers.server, pids)
        for key in (keys_on(0, 1, "after")[0], keys_on(1, 1, "after")[0]):
            resp = workers.ingress.post(f"/Account/{key}/deposit", json=1)
            assert resp.status_code == 200, resp.text
    # A service whose deployment was removed on worker 0 is gone from every worker.
    deployments = workers.admin.get("/deployments").json()["deployments"]
    assert len(deployments) == 1
    for _ in range(4):
        assert workers.admin.get(f"/deployments/{deployments[0]['id']}").status_code == 200


def _has_invocation(db: Path, inv: str) -> bool:
    import sqlite3

    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return con.execute("SELECT 1 FROM invocations WHERE id = ?", (inv,)).fetchone() is not None
    finally:
        con.close()


# -- a worker killed under load ----------------------------------------------------------------


@pytest.mark.timeout(300)
def test_a_worker_killed_under_load_loses_and_repeats_nothing(tmp_path: Path) -> None:
    """Chains across workers run while one worker, then the other, is killed with SIGKILL; each
    request (with an idempotency key) is retried until answered. Then every chain answered right,
    every hop of it was acknowledged exactly once, and nothing is left open."""
    with _start(tmp_path) as setup:
        pairs = zip(keys_on(0, 4, "load"), keys_on(1, 4, "load"), strict=True)
        load = _Load(setup.server.ingress, [key for pair in pairs for key in pair])
        threads = [threading.Thread(target=load.client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        try:
            for victim in (1, 0):
                time.sleep(3.0)
                pids = setup.server.worker_pids()
                os.kill(pids[victim], signal.SIGKILL)
                _wait_restart(setup.server, pids)
            time.sleep(3.0)
        finally:
            load.stop.set()
            for t in threads:
                t.join(timeout=120)
        assert not load.failures, load.failures[:5]
        assert len(load.answered) >= 8, f"only {len(load.answered)} chains answered"
        for tag, (got, want) in load.answered.items():
            assert got == want, tag
        acks: dict[str, set[str]] = collections.defaultdict(set)
        for line in setup.lines("ack"):
            step_tag, token = line.split()
            acks[step_tag].add(token)
        for tag, (_, path) in load.answered.items():
            for key in path:
                assert len(acks[f"hop/{tag}/{key}"]) == 1, (tag, key, acks[f"hop/{tag}/{key}"])
        open_rows = setup.query("SELECT id, status FROM sys_invocation WHERE status != 'completed'")
        assert open_rows == []


class _Load:
    """Clients calling chains of four keys (alternating between the workers), each request with
    an idempotency key and retried after a transport error or a 5xx until answered. A chain
    visits keys in the order of ``keys`` (exclusive handlers calling each other in any order
    could deadlock, as they would on one server)."""

    def __init__(self, ingress: str, keys: list[str]) -> None:
        self.ingress = ingress
        self.keys = keys
        self.stop = threading.Event()
        self.answered: dict[str, tuple[Any, list[str]]] = {}
        self.failures: list[str] = []

    def client(self, n: int) -> None:
        keys = self.keys
        rng = random.Random(n)
        with httpx.Client(base_url=self.ingress, timeout=60.0) as http:
            i = 0
            while not self.stop.is_set():
                i += 1
                tag = f"t{n}-{i}"
                path = [keys[j] for j in sorted(rng.sample(range(len(keys)), 4))]
                self._until_answered(http, tag, path)

    def _until_answered(self, http: httpx.Client, tag: str, path: list[str]) -> None:
        for _ in range(300):
            try:
                resp = http.post(
                    f"/Account/{path[0]}/hop",
                    json={"tag": tag, "keys": path[1:]},
                    headers={"idempotency-key": tag},
                )
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if resp.status_code == 200:
                self.answered[tag] = (resp.json(), path)
                return
            if resp.status_code < 500:
                self.failures.append(f"{tag}: {resp.status_code} {resp.text[:200]}")
                return
            time.sleep(0.2)
        self.failures.append(f"{tag}: never answered")


def _wait_restart(server: PerdureServer, before: list[int]) -> None:
    wait_until(
        lambda: (
            len(server.worker_pids()) == len(before)
            and len(set(server.worker_pids()) - set(before)) == 1
        ),
        "the supervisor to restart the killed worker",
    )


# -- the data dir and the supervisor -----------------------------------------------------------


def _server(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "perdure.cli", "server", "--data-dir", str(data),
         "--ingress-bind", "127.0.0.1:0", "--admin-bind", "127.0.0.1:0", *args],
        check=False, cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_a_data_dir_keeps_its_worker_count(tmp_path: Path) -> None:
    with PerdureServer.start(tmp_path, args=["--workers", "2"], store="sqlite") as server:
        data = server.data_dir
        server.child.stop()
        assert server.child.proc.returncode == 0  # SIGTERM stopped every worker gracefully
        assert server.worker_pids() == []
    for args, expected in [
        (["--workers", "3"], "created with --workers 2; start it with --workers 2"),
        ([], "created with --workers 2; start it with --workers 2"),
        (["--workers", "2", "--partitions", "32"], "created with 16 partitions, not 32"),
    ]:
        done = _server(data, *args)
        assert done.returncode == 1, done.stderr
        assert expected in done.stderr, done.stderr
    single = tmp_path / "single"
    single.mkdir()
    with PerdureServer.start(single, store="sqlite") as server:
        server.child.stop()
    done = _server(single / "perdure-data", "--workers", "2")
    assert done.returncode == 1 and "created with --workers 1" in done.stderr, done.stderr


def test_the_internal_endpoints_refuse_anyone_but_the_workers(workers: Setup) -> None:
    delivery = b'[{"source":0,"seq":1,"target":1,"kind":"signal"}]'
    for method, path, body in [
        ("POST", "/internal/partitions/1/messages", delivery),
        ("PUT", "/internal/registry", b'{"version": 99999999999999999999}'),
        ("GET", "/internal/registry", b""),
        ("GET", "/internal/live", b""),
    ]:
        for secret in (None, "guessed"):
            headers = {"content-type": "application/json"}
            if secret is not None:
                headers["x-perdure-peer-secret"] = secret
            resp = workers.admin.request(method, path, content=body, headers=headers)
            assert resp.status_code == 403, (method, path, resp.text)
    assert [s["name"] for s in workers.admin.get("/services").json()["services"]] == ["Account"]


def test_a_forwarded_answer_is_the_owners_answer(workers: Setup) -> None:
    """Status, headers and body as the owner wrote them, through either worker (fresh
    connections land on both)."""
    for p in range(PARTITIONS):
        unknown = str(InvocationId((p << 64) // PARTITIONS, 7))
        answers = set()
        for _ in range(4):
            resp = workers.ingress.get(f"/restate/invocation/{unknown}/attach")
            answers.add((resp.status_code, resp.headers.get("x-restate-id"),
                         resp.headers.get("x-restate-error-source"), resp.content))  # fmt: skip
        body = b'{"code":404,"message":"not found","source":"invocation"}'
        assert answers == {(404, unknown, "invocation", body)}


def test_service_settings_and_state_edits_reach_the_right_workers(workers: Setup) -> None:
    keys = [keys_on(0, 1, "edit")[0], keys_on(1, 1, "edit")[0]]
    resp = workers.admin.patch("/services/Account", json={"public": False})
    assert resp.status_code == 200, resp.text
    try:
        for key in keys * 2:  # every worker refuses a call now
            resp = workers.ingress.post(f"/Account/{key}/deposit", json=1)
            assert resp.status_code == 400 and "not public" in resp.text, resp.text
    finally:
        assert workers.admin.patch("/services/Account", json={"public": True}).status_code == 200
    for key in keys * 2:
        resp = workers.ingress.post(f"/Account/{key}/deposit", json=1)
        assert resp.status_code == 200, resp.text
    for n, key in enumerate(keys):  # a state edit goes to the worker owning the key
        resp = workers.admin.post(
            "/services/Account/state",
            json={"object_key": key, "new_state": {"total": list(str(100 + n).encode())}},
        )
        assert resp.status_code == 202, resp.text
    rows = workers.query("SELECT service_key, value_utf8 FROM state WHERE key = 'total'")
    assert {r["service_key"]: r["value_utf8"] for r in rows if r["service_key"] in keys} == {
        keys[0]: "100", keys[1]: "101",
    }  # fmt: skip
    for n, key in enumerate(keys):
        assert workers.ingress.post(f"/Account/{key}/deposit", json=1).json() == 101 + n


def test_workers_die_with_their_supervisor_and_the_server_starts_again(tmp_path: Path) -> None:
    with PerdureServer.start(tmp_path, args=["--workers", "2"], store="sqlite") as server:
        pids = server.worker_pids()
        assert len(pids) == 2
        os.kill(server.child.proc.pid, signal.SIGKILL)  # the supervisor alone
        server.child.proc.wait(timeout=10)
        wait_until(lambda: not any(Path(f"/proc/{p}").exists() for p in pids),
                   "the workers to die with their supervisor")  # fmt: skip
        server.restart()  # the stores are free again
        assert len(server.worker_pids()) == 2
        assert server.http.get(server.admin + "/deployments").status_code == 200
