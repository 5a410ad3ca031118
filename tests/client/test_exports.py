"""perdure.client's public names are curated: adding or removing one is deliberate."""

from __future__ import annotations

import perdure.client


def test_client_exports() -> None:
    assert sorted(perdure.client.__all__) == sorted(
        [
            "NO_BODY", "USE_CLIENT_DEFAULT", "AsyncClient", "AsyncInvocationHandle",
            "AsyncRequester", "AsyncSendHandle", "AsyncSendRequester", "BadRequestError",
            "Client", "ClientError", "ConflictError", "InvocationError", "InvocationHandle",
            "NotFoundError", "NotReadyError", "Requester", "ResponseDecodeError", "SendHandle",
            "SendRequester", "TransportError",
        ]
    )  # fmt: skip
    for name in perdure.client.__all__:
        assert hasattr(perdure.client, name), name


def test_error_tree() -> None:
    from perdure.client import (
        BadRequestError,
        ClientError,
        ConflictError,
        InvocationError,
        NotFoundError,
        NotReadyError,
        ResponseDecodeError,
        TransportError,
    )

    for cls in (
        BadRequestError, ConflictError, InvocationError, NotFoundError, NotReadyError,
        ResponseDecodeError, TransportError,
    ):  # fmt: skip
        assert issubclass(cls, ClientError)
    assert issubclass(ClientError, Exception)
