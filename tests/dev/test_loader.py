"""Finding the app ``perdure dev`` serves, importing it fresh on every load, and saying clearly
what is wrong when that fails."""

from __future__ import annotations

import asyncio
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from perdure.dev.loader import AppSpec, Loader, LoadError

GREETER = """
import perdure

greeter = perdure.Service("Greeter")

@greeter.handler()
async def greet(ctx: perdure.Context, name: str) -> str:
    return "{word} " + name
"""


@pytest.fixture(autouse=True)
def _isolated_imports() -> Iterator[None]:
    """The loader edits sys.path and sys.modules: put both back after each test."""
    path, modules = list(sys.path), set(sys.modules)
    yield
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def _call(fn: Any) -> str:
    """Run a handler that does not touch its context."""
    result: str = asyncio.run(fn(None, "x"))
    return result


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("app.py", AppSpec(path=Path("app.py"))),
        ("src/app.py:things", AppSpec(path=Path("src/app.py"), attr="things")),
        ("pkg/app", AppSpec(path=Path("pkg/app"))),
        ("pkg.app", AppSpec(module="pkg.app")),
        ("pkg.app:things", AppSpec(module="pkg.app", attr="things")),
    ],
)
def test_targets_name_a_file_or_a_module_and_maybe_an_attribute(
    target: str, expected: AppSpec
) -> None:
    assert AppSpec.parse(target) == expected


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("app.py:", "nothing after ':'"),
        ("app.py:1x", "'1x' is not a Python name"),
        ("my-app", "neither a .py file nor a module name"),
    ],
)
def test_malformed_targets_are_rejected(target: str, message: str) -> None:
    with pytest.raises(LoadError, match=message):
        AppSpec.parse(target)


def test_deployment_names_are_uri_hosts() -> None:
    assert AppSpec.parse("examples/all_services.py").name == "all-services"
    assert AppSpec.parse("shop.Orders_v2:app").name == "orders-v2"


def test_the_app_named_app_wins(tmp_path: Path) -> None:
    write(
        tmp_path / "several.py",
        GREETER.format(word="hi")
        + "other = perdure.app([perdure.Service('Other')])\napp = perdure.app([greeter])\n",
    )
    app = Loader(AppSpec.parse("several.py"), cwd=tmp_path).load().app
    assert list(app.services) == ["Greeter"]


def test_the_one_app_under_any_name(tmp_path: Path) -> None:
    write(tmp_path / "one.py", GREETER.format(word="hi") + "things = perdure.app([greeter])\n")
    app = Loader(AppSpec.parse("one.py"), cwd=tmp_path).load().app
    assert list(app.services) == ["Greeter"]


def test_module_level_definitions_without_an_app(tmp_path: Path) -> None:
    write(
        tmp_path / "defs.py",
        GREETER.format(word="hi") + "counter = perdure.VirtualObject('Counter')\n",
    )
    app = Loader(AppSpec.parse("defs.py"), cwd=tmp_path).load().app
    assert list(app.services) == ["Greeter", "Counter"]


def test_module_spec_with_an_attribute(tmp_path: Path) -> None:
    write(tmp_path / "shop" / "__init__.py", "")
    write(tmp_path / "shop" / "services.py", GREETER.format(word="hi"))
    loader = Loader(AppSpec.parse("shop.services:greeter"), cwd=tmp_path)
    loaded = loader.load()
    assert list(loaded.app.services) == ["Greeter"]
    assert loaded.files == {
        (tmp_path / "shop" / "__init__.py").resolve(),
        (tmp_path / "shop" / "services.py").resolve(),
    }


def test_several_apps_without_one_named_app_is_ambiguous(tmp_path: Path) -> None:
    write(
        tmp_path / "two.py",
        GREETER.format(word="hi") + "a = perdure.app([greeter])\nb = perdure.app([])\n",
    )
    with pytest.raises(LoadError, match=r"several apps \(a, b\); name one: two.py:a"):
        Loader(AppSpec.parse("two.py"), cwd=tmp_path).load()


