"""The ingress client: call handlers on perdure's server (or Restate's) from any Python program.

    from perdure.client import Client, AsyncClient

    with Client("http://localhost:8080") as client:
        greeting = client.service("Greeter", "greet").request("Ann")
        handle = client.object_send("Counter", "mary", "add").send(1, idempotency_key="k1")
        total = handle.attach()

``AsyncClient`` has the same methods, awaited. Errors form one tree under ``ClientError``.
"""

from perdure.client._async import (
    AsyncClient,
    AsyncInvocationHandle,
    AsyncRequester,
    AsyncSendHandle,
    AsyncSendRequester,
)
from perdure.client._core import USE_CLIENT_DEFAULT
from perdure.client._errors import (
    BadRequestError,
    ClientError,
    ConflictError,
    InvocationError,
    NotFoundError,
    NotReadyError,
    ResponseDecodeError,
    TransportError,
)
from perdure.client._serde import NO_BODY
from perdure.client._sync import (
    Client,
    InvocationHandle,
    Requester,
    SendHandle,
    SendRequester,
)

__all__ = [
    "NO_BODY",
    "USE_CLIENT_DEFAULT",
    "AsyncClient",
    "AsyncInvocationHandle",
    "AsyncRequester",
    "AsyncSendHandle",
    "AsyncSendRequester",
    "BadRequestError",
    "Client",
    "ClientError",
    "ConflictError",
    "InvocationError",
    "InvocationHandle",
    "NotFoundError",
    "NotReadyError",
    "Requester",
    "ResponseDecodeError",
    "SendHandle",
    "SendRequester",
    "TransportError",
]
