"""The engine: deterministic transitions (``core``) and the driver that commits them as a group
and releases their effects."""

from perdure.server.engine.core import AttemptRejected, Core, InvokeOutcome, InvokeRequest
from perdure.server.engine.driver import Engine, SystemClock

__all__ = ["AttemptRejected", "Core", "Engine", "InvokeOutcome", "InvokeRequest", "SystemClock"]