@pytest.mark.parametrize(
    ("files", "target", "message"),
    [
        ({}, "missing.py", "no such file: missing.py"),
        ({}, "missing_module", "no module named 'missing_module'"),
        ({"empty.py": "x = 1\n"}, "empty.py", "empty.py has nothing to serve: define `app = "),
        ({"empty.py": "x = 1\n"}, "empty.py:y", "empty.py has no attribute 'y'"),
        ({"empty.py": "x = 1\n"}, "empty.py:x", "empty.py:x is of type int, not a perdure App"),
        (
            {"broken.py": "import perdure\n\ndef f(:\n    pass\n"},
            "broken.py",
            r"syntax error in .*broken.py:3: invalid syntax\n    def f\(:",
        ),
        (
            {"raises.py": "import perdure\nraise RuntimeError('no config')\n"},
            "raises.py",
            r"importing raises.py failed:\nTraceback[^\n]*\n  File .*raises.py\", line 2, in "
            r"<module>\n.*\nRuntimeError: no config",
        ),
        (
            {"deps.py": "import not_installed_anywhere\n"},
            "deps.py",
            "ModuleNotFoundError: No module named 'not_installed_anywhere'",
        ),
    ],
)
def test_load_errors_say_what_is_wrong(
    tmp_path: Path, files: dict[str, str], target: str, message: str
) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    with pytest.raises(LoadError, match=message) as caught:
        Loader(AppSpec.parse(target), cwd=tmp_path).load()
    if files:  # the files involved are watched for a fix
        assert (tmp_path / next(iter(files))).resolve() in caught.value.files


def test_each_load_imports_the_users_modules_fresh(tmp_path: Path) -> None:
    write(tmp_path / "words.py", "WORD = 'one'\n")
    write(
        tmp_path / "main.py",
        GREETER.replace('"{word} "', "words.WORD + ' '").replace(
            "import perdure", "import perdure\nimport words"
        ),
    )
    loader = Loader(AppSpec.parse("main.py"), cwd=tmp_path)
    assert _call(loader.load().app.services["Greeter"].handlers["greet"].fn) == "one x"
    assert loader.files == {(tmp_path / "main.py").resolve(), (tmp_path / "words.py").resolve()}
    write(tmp_path / "words.py", "WORD = 'two'\n")
    assert _call(loader.load().app.services["Greeter"].handlers["greet"].fn) == "two x"
    assert "pytest" not in {p.parent.name for p in loader.files}  # installed packages: not ours


def test_a_failed_load_puts_the_last_good_modules_back(tmp_path: Path) -> None:
    write(tmp_path / "words.py", "WORD = 'one'\n")
    write(tmp_path / "main.py", GREETER.replace("import perdure", "import perdure\nimport words"))
    loader = Loader(AppSpec.parse("main.py"), cwd=tmp_path)
    loader.load()
    good = sys.modules["words"]
    write(tmp_path / "words.py", "WORD = \n")
    with pytest.raises(LoadError, match=r"syntax error in .*words\.py:1"):
        loader.load()
    assert sys.modules["words"] is good
    assert loader.files == {(tmp_path / "main.py").resolve(), (tmp_path / "words.py").resolve()}
    write(tmp_path / "words.py", "WORD = 'fixed'\n")
    loader.load()
    assert sys.modules["words"].WORD == "fixed"


def test_a_file_named_like_a_loaded_module_is_still_the_users_file(tmp_path: Path) -> None:
    write(tmp_path / "json.py", GREETER.format(word="mine"))
    app = Loader(AppSpec.parse("json.py"), cwd=tmp_path).load().app
    assert _call(app.services["Greeter"].handlers["greet"].fn) == "mine x"
    import json

    assert hasattr(json, "dumps")  # the standard library's json is untouched
