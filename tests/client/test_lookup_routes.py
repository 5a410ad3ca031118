"""The ingress routes that find an existing invocation, on both servers, over raw HTTP:
``POST /restate/attach|output|lookup`` with a JSON target, and how keys are percent-decoded in the
``/restate/invocation/...`` and ``/restate/workflow/...`` paths. The client relies on these for
idempotency keys a path cannot carry; other clients (Go, TypeScript) use the paths."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.client.conftest import Deployment

pytestmark = pytest.mark.interop


@pytest.fixture
def http(deployed: Deployment) -> Iterator[httpx.Client]:
    # A fresh connection per request: the official server may close one right after an error
    # answer, and a request racing that close fails with a transport error.
    fresh = httpx.Limits(max_keepalive_connections=0)
    with httpx.Client(base_url=deployed.ingress, timeout=60.0, limits=fresh) as client:
        yield client


def fresh(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def error_of(resp: httpx.Response) -> tuple[int, str, Any]:
    """Status, error source header and body code of an error answer."""
    assert resp.headers["content-type"] == "application/json"
    return resp.status_code, resp.headers["x-restate-error-source"], resp.json()["code"]


def test_lookup_computes_the_id_calls_and_sends_got(http: httpx.Client) -> None:
    key, ikey = fresh("k/1 %"), fresh("50% off/now?")
    call = http.post(
        f"/Counter/{quote(key, safe='')}/add",
        json=2,
        headers={"idempotency-key": ikey},
    )
    assert call.status_code == 200, call.text
    looked = http.post(
        "/restate/lookup",
        json={
            "target": "idempotentInvocation",
            "service": "Counter",
            "key": key,
            "handler": "add",
            "idempotencyKey": ikey,
        },
    )
    assert looked.status_code == 200
    assert looked.headers["content-type"] == "application/json"
    assert looked.json() == {"invocationId": call.headers["x-restate-id"]}

    wf = fresh("wf key")
    sent = http.post(f"/Signup/{quote(wf)}/run/send", json="Ann")
    assert sent.status_code == 202
    looked = http.post(
        "/restate/lookup", json={"target": "workflow", "workflowName": "Signup", "workflowKey": wf}
    )
    assert looked.json() == {"invocationId": sent.json()["invocationId"]}

    # an id is echoed; nothing is checked: an unknown workflow still has an id
    echo = http.post(
        "/restate/lookup",
        json={"target": "invocation", "invocationId": sent.json()["invocationId"]},
    )
    assert echo.json() == looked.json()
    unknown = http.post(
        "/restate/lookup",
        json={"target": "workflow", "workflowName": "NoSuchWorkflow", "workflowKey": "k"},
    )
    assert unknown.status_code == 200 and unknown.json()["invocationId"].startswith("inv_1")


def test_attach_and_output_by_body_before_and_after_completion(http: httpx.Client) -> None:
    wf = fresh("wf")
    target = {"target": "workflow", "workflowName": "Signup", "workflowKey": wf}
    assert error_of(http.post("/restate/output", json=target)) == (404, "ingress", 404)
    attach_never = http.post("/restate/attach", json=target)
    assert error_of(attach_never) == (404, "invocation", 404)
    assert attach_never.headers["x-restate-id"].startswith("inv_1")

    sent = http.post(f"/Signup/{wf}/run/send", json="Bo")
    assert sent.status_code == 202
    assert error_of(http.post("/restate/output", json=target)) == (470, "ingress", 470)

    attached: dict[str, httpx.Response] = {}
    waiter = threading.Thread(
        target=lambda: attached.update(r=http.post("/restate/attach", json=target))
    )
    waiter.start()
    time.sleep(0.5)
    assert waiter.is_alive()  # attach waits for the run to finish
    assert http.post(f"/Signup/{wf}/approve", json="Cy").status_code == 200
    waiter.join(60)
    live = attached["r"]
    assert live.status_code == 200 and live.json() == "Bo approved by Cy"
    assert live.headers["x-restate-id"] == sent.json()["invocationId"]

    done = http.post("/restate/output", json=target)
    assert done.status_code == 200 and done.json() == "Bo approved by Cy"
    assert done.headers["content-type"] == "application/json"
    assert done.headers["x-restate-id"] == sent.json()["invocationId"]
    assert "idempotency-expires" in done.headers  # a stored result says when it goes away
    by_id = {"target": "invocation", "invocationId": sent.json()["invocationId"]}
    assert http.post("/restate/attach", json=by_id).json() == "Bo approved by Cy"


def test_a_failed_invocation_answers_with_its_failure(http: httpx.Client) -> None:
    ikey = fresh("fail")
    failed = http.post("/Greeter/fail", json=418, headers={"idempotency-key": ikey})
    target = {"target": "idempotentInvocation", "service": "Greeter", "handler": "fail",
              "idempotencyKey": ikey}  # fmt: skip
    for what in ("attach", "output"):
        again = http.post(f"/restate/{what}", json=target)
        assert error_of(again) == (418, "invocation", 418)
        assert again.json()["metadata"] == {"reason": "asked"}
        assert again.headers["x-restate-id"] == failed.headers["x-restate-id"]


def test_bad_requests(http: httpx.Client, request: pytest.FixtureRequest) -> None:
    workflow = {"target": "workflow", "workflowName": "Signup", "workflowKey": "k"}
    # The official server answers an unreadable body with 500 and a stack trace; perdure with
    # 400 and the same message (a client mistake, not to be retried).
    unreadable = 500 if request.node.callspec.params["server"] == "official" else 400
    for path in ("/restate/lookup", "/restate/attach", "/restate/output"):
        assert error_of(http.get(path)) == (405, "ingress", 405)
        assert error_of(http.put(path, json=workflow)) == (405, "ingress", 405)
        nope = http.post(path, content=b"{nope")
        assert error_of(nope) == (unreadable, "ingress", unreadable)
        assert nope.json()["message"].startswith("cannot read body: ")
        bogus = http.post(path, json={"target": "bogus"})
        assert error_of(bogus) == (unreadable, "ingress", unreadable)
        assert "unknown variant `bogus`" in bogus.json()["message"]
        missing = http.post(path, json={"target": "workflow", "workflowName": "Signup"})
        assert "workflowKey" in missing.json()["message"]
        bad_id = http.post(path, json={"target": "invocation", "invocationId": "inv_bad"})
        assert error_of(bad_id) == (400, "ingress", 400)
    assert error_of(http.post("/restate/lookup/extra", json=workflow)) == (400, "ingress", 400)
    inv = http.post("/Greeter/greet/send", json="x").json()["invocationId"]
    assert error_of(http.post(f"/restate/attach/{inv}")) == (405, "ingress", 405)
    assert error_of(http.post(f"/restate/invocation/{inv}/output")) == (405, "ingress", 405)
    assert error_of(http.post("/restate/workflow/Signup/k/output")) == (405, "ingress", 405)
    assert error_of(http.get("/restate/workflow/Signup/output")) == (400, "ingress", 400)
    assert error_of(http.get("/restate/invocation/Counter/k/add/output")) == (400, "ingress", 400)
    assert error_of(http.get("/restate/invocation/Counter/%ff/add/k/output")) == (
        400, "ingress", 400,
    )  # fmt: skip
    unknown = http.get("/restate/invocation/NoSuchService/h/k/output")
    assert error_of(unknown) == (404, "ingress", 404)
    assert "NoSuchService" in unknown.json()["message"]


def test_path_keys_object_and_workflow_keys_are_decoded_idempotency_keys_are_not(
    http: httpx.Client,
) -> None:
    key, ikey = fresh("k/1"), fresh("p%41")  # "%41" decodes to "A"
    encoded_key = key.replace("/", "%2F")
    call = http.post(f"/Counter/{encoded_key}/add", json=1, headers={"idempotency-key": ikey})
    assert call.status_code == 200
    by_path = http.get(f"/restate/invocation/Counter/{encoded_key}/add/{ikey}/output")
    assert by_path.status_code == 200 and by_path.json() == 1
    assert by_path.headers["x-restate-id"] == call.headers["x-restate-id"]
    decoded_ikey = ikey.replace("%41", "A")
    not_decoded = http.get(f"/restate/invocation/Counter/{encoded_key}/add/{decoded_ikey}/output")
    assert error_of(not_decoded) == (404, "ingress", 404)
    # so an idempotency key with a space or '/' cannot be named in a path at all
    spaced = fresh("x y")
    http.post("/Greeter/greet", json="A", headers={"idempotency-key": spaced})
    escaped = http.get(f"/restate/invocation/Greeter/greet/{spaced.replace(' ', '%20')}/output")
    assert error_of(escaped) == (404, "ingress", 404)

    wf = fresh("a b/c")
    sent = http.post(f"/Signup/{quote(wf, safe='')}/run/send", json="D")
    assert sent.status_code == 202
    output = http.get(f"/restate/workflow/Signup/{quote(wf, safe='')}/output")
    assert error_of(output) == (470, "ingress", 470)
