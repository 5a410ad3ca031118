"""The cluster's flags and their errors, and ``GET /cluster`` on a server that is no cluster
node (no processes, no PostgreSQL needed)."""

from __future__ import annotations

import socket

import httpx
import pytest

from perdure.cli.main import main
from perdure.server.cluster.wiring import ClusterSettings, settings_from
from perdure.server.runtime import Runtime


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--node-name", "n1"], "a cluster runs on PostgreSQL; add --store"),
        (["--advertise", "10.0.0.1"], "--advertise needs --node-name"),
        (["--node-name", "bad name"], "printable ASCII without spaces"),
        (
            ["--node-name", "n1", "--store", "postgresql://u@127.0.0.1:1/db", "--workers", "2"],
            "run one node per process",
        ),
    ],
)
def test_bad_cluster_flags_are_usage_errors(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["server", *args]) == 2
    assert message in capsys.readouterr().err


def test_the_node_name_and_address_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("PERDURE_NODE_NAME", "n7")
    monkeypatch.setenv("PERDURE_ADVERTISE", "node7.internal")
    settings = settings_from(None, None)
    assert settings is not None and settings.node_name == "n7"
    address = settings.address("0.0.0.0:8080", "127.0.0.1:9070")
    assert (address.ingress_url, address.admin_url) == (
        "http://node7.internal:8080",
        "http://node7.internal:9070",
    )
    monkeypatch.delenv("PERDURE_NODE_NAME")
    monkeypatch.delenv("PERDURE_ADVERTISE")
    assert settings_from(None, None) is None


def test_without_advertise_the_bind_host_or_the_machine_name_is_advertised() -> None:
    address = ClusterSettings("n1").address("0.0.0.0:8080", "10.1.2.3:9070")
    assert address.ingress_url == f"http://{socket.gethostname()}:8080"
    assert address.admin_url == "http://10.1.2.3:9070"


@pytest.mark.asyncio
async def test_get_cluster_on_a_single_server_says_it_is_no_cluster_node() -> None:
    runtime = Runtime(":memory:", synchronous="OFF")
    try:
        transport = httpx.ASGITransport(app=runtime.admin)
        async with httpx.AsyncClient(transport=transport, base_url="http://admin") as admin:
            resp = await admin.get("/cluster")
        assert resp.status_code == 404
        assert "not a cluster node" in resp.json()["message"]
    finally:
        runtime.engine.close()
