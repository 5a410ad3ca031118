"""Hostile but realistic client input gets a 4xx saying what to fix, never a 500 (issue 12).

One real ``perdure server`` process and one perdure-SDK deployment (hostile_services.py) serve
the module; misbehaving deployments are fake ones on raw sockets (tests.support.raw_deployment).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.official import serve_asgi
from tests.support.perdure_server import PerdureServer
from tests.support.raw_deployment import http11_answer, raw_deployment

MANIFEST_TYPE = "application/vnd.restate.endpointmanifest.v3+json"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PerdureServer]:
    tmp = tmp_path_factory.mktemp("hostile")
    with (
        PerdureServer.start(tmp) as running,
        serve_asgi("tests.server.hostile_services:app", tmp) as url,
    ):
        running.register(url)
        yield running


@pytest.fixture
def ingress(server: PerdureServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.ingress, timeout=60.0) as client:
        yield client


@pytest.fixture
def admin(server: PerdureServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.admin, timeout=60.0) as client:
        yield client


def message(resp: httpx.Response, status: int) -> str:
    """The error message of a JSON error answer with ``status``."""
    assert resp.status_code == status, resp.text
    assert resp.headers["content-type"] == "application/json"
    text: str = resp.json()["message"]
    assert "Traceback" not in text
    return text


# -- ingress ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "delay", ["99999999999999d", "9" * 400 + "s", "P" + "9" * 400 + "D", "9" * 5000]
)
def test_a_delay_beyond_the_maximum_is_a_400(ingress: httpx.Client, delay: str) -> None:
    resp = ingress.post("/Echo/ping/send", params={"delay": delay})
    assert "delay" in message(resp, 400)


def test_a_delay_in_non_ascii_digits_is_a_400(ingress: httpx.Client) -> None:
    resp = ingress.post("/Echo/ping/send", params={"delay": "²"})
    assert "bad delay query parameter" in message(resp, 400)


def test_the_longest_delay_is_accepted(ingress: httpx.Client, admin: httpx.Client) -> None:
    resp = ingress.post("/Echo/ping/send", params={"delay": "36500d"})  # 100 years
    assert resp.status_code == 202, resp.text
    invocation = resp.json()["invocationId"]
    assert admin.patch(f"/invocations/{invocation}/kill").status_code == 200


def test_json_nested_100k_levels_deep_is_a_terminal_400(ingress: httpx.Client) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    for handler in ("echo_any", "echo_list"):
        resp = ingress.post(
            f"/Echo/{handler}", content=deep, headers={"content-type": "application/json"}
        )
        assert resp.headers["x-restate-error-source"] == "invocation"
        assert "not valid JSON" in message(resp, 400)


@pytest.mark.parametrize("body", [b"NaN", b"[Infinity]", b"-Infinity", b"1e999"])
def test_nan_and_infinity_are_refused_not_echoed(ingress: httpx.Client, body: bytes) -> None:
    resp = ingress.post(
        "/Echo/echo_any", content=body, headers={"content-type": "application/json"}
    )
    assert "not valid JSON" in message(resp, 400)


def test_finite_numbers_are_echoed(ingress: httpx.Client) -> None:
    resp = ingress.post("/Echo/echo_any", json=[1.5, -2e300, 0])
    assert resp.status_code == 200
    assert resp.json() == [1.5, -2e300, 0]


@pytest.mark.parametrize("what", ["attach", "output", "lookup"])
@pytest.mark.parametrize(
    "body",
    [b"garbage", b'{"target": "nope"}', b'{"target": "workflow", "workflowName": "W"}',
     b'{"target": "workflow", "workflowName": "W", "workflowKey": "\\ud800"}', b"[" * 5000],
)  # fmt: skip
def test_a_malformed_target_body_is_a_400(ingress: httpx.Client, what: str, body: bytes) -> None:
    resp = ingress.post(f"/restate/{what}", content=body)
    assert message(resp, 400).startswith("cannot read body: invalid request body: ")


# -- admin -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "limit", ["²", "99999999999999999999999", "9" * 5000, "100001", "-1", "ten"]
)
def test_a_bad_invocations_limit_is_a_400(admin: httpx.Client, limit: str) -> None:
    resp = admin.get("/invocations", params={"limit": limit})
    assert "limit must be an integer from 0 to 100000" in message(resp, 400)


def test_a_good_invocations_limit_is_honoured(ingress: httpx.Client, admin: httpx.Client) -> None:
    for _ in range(3):
        assert ingress.post("/Echo/ping").status_code == 200
    assert len(admin.get("/invocations", params={"limit": "2"}).json()["invocations"]) == 2


@pytest.mark.parametrize(
    "body",
    [
        b'{"object_key": "\\ud800", "new_state": {}}',
        b'{"object_key": "k", "new_state": {"\\udc00": [1]}}',
        b'{"object_key": "k", "version": "\\ud83d", "new_state": {}}',
    ],
)
def test_a_state_edit_with_a_lone_surrogate_is_a_400(admin: httpx.Client, body: bytes) -> None:
    resp = admin.post(
        "/services/Box/state", content=body, headers={"content-type": "application/json"}
    )
    assert "lone UTF-16 surrogate" in message(resp, 400)


def test_patch_service_rejects_unknown_fields(admin: httpx.Client) -> None:
    before = admin.get("/services/Echo").json()
    resp = admin.patch("/services/Echo", json={"public": False, "journal_retension": "1d"})
    assert "unknown field(s) journal_retension" in message(resp, 400)
    assert admin.get("/services/Echo").json() == before  # nothing of the request applied
    assert admin.patch("/services/Echo", json={"public": True}).status_code == 200


def test_query_answers_infinity_as_null(admin: httpx.Client) -> None:
    resp = admin.post("/query", json={"query": "SELECT 1e999 AS big, -1e999 AS small, 2.5 AS x"})
    assert resp.status_code == 200
    json.loads(resp.text, parse_constant=pytest.fail)  # strict JSON: no Infinity in the text
    assert resp.json()["rows"] == [{"big": None, "small": None, "x": 2.5}]


# -- registering deployments -----------------------------------------------------------------


def register(admin: httpx.Client, uri: str, **extra: object) -> httpx.Response:
    return admin.post("/deployments", json={"uri": uri, **extra})


@pytest.mark.parametrize(
    ("headers", "fragment"),
    [
        ({":path": "/evil"}, "pseudo-headers"),
        ({"x-a": "b\r\nx-injected: 1"}, "CR, LF or NUL"),
        ({"x-a": "nul\0"}, "CR, LF or NUL"),
        ({"bad name": "v"}, "not a valid HTTP header name"),
        ({"host": "elsewhere"}, "set by the server"),
    ],
)
@pytest.mark.parametrize("use_http_11", [False, True])
def test_a_bad_additional_header_is_a_400(
    server: PerdureServer, admin: httpx.Client, headers: dict[str, str], fragment: str,
    use_http_11: bool,
) -> None:  # fmt: skip
    resp = register(admin, "http://127.0.0.1:9", additional_headers=headers,
                    use_http_11=use_http_11)  # fmt: skip
    assert fragment in message(resp, 400)


@pytest.mark.parametrize(
    "uri",
    ["http://127.0.0.1:99999", "http://[::1", "ftp://host/x", "x", "http://a\0b/", "http://a b/"],
)
def test_a_bad_uri_is_a_400(admin: httpx.Client, uri: str) -> None:
    assert "bad uri" in message(register(admin, uri), 400)


@pytest.mark.parametrize("use_http_11", [False, True])
def test_a_closed_port_says_it_cannot_connect(admin: httpx.Client, use_http_11: bool) -> None:
    with raw_deployment() as url:
        pass  # the port is free again: nothing listens on it
    resp = register(admin, url, use_http_11=use_http_11)
    text = message(resp, 400)
    assert f"error when calling '{url}/'" in text
    assert "cannot connect" in text
    assert resp.json()["restate_code"] == "META0003"  # as the official server codes it


def test_garbage_over_h2_says_so_and_hints_at_http11(admin: httpx.Client) -> None:
    with raw_deployment(answer=b"\x00\xffgarbage\r\n\r\n") as url:
        text = message(register(admin, url), 400)
    assert f"error when calling '{url}/'" in text
    assert "use_http_11" in text


def test_garbage_over_http11_says_what_came_back(admin: httpx.Client) -> None:
    with raw_deployment(answer=b"\x00\xffgarbage\r\n\r\n") as url:
        text = message(register(admin, url, use_http_11=True), 400)
    assert "illegal status line" in text


@pytest.mark.parametrize(
    ("manifest", "fragment"),
    [
        ({"minProtocolVersion": 5, "maxProtocolVersion": 6, "services": None}, "services"),
        ({"minProtocolVersion": None, "maxProtocolVersion": 6, "services": []},
         "minProtocolVersion is required, got null"),
        ({"protocolMode": "REQUEST_RESPONSE", "minProtocolVersion": 5, "maxProtocolVersion": 6,
          "services": [{"name": None, "ty": "SERVICE", "handlers": []}]}, "name is required"),
    ],
)  # fmt: skip
def test_a_manifest_with_null_fields_is_a_400(
    admin: httpx.Client, manifest: dict[str, object], fragment: str
) -> None:
    answer = http11_answer(json.dumps(manifest).encode(), MANIFEST_TYPE)
    with raw_deployment(answer=answer) as url:
        text = message(register(admin, url, use_http_11=True), 400)
    assert "bad discovery manifest" in text
    assert fragment in text


def test_a_manifest_over_16_mib_is_refused_without_reading_it_all(admin: httpx.Client) -> None:
    size = 300 * 1024 * 1024
    head = http11_answer(b"", MANIFEST_TYPE).replace(
        b"content-length: 0", b"content-length: %d" % size
    )
    with raw_deployment(answer=head, flood_bytes=size) as url:
        text = message(register(admin, url, use_http_11=True), 400)
    assert "larger than 16777216 bytes" in text


def test_an_undeclared_manifest_over_16_mib_is_cut_off(admin: httpx.Client) -> None:
    head = b"HTTP/1.1 200 OK\r\ncontent-type: " + MANIFEST_TYPE.encode() + b"\r\n\r\n"
    with raw_deployment(answer=head, flood_bytes=20 * 1024 * 1024) as url:
        text = message(register(admin, url, use_http_11=True), 400)
    assert "larger than 16777216 bytes" in text


def test_the_server_still_serves_after_all_that(ingress: httpx.Client) -> None:
    assert ingress.post("/Echo/ping").json() == "pong"


def test_no_traceback_in_the_server_log(server: PerdureServer) -> None:
    """Every answer above was a 4xx the server chose: nothing reached the catch-all."""
    logs = "".join(p.read_text() for p in Path(server.tmp).glob("perdure-server-*.log"))
    assert "Traceback" not in logs
