"""The targets of attach/output/lookup: JSON bodies read as the official server reads them, and
the invocation id each target stands for (computed, so lookup needs no storage)."""

from __future__ import annotations

import json

import pytest

from perdure.protocol import InvocationId
from perdure.server.api.targets import (
    ByIdempotencyKey,
    ByInvocationId,
    ByWorkflow,
    TargetError,
    invocation_id_of,
    parse_target_body,
)


def body(**fields: object) -> bytes:
    return json.dumps(fields).encode()


def test_each_target_kind_is_read_from_camel_case_fields() -> None:
    assert parse_target_body(
        body(target="workflow", workflowName="Signup", workflowKey="a b/c")
    ) == ByWorkflow("Signup", "a b/c")
    assert parse_target_body(
        body(
            target="idempotentInvocation",
            service="Counter",
            key="k/1 %",
            handler="add",
            idempotencyKey="50% off/now?",
        )
    ) == ByIdempotencyKey("Counter", "add", "50% off/now?", key="k/1 %")
    inv = InvocationId.new()
    assert parse_target_body(body(target="invocation", invocationId=str(inv))) == ByInvocationId(
        inv
    )


def test_optional_fields_may_be_null_or_absent_and_unknown_fields_are_ignored() -> None:
    target = parse_target_body(
        body(
            target="idempotentInvocation",
            service="Greeter",
            key=None,
            handler="greet",
            idempotencyKey="k",
            scope=None,
            extra=[1, 2],
        )
    )
    assert target == ByIdempotencyKey("Greeter", "greet", "k")


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"{not json", "invalid request body"),
        (b"", "invalid request body"),
        (b"[1]", "expected a JSON object, got array"),
        (b'{"target": "workflow", "workflowName": "W", "workflowKey": "\\ud800"}', "surrogate"),
        (b"[" * 10_000 + b"]" * 10_000, "nested more than"),
        (b'{"target": NaN}', "NaN is not a JSON value"),
        (body(workflowName="W", workflowKey="k"), "missing field `target`"),
        (body(target="bogus"), "unknown variant `bogus`"),
        (body(target="workflow", workflowName="W"), "missing field `workflowKey`"),
        (body(target="workflow", workflow_name="W", workflow_key="k"), "`workflowName`"),
        (body(target="workflow", workflowName=1, workflowKey="k"), "number, expected a string"),
    ],
)
def test_an_unreadable_body_is_a_400_with_the_official_message(raw: bytes, fragment: str) -> None:
    with pytest.raises(TargetError) as caught:
        parse_target_body(raw)
    assert caught.value.status == 400  # the official server answers 500: a client mistake
    assert caught.value.message.startswith("cannot read body: ")
    assert fragment in caught.value.message


def test_a_bad_invocation_id_is_a_400() -> None:
    with pytest.raises(TargetError) as caught:
        parse_target_body(body(target="invocation", invocationId="inv_bad"))
    assert caught.value.status == 400
    assert caught.value.message == "bad invocation id 'inv_bad': must start with 'inv_1'"


def test_ids_are_the_ones_calls_and_sends_get() -> None:
    assert invocation_id_of(ByWorkflow("Signup", "k")) == InvocationId.for_workflow("Signup", "k")
    assert invocation_id_of(
        ByIdempotencyKey("Counter", "add", "ik", key="k")
    ) == InvocationId.for_idempotent_request("Counter", "add", "ik", key="k")
    # the object key is part of the identity: with and without it are different invocations
    assert invocation_id_of(ByIdempotencyKey("Counter", "add", "ik")) != invocation_id_of(
        ByIdempotencyKey("Counter", "add", "ik", key="k")
    )
    assert invocation_id_of(ByWorkflow("W", "k", scope="s")) != invocation_id_of(
        ByWorkflow("W", "k")
    )
