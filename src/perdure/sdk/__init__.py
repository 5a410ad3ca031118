"""The SDK: services, virtual objects, workflows, the handler context and the ASGI endpoint.

Handler authors import these names from ``perdure`` itself.
"""

from perdure.sdk.context import (
    Caller,
    Context,
    DurablePromise,
    ObjectContext,
    ObjectSharedContext,
    Request,
    Sender,
    SendHandle,
    WorkflowContext,
    WorkflowSharedContext,
)
from perdure.sdk.definitions import RetryPolicy, Service, VirtualObject, Workflow
from perdure.sdk.endpoint import App, app
from perdure.sdk.errors import TerminalError
from perdure.sdk.futures import (
    CallFuture,
    DurableFuture,
    all_,
    any_,
    as_completed,
    first_completed,
    gather,
)
from perdure.sdk.serde import BytesSerde, JsonSerde, Serde
from perdure.sdk.serve import serve, serve_async

__all__ = [
    "App",
    "BytesSerde",
    "CallFuture",
    "Caller",
    "Context",
    "DurableFuture",
    "DurablePromise",
    "JsonSerde",
    "ObjectContext",
    "ObjectSharedContext",
    "Request",
    "RetryPolicy",
    "SendHandle",
    "Sender",
    "Serde",
    "Service",
    "TerminalError",
    "VirtualObject",
    "Workflow",
    "WorkflowContext",
    "WorkflowSharedContext",
    "all_",
    "any_",
    "app",
    "as_completed",
    "first_completed",
    "gather",
    "serve",
    "serve_async",
]
