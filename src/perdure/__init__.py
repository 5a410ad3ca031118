"""perdure: durable execution for Python, with Restate's programming model and wire protocol.

Handler authors ``import perdure`` (the SDK lands here); callers use ``perdure.client``; the
wire format lives in ``perdure.protocol``; operators use the ``perdure`` command.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("perdure")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
