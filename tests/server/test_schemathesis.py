"""schemathesis against both HTTP APIs of a real ``perdure server`` process, driven by the
OpenAPI documents the server serves (``GET :9070/openapi`` and ``GET :8080/openapi``): no input
it generates, valid for the document or deliberately not, may get a 5xx. Examples per operation
are limited so that both APIs take about a minute.

``POST /deployments`` is left out: each example would be a discovery of an arbitrary URI (DNS,
connects); test_hostile_input.py covers registration with bad input and bad deployments.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.official import serve_asgi
from tests.support.perdure_server import PerdureServer

schemathesis = pytest.importorskip("schemathesis")

# PERDURE_SCHEMATHESIS_EXAMPLES=200 searches harder than CI's default.
EXAMPLES = settings(
    max_examples=int(os.environ.get("PERDURE_SCHEMATHESIS_EXAMPLES", "25")),
    deadline=None,
    suppress_health_check=list(HealthCheck),
    database=None,
)
SKIPPED = {("POST", "/deployments")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PerdureServer]:
    tmp = tmp_path_factory.mktemp("schemathesis")
    with (
        PerdureServer.start(tmp) as running,
        serve_asgi("tests.server.hostile_services:app", tmp) as url,
    ):
        running.register(url)
        yield running


def _cases(operation: Any) -> st.SearchStrategy[Any]:
    modes = schemathesis.GenerationMode
    return st.one_of(operation.as_strategy(modes.POSITIVE), operation.as_strategy(modes.NEGATIVE))


def _fuzz(document_url: str) -> list[str]:
    """Run every operation of the document; the failures, one line each."""
    from schemathesis.checks import not_a_server_error

    schema = schemathesis.openapi.from_url(document_url)
    failures: list[str] = []
    tried = 0
    calls: list[int] = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        tried += 1

        @EXAMPLES
        @given(case=_cases(operation))
        def run(case: Any) -> None:
            calls.append(1)
            case.call_and_validate(checks=[not_a_server_error], timeout=30)

        try:
            run()
        except Exception as exc:  # one line per failing operation, all of them reported
            failures.append(f"{operation.method.upper()} {operation.path}: {exc}")
    assert tried >= 10, "the document lists too few operations"
    assert len(calls) >= 5 * tried, f"only {len(calls)} requests for {tried} operations"
    print(f"{document_url}: {len(calls)} requests over {tried} operations")
    return failures


def test_the_admin_api_never_answers_5xx(server: PerdureServer) -> None:
    failures = _fuzz(f"{server.admin}/openapi")
    assert not failures, "\n".join(failures)


def test_the_ingress_never_answers_5xx(server: PerdureServer) -> None:
    failures = _fuzz(f"{server.ingress}/openapi")
    assert not failures, "\n".join(failures)


def test_the_documents_describe_the_apis(server: PerdureServer) -> None:
    admin = httpx.get(f"{server.admin}/openapi").json()
    assert admin["openapi"] == "3.1.0"
    assert {"/deployments", "/services/{service}", "/invocations/{invocation_id}/kill"} <= set(
        admin["paths"]
    )
    assert httpx.get(f"{server.admin}/v4/openapi").json() == admin  # as the CLI reaches it
    ingress = httpx.get(f"{server.ingress}/openapi").json()
    assert {"/restate/attach", "/Echo/echo_list", "/Echo/echo_list/send", "/Box/{key}/put"} <= set(
        ingress["paths"]
    )
    echo_list = ingress["paths"]["/Echo/echo_list"]["post"]["requestBody"]["content"]
    assert echo_list["application/json"]["schema"] == {
        "type": "array",
        "items": {"type": "integer"},
    }
    service = httpx.get(f"{server.admin}/services/Box/openapi").json()
    assert set(service["paths"]) == {"/Box/{key}/put", "/Box/{key}/put/send"}
