"""Handler references resolve registered functions and reject everything else."""

from __future__ import annotations

import pytest

from perdure.protocol import ServiceType
from perdure.sdk.refs import HandlerRef, ref_of, register


async def greet(ctx: object, name: str) -> str:
    return name


def test_a_registered_function_addresses_its_target() -> None:
    ref = HandlerRef("Greeter", "Greet", ServiceType.SERVICE, str, str)
    register(greet, ref)
    assert ref_of(greet) is ref
    register(greet, ref)  # registering the same target again is harmless
    with pytest.raises(ValueError, match="already registered as Greeter/Greet"):
        register(greet, HandlerRef("Other", "Greet", ServiceType.SERVICE))


def test_an_unregistered_function_is_a_type_error() -> None:
    async def stray(ctx: object) -> None: ...

    with pytest.raises(TypeError, match="stray is not a registered perdure handler"):
        ref_of(stray)
