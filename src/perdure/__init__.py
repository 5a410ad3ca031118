"""perdure: durable execution for Python, with Restate's programming model and wire protocol.

Handler authors ``import perdure`` (services, objects, workflows, the context, ``app``,
``serve``); callers use ``perdure.client``; the wire format lives in ``perdure.protocol``;
operators use the ``perdure`` command.
"""

from importlib.metadata import PackageNotFoundError, version

from perdure.sdk import (
    App,
    BytesSerde,
    Caller,
    CallFuture,
    Context,
    DurableFuture,
    DurablePromise,
    JsonSerde,
    ObjectContext,
    ObjectSharedContext,
    Request,
    RetryPolicy,
    Sender,
    SendHandle,
    Serde,
    Service,
    TerminalError,
    VirtualObject,
    Workflow,
    WorkflowContext,
    WorkflowSharedContext,
    app,
    as_completed,
    first_completed,
    gather,
    serve,
    serve_async,
)

# ``perdure.all`` / ``perdure.any`` carry the builtins' names (as attributes of the package); a
# real import, so type checkers see them. This module uses neither builtin.
from perdure.sdk.futures import all_ as all
from perdure.sdk.futures import any_ as any

try:
    __version__ = version("perdure")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

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
    "__version__",
    "all",
    "any",
    "app",
    "as_completed",
    "first_completed",
    "gather",
    "serve",
    "serve_async",
]
