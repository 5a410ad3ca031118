"""Three real nodes on one real PostgreSQL, serving the chaos deployment (a real perdure-SDK
process): the leases spread evenly, every node answers for every partition, idempotency keys hold
across nodes, the admin API shows the whole cluster, a graceful stop hands the partitions over
at once and a node that joins takes its share back."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.chaos.cluster import Deployment
from tests.cluster.nodes import Cluster, cluster
from tests.support import postgres
from tests.support.processes import free_port

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def three(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One cluster for the module (starting three nodes costs ~8 s); the test that stops a node
    runs last and leaves all three running."""
    tmp = tmp_path_factory.mktemp("cluster")
    d = Deployment(free_port(), tmp / "ledger.jsonl", tmp)
    d.start()
    try:
        with cluster(postgres.shared_server().create_database("cluster"), tmp) as c:
            c.register(f"http://127.0.0.1:{d.port}")
            yield c
    finally:
        d.stop()


def test_requests_through_any_node_reach_every_partition(three: Cluster) -> None:
    owners = three.owners()
    assert sorted(set(owners.values())) == ["a", "b", "c"]
    assert sorted(sum(o == n for o in owners.values()) for n in "abc") == [5, 5, 6]
    with httpx.Client(timeout=30.0) as http:
        # object keys land on partitions all over the cluster; each node forwards or serves
        for i in range(30):
            node = three.nodes[i % 3]
            resp = http.post(f"{node.ingress}/Counter/k{i}/add", json={"tag": f"t{i}", "delta": i})
            assert resp.status_code == 200, resp.text
            assert resp.json() == i
        for i in range(30):
            node = three.nodes[(i + 1) % 3]
            resp = http.post(f"{node.ingress}/Counter/k{i}/get", json=None)
            assert resp.json() == {"total": i, "count": 1}
        # every node ran invocations of its own partitions
        for node in three.nodes:
            local = http.get(
                f"{node.admin}/invocations", headers={"x-perdure-forwarded": "test"}
            ).json()["invocations"]
            assert local, f"node {node.name} ran nothing"


def test_an_idempotency_key_holds_across_nodes(three: Cluster) -> None:
    with httpx.Client(timeout=30.0) as http:
        answers = [
            http.post(
                f"{node.ingress}/Work/process",
                json={"tag": "idem", "steps": 1},
                headers={"idempotency-key": "same-key"},
            )
            for node in three.nodes
        ]
    assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
    ids = {a.headers["x-restate-id"] for a in answers}
    assert len(ids) == 1
    assert len({a.text for a in answers}) == 1


def test_the_admin_api_of_any_node_shows_the_whole_cluster(three: Cluster) -> None:
    with httpx.Client(timeout=30.0) as http:
        for i in range(12):
            resp = http.post(f"{three.nodes[0].ingress}/Counter/list{i}/add",
                             json={"tag": f"l{i}", "delta": 1})  # fmt: skip
            assert resp.status_code == 200
        for node in three.nodes:
            status = three.status(node)
            assert [n["name"] for n in status["nodes"]] == ["a", "b", "c"]
            assert all(n["live"] for n in status["nodes"])
            leases = status["leases"]
            assert len(leases) == 16 and all(lease["epoch"] >= 1 for lease in leases)
            assert all(lease["lease_age_seconds"] < 5 for lease in leases)
            listed = http.get(f"{node.admin}/invocations").json()["invocations"]
            assert sum(r["target"].startswith("Counter/list") for r in listed) == 12
            rows = http.post(
                f"{node.admin}/query",
                json={"query": "SELECT count(*) AS n FROM sys_invocation "
                               "WHERE target_service_key LIKE 'list%'"},
                headers={"accept": "application/json"},
            ).json()["rows"]  # fmt: skip
            assert rows == [{"n": 12}]


def test_perdure_cluster_status_prints_nodes_owners_and_epochs(three: Cluster) -> None:
    from perdure.cli.main import main

    out = io.StringIO()
    assert main(["cluster", "status", "--admin", three.nodes[1].admin], out=out) == 0
    text = out.getvalue()
    assert "3 live node(s) of 3, 16 partitions" in text
    for name in ("a", "b", "c"):
        assert f"\n{name}" in text or f"{name}\t" in text
    out = io.StringIO()
    assert main(["cluster", "status", "--admin", three.nodes[2].admin, "--json"], out=out) == 0
    status = json.loads(out.getvalue())
    assert {lease["owner"] for lease in status["leases"]} == {"a", "b", "c"}
    assert status["node"] == "c"


def test_a_registry_change_through_any_node_is_seen_by_every_node(three: Cluster) -> None:
    with httpx.Client(timeout=30.0) as http:
        resp = http.patch(
            f"{three.node('c').admin}/services/Counter", json={"idempotency_retention": "2h"}
        )
        assert resp.status_code == 200, resp.text
        for node in three.nodes:  # at once: the change is pushed before it is answered
            got = http.get(f"{node.admin}/services/Counter").json()
            assert got["idempotency_retention"] == "2h", (node.name, got)


def test_a_graceful_stop_hands_over_at_once_and_a_rejoin_rebalances(three: Cluster) -> None:
    before = three.owners()
    c = three.node("c")
    began = time.monotonic()
    c.stop()  # SIGTERM: the leases are given back, no TTL to wait for
    owners = three.wait_settled(["a", "b"], timeout=10)
    assert time.monotonic() - began < 5
    moved = [p for p, o in before.items() if o == "c"]
    assert all(owners[p] in ("a", "b") for p in moved)
    epochs = {lease["partition"]: lease["epoch"] for lease in three.status()["leases"]}
    assert all(epochs[p] >= 2 for p in moved)  # a new tenure, fenced apart from the old one
    c.start()
    three.wait_settled(["a", "b", "c"], timeout=20)
    with httpx.Client(timeout=30.0) as http:
        for i in range(9):
            node = three.nodes[i % 3]
            resp = http.post(f"{node.ingress}/Counter/r{i}/add", json={"tag": f"r{i}", "delta": 2})
            assert resp.status_code == 200 and resp.json() == 2
