"""The invoker: drives attempts against deployments (HTTP/2 bidi or HTTP/1.1) and discovers them."""

from perdure.server.invoker.discovery import Discovered, DiscoveryError, discover
from perdure.server.invoker.invoker import Invoker

__all__ = ["Discovered", "DiscoveryError", "Invoker", "discover"]
