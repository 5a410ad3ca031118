"""Services written with the official Python SDK, run on perdure's server and on the official
server with the same observable results (real processes: the server and a hypercorn deployment
over h2c, bidi streaming)."""

from __future__ import annotations

import concurrent.futures
import time
import uuid

import pytest

from tests.server.conftest import Deployed
from tests.support.perdure_server import wait_until

pytestmark = pytest.mark.interop


def key() -> str:
    return uuid.uuid4().hex[:12]


def test_greeter_call_returns_the_output_and_the_invocation_id(server: Deployed) -> None:
    resp = server.client.post("/Greeter/greet", json="Ann")
    assert resp.status_code == 200
    assert resp.json() == "Hello Ann"
    assert resp.headers["content-type"] == "application/json"
    assert (
        resp.headers["x-restate-id"].startswith("inv_1") and len(resp.headers["x-restate-id"]) == 38
    )


def test_object_state_persists_across_calls(server: Deployed) -> None:
    k = key()
    assert server.client.post(f"/Counter/{k}/add", json=2).json() == 2
    assert server.client.post(f"/Counter/{k}/add", json=3).json() == 5
    assert server.client.post(f"/Counter/{k}/get").json() == 5
    assert server.client.post(f"/Counter/{key()}/get").json() == 0


def test_call_between_services(server: Deployed) -> None:
    assert server.client.post("/Caller/call_greeter", json="Bob").json() == "Hello Bob!"


def test_terminal_errors_reach_the_ingress_and_callers(server: Deployed) -> None:
    resp = server.client.post("/Greeter/fail", json="boom")
    assert resp.status_code == 422
    assert resp.headers["x-restate-error-source"] == "invocation"
    assert resp.json() == {"code": 422, "message": "boom", "source": "invocation"}
    assert server.client.post("/Caller/call_failing", json="bad").json() == "caught 422: bad"


def test_one_way_send_from_a_handler(server: Deployed) -> None:
    k = key()
    assert server.client.post("/Caller/send_add", json=k).json() == "sent"
    wait_until(lambda: server.client.post(f"/Counter/{k}/get").json() == 1, "the send to run")


def test_delayed_send_from_a_handler_lets_the_caller_finish_first(server: Deployed) -> None:
    k = key()
    started = time.monotonic()
    assert server.client.post("/Caller/send_add_later", json=k).json() == "scheduled"
    assert server.client.post(f"/Counter/{k}/get").json() == 0
    wait_until(lambda: server.client.post(f"/Counter/{k}/get").json() == 10, "the delayed send")
    assert time.monotonic() - started >= 0.5


def test_ingress_send_and_delayed_send_answer_202_then_run(server: Deployed) -> None:
    k = key()
    resp = server.client.post(f"/Counter/{k}/add/send", json=4)
    assert resp.status_code == 202
    body = resp.json()
    assert body["status"] == "Accepted" and body["invocationId"].startswith("inv_1")
    assert "executionTime" not in body
    attached = server.client.get(f"/restate/invocation/{body['invocationId']}/attach")
    assert attached.status_code == 200 and attached.json() == 4

    delayed = server.client.post(f"/Counter/{k}/add/send?delay=300ms", json=1)
    assert delayed.status_code == 202 and "executionTime" in delayed.json()
    inv = delayed.json()["invocationId"]
    assert server.client.get(f"/restate/invocation/{inv}/output").status_code == 470
    assert server.client.get(f"/restate/invocation/{inv}/attach").json() == 5


def test_sleep_and_hundreds_of_concurrent_sleeps(server: Deployed) -> None:
    started = time.monotonic()
    assert server.client.post("/Sleeper/sleep", json=300).json() == "slept"
    assert time.monotonic() - started >= 0.3
    ids = [
        server.client.post("/Sleeper/sleep/send", json=1000).json()["invocationId"]
        for _ in range(200)
    ]
    for inv in ids:
        resp = server.client.get(f"/restate/invocation/{inv}/attach", timeout=60)
        assert resp.json() == "slept"
    slept = server.effect_lines("slept")
    assert all(slept.count(inv) == 1 for inv in ids)


def test_run_steps_execute_once_and_their_results_are_journaled(server: Deployed) -> None:
    tag = key()
    resp = server.client.post("/Runner/three_steps", json=tag)
    assert resp.json() == ["step0", "step1", "step2"]
    assert [s for s in server.effect_lines("steps") if s.startswith(tag)] == [
        f"{tag}:step0",
        f"{tag}:step1",
        f"{tag}:step2",
    ]


def test_failing_run_is_retried_until_it_succeeds(server: Deployed) -> None:
    tag = key()
    resp = server.client.post("/Runner/flaky", json=tag, timeout=60)
    assert resp.json() == "ok after 3"


def test_awakeable_resolved_through_the_ingress(server: Deployed) -> None:
    tag = key()
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(server.client.post, "/Awaker/wait", json=tag)
        awakeable_id = wait_until(lambda: server.effect_lines(f"awakeable-{tag}"), "the id")[0]
        assert awakeable_id.startswith("sign_1")
        resp = server.client.post(f"/restate/awakeables/{awakeable_id}/resolve", json="hi")
        assert resp.status_code == 202 and resp.content == b""
        assert pending.result(timeout=30).json() == "woken with hi"
    bad = server.client.post("/restate/awakeables/nope/resolve", json="x")
    assert bad.status_code == 400 and bad.json()["source"] == "ingress"


