"""``POST /services/{service}/state`` on perdure's server: replaces one key's state through the
engine, checks Restate's version hash, and waits behind the key's lock like a call."""

from __future__ import annotations

import httpx
import pytest

from perdure.server.engine.state_edits import state_version
from tests.cli.conftest import Deployed

pytestmark = pytest.mark.interop


def edit(d: Deployed, service: str, body: object) -> httpx.Response:
    return httpx.post(f"{d.admin}/v4/services/{service}/state", json=body, timeout=30.0)


def state_of(d: Deployed, key: str) -> dict[str, str]:
    rows = d.query(
        "SELECT key, value_utf8 FROM state "
        f"WHERE service_name = 'Counter' AND service_key = '{key}'"
    )
    return {r["key"]: r["value_utf8"] for r in rows}


def test_the_version_hash_is_restates() -> None:
    assert state_version([(b"name", b"bob")]) == "tDqA04Lj3_qJ-PgNPTecXDGZgpwy6jm2Ni2BYqJIthM"
    pairs = [(b"b", b"2"), (b"a", b"1")]
    assert state_version(pairs) == state_version(sorted(pairs))


def test_an_edit_replaces_the_state_and_a_handler_reads_it(perdure: Deployed) -> None:
    new_state = {"total": list(b"7"), "extra": list(b'"x"')}
    resp = edit(perdure, "Counter", {"object_key": "gil", "new_state": new_state})
    assert resp.status_code == 202
    assert state_of(perdure, "gil") == {"total": "7", "extra": '"x"'}
    assert httpx.post(f"{perdure.ingress}/Counter/gil/add", json=1, timeout=30.0).json() == 8
    assert edit(perdure, "Counter", {"object_key": "gil", "new_state": {}}).status_code == 202
    assert state_of(perdure, "gil") == {}


def test_a_stale_version_is_refused_and_changes_nothing(perdure: Deployed) -> None:
    assert edit(perdure, "Counter", {"object_key": "hal", "new_state": {"total": list(b"1")}}
                ).status_code == 202  # fmt: skip
    stale = state_version([(b"total", b"0")])
    body = {"object_key": "hal", "version": stale, "new_state": {"total": list(b"2")}}
    resp = edit(perdure, "Counter", body)
    assert resp.status_code == 409 and "changed since version" in resp.json()["message"]
    assert state_of(perdure, "hal") == {"total": "1"}
    current = state_version([(b"total", b"1")])
    body = {"object_key": "hal", "version": current, "new_state": {"total": list(b"3")}}
    resp = edit(perdure, "Counter", body)
    assert resp.status_code == 202
    assert state_of(perdure, "hal") == {"total": "3"}


def test_bad_targets_and_bodies(perdure: Deployed) -> None:
    unkeyed = edit(perdure, "Greeter", {"object_key": "x", "new_state": {}})
    assert unkeyed.status_code == 400 and "service type Service" in unkeyed.json()["message"]
    assert edit(perdure, "Nope", {"object_key": "x", "new_state": {}}).status_code == 404
    no_key = edit(perdure, "Counter", {"new_state": {}})
    assert no_key.status_code == 400 and "object_key" in no_key.json()["message"]
    bad_bytes = edit(perdure, "Counter", {"object_key": "x", "new_state": {"k": [300]}})
    assert bad_bytes.status_code == 400 and "array of bytes" in bad_bytes.json()["message"]


def test_an_edit_waits_behind_the_keys_lock(perdure: Deployed) -> None:
    holder = perdure.send("Counter/ivy/wait")
    perdure.wait_status(holder, "running")
    assert edit(perdure, "Counter", {"object_key": "ivy", "new_state": {"total": list(b"40")}}
                ).status_code == 202  # fmt: skip
    assert state_of(perdure, "ivy") == {}  # the running handler's state is left alone
    after = perdure.send("Counter/ivy/add", 2)  # queued behind the edit
    assert httpx.patch(f"{perdure.admin}/invocations/{holder}/kill", timeout=30.0
                       ).status_code == 200  # fmt: skip
    perdure.wait_status(after, "completed")
    output = httpx.get(f"{perdure.ingress}/restate/invocation/{after}/output", timeout=30.0)
    assert output.json() == 42
