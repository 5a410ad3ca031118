"""``perdure dev``: the server on the embedded store and the user's services in one process, with
reload on edit (see ``session``). ``loader`` finds the app, ``watcher`` notices edits, ``curls``
prints how to call each handler."""

from perdure.dev.loader import AppSpec, Loaded, Loader, LoadError
from perdure.dev.session import DevConfig, DevError, run

__all__ = ["AppSpec", "DevConfig", "DevError", "LoadError", "Loaded", "Loader", "run"]
