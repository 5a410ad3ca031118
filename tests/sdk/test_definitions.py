"""Definitions, options and serde as they appear in the discovery manifest."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import msgspec
import pydantic
import pytest

import perdure
from perdure import Context, ObjectContext, ObjectSharedContext, WorkflowContext
from perdure.protocol.manifest import Manifest
from perdure.sdk.refs import NO_INPUT, ref_of
from perdure.sdk.serde import JsonSerde


@dataclass
class Item:
    name: str
    qty: int = 1


class Model(pydantic.BaseModel):
    total: float


class Struct(msgspec.Struct):
    n: int


def test_decorators_register_and_return_the_function() -> None:
    svc = perdure.Service("DefSvc")

    async def hello(ctx: Context, name: str) -> str:
        return name

    assert svc.handler("Hello")(hello) is hello
    ref = ref_of(hello)
    assert (ref.service, ref.handler, ref.input_type, ref.output_type) == (
        "DefSvc",
        "Hello",
        str,
        str,
    )

    async def nothing(ctx: Context) -> None: ...

    with pytest.raises(TypeError, match="not a registered perdure handler"):
        ref_of(nothing)
    obj = perdure.VirtualObject("DefObj")
    obj.handler(kind="shared")(nothing)
    assert ref_of(nothing).input_type is NO_INPUT


def test_manifest_types_schemas_and_options() -> None:
    obj = perdure.VirtualObject(
        "Cart",
        description="a cart",
        inactivity_timeout=timedelta(seconds=30),
        retry_policy=perdure.RetryPolicy(
            initial_interval=timedelta(milliseconds=100), max_attempts=5, on_max_attempts="kill"
        ),
    )

    @obj.handler(enable_lazy_state=True, ingress_private=True)
    async def put(ctx: ObjectContext, item: Item) -> Model:
        return Model(total=1)

    @obj.handler(kind="shared", journal_retention=timedelta(hours=1))
    async def raw(ctx: ObjectSharedContext, data: bytes) -> bytes:
        return data

    wf = perdure.Workflow("Flow")

    @wf.main(workflow_retention=timedelta(days=1))
    async def main(ctx: WorkflowContext, s: Struct) -> list[Item]:
        return []

    manifest = perdure.app([obj, wf]).manifest(perdure.sdk.endpoint.ProtocolMode.BIDI_STREAM)
    data = manifest.to_json(4)
    Manifest.from_json(data)  # valid by our parser, which mirrors the schema
    cart, flow = data["services"]
    assert cart["ty"] == "VIRTUAL_OBJECT"
    assert cart["documentation"] == "a cart"
    assert cart["inactivityTimeout"] == 30000
    assert cart["retryPolicyInitialInterval"] == 100
    assert cart["retryPolicyMaxAttempts"] == 5
    assert cart["retryPolicyOnMaxAttempts"] == "KILL"
    put_h, raw_h = cart["handlers"]
    assert put_h["ty"] == "EXCLUSIVE" and put_h["enableLazyState"] and put_h["ingressPrivate"]
    assert put_h["input"]["jsonSchema"]["properties"] == {
        "name": {"type": "string"},
        "qty": {"type": "integer"},
    }
    assert put_h["input"]["jsonSchema"]["required"] == ["name"]
    assert put_h["output"]["jsonSchema"]["properties"]["total"]["type"] == "number"
    assert raw_h["ty"] == "SHARED" and raw_h["journalRetention"] == 3600000
    assert raw_h["input"] == {"required": False, "contentType": "*/*"}
    assert raw_h["output"]["contentType"] == "application/octet-stream"
    (run,) = flow["handlers"]
    assert run["name"] == "run" and run["ty"] == "WORKFLOW"
    assert run["workflowCompletionRetention"] == 86400000
    assert run["input"]["jsonSchema"]["$defs"]["Struct"]["properties"]["n"]["type"] == "integer"
    assert run["output"]["jsonSchema"]["type"] == "array"
    with pytest.raises(ValueError, match="needs manifest v4"):
        manifest.to_json(3)


def test_bad_definitions_are_clear_errors() -> None:
    svc = perdure.Service("Bad")

    def sync(ctx: Context) -> None: ...

    with pytest.raises(TypeError, match="must be an async function"):
        svc.handler()(sync)

    async def too_many(ctx: Context, a: int, b: int) -> None: ...

    with pytest.raises(TypeError, match="at most one argument"):
        svc.handler()(too_many)
    with pytest.raises(TypeError, match="unexpected keyword"):
        svc.handler(nonsense=1)
    with pytest.raises(ValueError, match="'exclusive' or 'shared'"):
        perdure.VirtualObject("O").handler(kind="workflow")


def test_json_serde_round_trips_typed_values() -> None:
    serde = JsonSerde(list[Item])
    data = serde.serialize([Item("a", 2)])
    assert data == b'[{"name":"a","qty":2}]'
    assert serde.deserialize(data) == [Item("a", 2)]
    assert JsonSerde(Model).deserialize(b'{"total": 2}') == Model(total=2.0)
    assert JsonSerde(Struct).deserialize(JsonSerde().serialize(Struct(n=3))) == Struct(n=3)
    assert JsonSerde(int | None).deserialize(b"") is None
    with pytest.raises(perdure.TerminalError) as info:
        JsonSerde(Item).deserialize(b'{"qty": 1}')
    assert info.value.status_code == 400
