"""Each example, served by ``perdure.serve`` in its own process behind the official server and
behind perdure's server, does what its docstring promises; SIGTERM then stops it cleanly (exit
status 0)."""

from __future__ import annotations

import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.scenarios.support import eventually, unique
from tests.support.official import REPO, RestateServer
from tests.support.perdure_server import PerdureServer
from tests.support.processes import Child, free_port, wait_tcp

pytestmark = pytest.mark.interop
Server = RestateServer | PerdureServer


@pytest.fixture(scope="module", params=["official", "perdure"])
def restate(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """The server the examples register with: the official one, then perdure's."""
    tmp = tmp_path_factory.mktemp(f"examples-{request.param}")
    starter = RestateServer.start if request.param == "official" else PerdureServer.start
    with starter(tmp) as server:
        yield server


@contextmanager
def example(restate: Server, name: str, tmp: Path) -> Iterator[None]:
    port = free_port()
    child = Child(
        name,
        [sys.executable, str(REPO / "examples" / f"{name}.py")],
        tmp / f"{name}.log",
        cwd=REPO,
        env={"PORT": str(port)},
    )
    try:
        wait_tcp(port, name, child)
        restate.register(f"http://127.0.0.1:{port}")
        yield
        child.proc.send_signal(signal.SIGTERM)
        assert child.proc.wait(timeout=40) == 0, child.log_tail()
    finally:
        child.stop()


def post(restate: Server, path: str, body: Any = None) -> httpx.Response:
    return httpx.post(f"{restate.ingress}/{path}", json=body, timeout=60)


def get_json(restate: Server, path: str) -> Any:
    resp = post(restate, path)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_order_workflow_with_compensation(restate: Server, tmp_path: Path) -> None:
    with example(restate, "order_workflow", tmp_path):
        ok_key, bad_key = unique("o"), unique("o")
        shipped = post(restate, f"OrderProcess/{ok_key}/run", {"item": "book", "card": "ok"})
        assert shipped.json() == f"tracking-{ok_key}"
        declined = post(
            restate, f"OrderProcess/{bad_key}/run", {"item": "book", "card": "declined"}
        )
        assert declined.status_code == 402
        assert get_json(restate, f"OrderProcess/{bad_key}/status") == "compensated"
        assert get_json(restate, f"OrderProcess/{ok_key}/status") == "shipped"


def test_shopping_cart_checkout(restate: Server, tmp_path: Path) -> None:
    with example(restate, "shopping_cart", tmp_path):
        user = unique("ann")
        assert post(restate, f"Cart/{user}/checkout").status_code == 400
        post(restate, f"Cart/{user}/add", {"sku": "tea", "price": 4})
        assert post(restate, f"Cart/{user}/add", {"sku": "cup", "price": 6}).json() == 2
        receipt = get_json(restate, f"Cart/{user}/checkout")
        assert receipt == {"user": user, "total": 10, "items": ["tea", "cup"]}
        assert get_json(restate, f"Cart/{user}/contents") == []


def test_payment_with_idempotency(restate: Server, tmp_path: Path) -> None:
    with example(restate, "payment_idempotency", tmp_path):
        purchase = {"order": unique("o"), "amount": 30}
        first, retry = post(restate, "Checkout/buy", purchase).json()
        assert first == retry and first.endswith(": 30")
        assert get_json(restate, "Ledger/main/charges") == 1


def test_reminder_with_delayed_send(restate: Server, tmp_path: Path) -> None:
    with example(restate, "reminder", tmp_path):
        user = unique("ann")
        started = time.monotonic()
        resp = post(restate, "Reminders/schedule", {"user": user, "text": "tea", "seconds": 2})
        assert resp.json().startswith("inv_1")
        assert time.monotonic() - started < 1.5  # scheduling does not wait for the delay
        assert get_json(restate, f"Inbox/{user}/messages") == []
        eventually(lambda: get_json(restate, f"Inbox/{user}/messages"), "reminder delivered")
        assert time.monotonic() - started >= 1.9
        assert get_json(restate, f"Inbox/{user}/messages") == ["reminder: tea"]


def test_fan_out_to_objects(restate: Server, tmp_path: Path) -> None:
    with example(restate, "fan_out", tmp_path):
        sensors = [unique("s") for _ in range(5)]
        first = post(restate, "Broadcast/send", {"sensors": sensors, "reading": 7}).json()
        assert first == dict.fromkeys(sensors, 7)
        second = post(restate, "Broadcast/send", {"sensors": sensors[:2], "reading": 1}).json()
        assert second == dict.fromkeys(sensors[:2], 8)