def test_workflow_runs_once_per_key_and_completes_through_its_promise(server: Deployed) -> None:
    k = key()
    first = server.client.post(f"/Signup/{k}/run/send", json="a@b.c")
    assert first.status_code == 202 and first.json()["status"] == "Accepted"
    again = server.client.post(f"/Signup/{k}/run/send", json="a@b.c")
    assert again.json() == {"invocationId": first.json()["invocationId"],
                            "status": "PreviouslyAccepted"}  # fmt: skip
    conflict = server.client.post(f"/Signup/{k}/run", json="a@b.c")
    assert conflict.status_code == 409
    assert conflict.json()["message"] == "the workflow method was already invoked"
    assert server.client.get(f"/restate/workflow/Signup/{k}/output").status_code == 470
    wait_until(lambda: server.client.post(f"/Signup/{k}/email").json() == "a@b.c", "state")
    assert server.client.post(f"/Signup/{k}/click", json="s3cret").json() == "clicked"
    attached = server.client.get(f"/restate/workflow/Signup/{k}/attach")
    assert attached.json() == "verified a@b.c with s3cret"
    output = server.client.get(f"/restate/workflow/Signup/{k}/output")
    assert output.json() == "verified a@b.c with s3cret"
    assert "idempotency-expires" in output.headers


def test_idempotency_key_at_the_ingress_and_from_handlers(server: Deployed) -> None:
    k = key()
    headers = {"idempotency-key": "abc"}
    first = server.client.post(f"/Counter/{k}/add", json=7, headers=headers)
    second = server.client.post(f"/Counter/{k}/add", json=100, headers=headers)
    assert first.json() == second.json() == 7
    assert first.headers["x-restate-id"] == second.headers["x-restate-id"]
    assert "idempotency-expires" in second.headers
    assert (
        server.client.post(f"/Counter/{k}/add", json=1, headers={"idempotency-key": "x"}).json()
        == 8
    )
    by_key = server.client.get(f"/restate/invocation/Counter/{k}/add/abc/output")
    assert by_key.json() == 7
    sent = server.client.post(f"/Counter/{k}/add/send", json=1, headers=headers)
    assert sent.json()["status"] == "PreviouslyAccepted"

    k2 = key()
    assert server.client.post("/Caller/idempotent_add", json=k2).json() == 5 * 1000 + 5
    assert server.client.post(f"/Counter/{k2}/get").json() == 5


def test_calls_to_one_object_key_run_serially_in_arrival_order(server: Deployed) -> None:
    k = key()
    items = [f"i{n}" for n in range(10)]
    for item in items:
        assert server.client.post(f"/Counter/{k}/append/send", json=item).status_code == 202
    wait_until(lambda: server.client.post(f"/Counter/{k}/items").json() == items, "all items",
               timeout=60)  # fmt: skip


def test_cancel_a_blocked_invocation(server: Deployed) -> None:
    tag = key()
    inv = server.client.post("/Awaker/wait/send", json=tag).json()["invocationId"]
    wait_until(lambda: server.effect_lines(f"awakeable-{tag}"), "the handler to block")
    admin = server.admin
    assert admin.patch(f"/invocations/{inv}/cancel").status_code == 202
    result = server.client.get(f"/restate/invocation/{inv}/attach")
    assert result.status_code == 409
    assert admin.patch(f"/invocations/{inv}/cancel").status_code == 409


def test_kill_ends_an_invocation_without_user_code(server: Deployed) -> None:
    tag = key()
    inv = server.client.post("/Awaker/wait/send", json=tag).json()["invocationId"]
    wait_until(lambda: server.effect_lines(f"awakeable-{tag}"), "the handler to block")
    admin = server.admin
    assert admin.patch(f"/invocations/{inv}/kill").status_code == 200
    result = server.client.get(f"/restate/invocation/{inv}/attach")
    assert result.status_code == 409 and result.json()["message"] == "killed"
    assert admin.patch(f"/invocations/{inv}/purge").status_code == 200
    assert server.client.get(f"/restate/invocation/{inv}/output").status_code == 404


def test_ingress_errors_have_the_official_shape(server: Deployed) -> None:
    missing = server.client.post("/Nope/greet", json="x")
    assert missing.status_code == 404
    assert missing.headers["x-restate-error-source"] == "ingress"
    assert missing.json()["code"] == 404 and missing.json()["source"] == "ingress"
    assert server.client.post("/Greeter/nope", json="x").status_code == 404
    delayed_call = server.client.post("/Greeter/greet?delay=1s", json="x")
    assert delayed_call.status_code == 400
    assert server.client.post("/Greeter/greet/send?delay=soon", json="x").status_code == 400
    assert server.client.get("/restate/invocation/bogus/output").status_code == 400
    unknown = "inv_1" + "0" * 33
    assert server.client.get(f"/restate/invocation/{unknown}/output").status_code == 404
    assert server.client.post("/Signup/k/run", json="x",
                               headers={"idempotency-key": "a"}).status_code == 400  # fmt: skip
    health = server.client.get("/restate/health").json()
    assert "Greeter" in health["services"]
