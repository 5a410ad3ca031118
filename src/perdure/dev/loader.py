"""Finding and (re-)importing the user's app for ``perdure dev``.

A target is ``path/to/app.py``, ``path/to/app.py:attr``, ``package.module`` or
``package.module:attr``. Loading imports it fresh: the modules of the user's project that the last
load imported (files under the app's directory or the working directory, not installed packages
and not perdure itself) are dropped from ``sys.modules`` first, so edits to any of them take
effect. A load that fails puts the previous modules back, so the last good code stays whole.

Every failure is a ``LoadError`` whose message says what is wrong and what to do.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import sys
import sysconfig
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any

import perdure
from perdure.sdk.definitions import Service, VirtualObject, Workflow
from perdure.sdk.endpoint import App

_DEFINITIONS = (Service, VirtualObject, Workflow)
_PERDURE_DIR = Path(perdure.__file__).resolve().parent


class LoadError(Exception):
    """The target could not be loaded; ``message`` is what to tell the user.

    ``files`` are user files involved in the failure (to watch for a fix)."""

    def __init__(self, message: str, files: frozenset[Path] = frozenset()) -> None:
        super().__init__(message)
        self.message = message
        self.files = files


@dataclass(frozen=True, slots=True)
class AppSpec:
    """What ``perdure dev TARGET`` names: a file or a module, and optionally an attribute."""

    path: Path | None = None
    module: str | None = None
    attr: str | None = None

    @classmethod
    def parse(cls, target: str) -> AppSpec:
        where, sep, attr = target.rpartition(":")
        if not sep:
            where, attr = target, ""
        if sep and not attr:
            raise LoadError(f"{target!r}: nothing after ':' (expected FILE.py:NAME or MODULE:NAME)")
        if attr and not attr.isidentifier():
            raise LoadError(f"{target!r}: {attr!r} is not a Python name")
        if where.endswith(".py") or os.sep in where or "/" in where:
            return cls(path=Path(where), attr=attr or None)
        if not all(part.isidentifier() for part in where.split(".")):
            raise LoadError(
                f"{target!r} is neither a .py file nor a module name "
                "(expected path/to/app.py, package.module or either with :NAME)"
            )
        return cls(module=where, attr=attr or None)

    @property
    def name(self) -> str:
        """A short name for the deployment (``local://NAME``) and messages."""
        stem = self.path.stem if self.path is not None else (self.module or "app").split(".")[-1]
        return re.sub(r"[^a-z0-9-]+", "-", stem.lower()).strip("-") or "app"

    def __str__(self) -> str:
        where = str(self.path) if self.path is not None else str(self.module)
        return f"{where}:{self.attr}" if self.attr else where


@dataclass(frozen=True, slots=True)
class Loaded:
    """One successful load: the app to serve and the user files it came from."""

    app: App
    files: frozenset[Path]
    module_names: frozenset[str] = field(default_factory=frozenset)


class Loader:
    """Imports a target fresh on every ``load()`` and finds the app in it."""

    def __init__(self, spec: AppSpec, cwd: Path | None = None) -> None:
        self.spec = spec
        self.cwd = (cwd or Path.cwd()).resolve()
        self.roots = [self.cwd]
        if spec.path is not None:
            self.roots.insert(0, (self.cwd / spec.path).resolve().parent)
        self._modules: dict[str, ModuleType] = {}
        self.files: frozenset[Path] = frozenset()
        """The user files of the last good load (what to watch)."""

    def load(self) -> Loaded:
        saved = {name: sys.modules.pop(name) for name in self._modules if name in sys.modules}
        before = set(sys.modules)
        try:
            module = self._import()
            app = find_app(module, self.spec)
        except BaseException as exc:
            new_user = self._user_modules(set(sys.modules) - before)
            for name in new_user:
                del sys.modules[name]
            sys.modules.update(saved)
            if isinstance(exc, LoadError):
                exc.files = exc.files | frozenset(new_user.values()) | self.files
                raise
            if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: not ours
                raise
            files = frozenset(new_user.values()) | self.files | _error_files(exc, self)
            raise LoadError(self._describe(exc), files) from exc
        user = self._user_modules(set(sys.modules) - before)
        self._modules = {name: sys.modules[name] for name in user}
        self.files = frozenset(user.values())
        return Loaded(app, self.files, frozenset(user))

    # -- importing -----------------------------------------------------------------------------

    def _import(self) -> ModuleType:
        if self.spec.path is not None:
            return self._import_file((self.cwd / self.spec.path).resolve())
        assert self.spec.module is not None
        if str(self.cwd) not in sys.path:
            sys.path.insert(0, str(self.cwd))  # like `python -m`: the working directory first
        importlib.invalidate_caches()
        try:
            return importlib.import_module(self.spec.module)
        except ModuleNotFoundError as exc:
            wanted = self.spec.module
            if exc.name is not None and (wanted == exc.name or wanted.startswith(exc.name + ".")):
                raise LoadError(
                    f"no module named {wanted!r} (looked in {self.cwd} and the installed "
                    "packages); give a module importable from here, or a path/to/file.py"
                ) from None
            raise

    def _import_file(self, path: Path) -> ModuleType:
        if not path.is_file():
            raise LoadError(f"no such file: {self.spec.path} (looked for {path})")
        folder = str(path.parent)
        if folder not in sys.path:
            sys.path.insert(0, folder)  # like `python file.py`: its siblings are importable
        importlib.invalidate_caches()
        name = path.stem
        taken = sys.modules.get(name)
        if taken is not None or not name.isidentifier():  # e.g. a file named like a stdlib module
            name = "__perdure_dev__" + re.sub(r"\W", "_", name)
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise LoadError(f"cannot import {path}: not a Python source file")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module

    # -- the user's modules ----------------------------------------------------------------------

    def _user_modules(self, names: set[str]) -> dict[str, Path]:
        """Of ``names``, the modules whose file belongs to the user's project."""
        found: dict[str, Path] = {}
        for name in names:
            module = sys.modules.get(name)
            file = getattr(module, "__file__", None)
            if not isinstance(file, str):
                continue
            path = Path(file).resolve()
            if self.is_user_file(path):
                found[name] = path
        return found

    def is_user_file(self, path: Path) -> bool:
        if path.suffix != ".py" or _is_within(path, _PERDURE_DIR):
            return False
        if any(_is_within(path, p) for p in _installed_dirs()):
            return False
        return any(_is_within(path, root) for root in self.roots)

    def _describe(self, exc: BaseException) -> str:
        if isinstance(exc, SyntaxError):
            where = f"{exc.filename}:{exc.lineno}" if exc.filename else str(self.spec)
            lines = [f"syntax error in {where}: {exc.msg}"]
            if exc.text:
                lines.append("    " + exc.text.rstrip("\n"))
                if exc.offset:
                    lines.append("    " + " " * (exc.offset - 1) + "^")
            return "\n".join(lines)
        frames = _user_traceback(exc.__traceback__, self)
        text = "".join(traceback.format_exception(type(exc), exc, frames)).rstrip()
        return f"importing {self.spec} failed:\n{text}"


def find_app(module: ModuleType, spec: AppSpec) -> App:
    """The app a module offers: ``spec.attr`` if given, else ``app``, else its one App, else an
    App of the service definitions at module level."""
    where = spec.module or str(spec.path)
    if spec.attr is not None:
        if not hasattr(module, spec.attr):
            raise LoadError(f"{where} has no attribute {spec.attr!r}")
        return _as_app(getattr(module, spec.attr), f"{where}:{spec.attr}")
    namespace = vars(module)
    if isinstance(namespace.get("app"), App):
        app: App = namespace["app"]
        return app
    apps = _unique(v for v in namespace.values() if isinstance(v, App))
    if len(apps) == 1:
        only: App = apps[0]
        return only
    if len(apps) > 1:
        names = sorted(k for k, v in namespace.items() if isinstance(v, App))
        raise LoadError(
            f"{where} has several apps ({', '.join(names)}); name one: {where}:{names[0]}"
        )
    definitions = _unique(v for v in namespace.values() if isinstance(v, _DEFINITIONS))
    if definitions:
        return _as_app(definitions, where)
    raise LoadError(
        f"{where} has nothing to serve: define `app = perdure.app([...])`, or a perdure.Service, "
        "VirtualObject or Workflow at module level"
    )


def _as_app(value: Any, where: str) -> App:
    if isinstance(value, App):
        return value
    if isinstance(value, _DEFINITIONS):
        value = [value]
    is_list = isinstance(value, list | tuple)
    if is_list and value and all(isinstance(v, _DEFINITIONS) for v in value):
        try:
            return perdure.app(value)
        except ValueError as exc:
            raise LoadError(f"{where}: {exc}") from None
    raise LoadError(
        f"{where} is of type {type(value).__name__}, not a perdure App (perdure.app([...])) or a "
        "service, virtual object or workflow"
    )


def _unique(values: Any) -> list[Any]:
    seen: dict[int, Any] = {}
    for value in values:
        seen.setdefault(id(value), value)
    return list(seen.values())


def _is_within(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _installed_dirs() -> list[Path]:
    """Where installed packages and the standard library live: never the user's code."""
    dirs = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths = sysconfig.get_paths()
    dirs.update(paths[k] for k in ("stdlib", "platstdlib", "purelib", "platlib") if k in paths)
    found = [Path(d).resolve() for d in dirs]
    found += [Path(p).resolve() for p in sys.path if "site-packages" in p or "dist-packages" in p]
    return found


def _user_traceback(tb: TracebackType | None, loader: Loader) -> TracebackType | None:
    """Skip the import machinery's frames: start at the first frame in the user's files."""
    while tb is not None:
        if loader.is_user_file(Path(tb.tb_frame.f_code.co_filename).resolve()):
            return tb
        tb = tb.tb_next
    return None


def _error_files(exc: BaseException, loader: Loader) -> frozenset[Path]:
    files: set[Path] = set()
    if isinstance(exc, SyntaxError) and exc.filename:
        files.add(Path(exc.filename).resolve())
    for frame, _ in traceback.walk_tb(exc.__traceback__):
        path = Path(frame.f_code.co_filename).resolve()
        if loader.is_user_file(path):
            files.add(path)
    return frozenset(p for p in files if loader.is_user_file(p))
