"""Error answers become one exception tree; the class follows the HTTP status and the JSON body
(Restate 1.7.4+: code, message, source, metadata, stacktrace) fills the fields. The bodies here
are the official server's."""

from __future__ import annotations

from typing import Any

import pytest

from perdure.client import (
    BadRequestError,
    ClientError,
    ConflictError,
    InvocationError,
    NotFoundError,
    NotReadyError,
    TransportError,
)
from tests.client.conftest import Runner
from tests.client.wire import ID, Recorder, error

CASES: list[tuple[str, int, Any, str | None, type[ClientError], int, str, str | None]] = [
    (
        "unknown service",
        404,
        {
            "code": 404,
            "message": "service 'Nope' not found, make sure to register the service before "
            "calling it.",
            "source": "ingress",
        },
        "ingress",
        NotFoundError,
        404,
        "service 'Nope' not found",
        "ingress",
    ),
    (
        "output not ready",
        470,
        {
            "code": 470,
            "message": "the invocation exists but has not completed yet",
            "source": "ingress",
        },
        "ingress",
        NotReadyError,
        470,
        "has not completed yet",
        "ingress",
    ),
    (
        "workflow already invoked",
        409,
        {"code": 409, "message": "the workflow method was already invoked", "source": "invocation"},
        "invocation",
        ConflictError,
        409,
        "already invoked",
        "invocation",
    ),
    (
        "bad delay",
        400,
        {
            "code": 400,
            "message": "bad delay query parameter, must be a ISO8601 duration: x",
            "source": "ingress",
        },
        "ingress",
        BadRequestError,
        400,
        "bad delay",
        "ingress",
    ),
    (
        "terminal error",
        500,
        {"code": 500, "message": "boom", "metadata": {"k": "v"}, "source": "invocation"},
        "invocation",
        InvocationError,
        500,
        "boom",
        "invocation",
    ),
    (
        "custom code",
        418,
        {"code": 418, "message": "teapot", "source": "invocation"},
        "invocation",
        InvocationError,
        418,
        "teapot",
        "invocation",
    ),
    (
        "dispatcher failure",
        503,
        {"code": 503, "message": "try again", "source": "ingress"},
        "ingress",
        InvocationError,
        503,
        "try again",
        "ingress",
    ),
    ("pre-1.7.4 body", 404, {"message": "not found"}, None, NotFoundError, 404, "not found", None),
    ("source only in body", 470, {"code": 470, "message": "x", "source": "ingress"}, None,
     NotReadyError, 470, "x", "ingress"),
    ("plain text", 502, "Bad Gateway", None, InvocationError, 502, "Bad Gateway", None),
    ("empty body", 500, "", None, InvocationError, 500, "HTTP 500", None),
]  # fmt: skip


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_mapping(run: Runner, case: tuple[Any, ...]) -> None:
    _, status, body, header, cls, code, message, source = case
    recorder = Recorder([error(status, body, header)])
    with pytest.raises(cls) as caught:
        run(recorder, lambda c: c.service("S", "h").request(1))
    exc = caught.value
    assert isinstance(exc, ClientError)
    assert type(exc) is cls
    assert exc.code == code
    assert message in exc.message
    assert exc.source == source
    assert not isinstance(exc, TransportError)


def test_metadata_stacktrace_and_id(run: Runner) -> None:
    response = error(
        500,
        {
            "code": 500,
            "message": "boom",
            "metadata": {"reason": "stock", "n": 3},
            "stacktrace": "Traceback...",
            "source": "invocation",
        },
        "invocation",
    )
    response.headers["x-restate-id"] = ID
    with pytest.raises(InvocationError) as caught:
        run(Recorder([response]), lambda c: c.invocation_by_id(ID).attach())
    assert caught.value.metadata == {"reason": "stock", "n": "3"}
    assert caught.value.stacktrace == "Traceback..."
    assert caught.value.invocation_id == ID
    assert str(caught.value) == "[500] boom"


def test_send_and_awakeable_errors(run: Runner) -> None:
    with pytest.raises(BadRequestError):
        run(
            Recorder([error(400, {"code": 400, "message": "bad", "source": "ingress"}, "ingress")]),
            lambda c: c.service_send("S", "h").send(1),
        )
    with pytest.raises(BadRequestError, match="bad awakeable id"):
        run(
            Recorder(
                [error(400, {"code": 400, "message": "bad awakeable id", "source": "ingress"})]
            ),
            lambda c: c.resolve_awakeable("sign_1nope", 1),
        )
