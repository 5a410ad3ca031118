"""The discovery manifest: built per version; what a deployment says is parsed and validated."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from perdure.protocol import (
    HandlerManifest,
    HandlerType,
    InputSpec,
    Manifest,
    ManifestError,
    OnMaxAttempts,
    Options,
    OutputSpec,
    ProtocolMode,
    ServiceManifest,
    ServiceType,
    manifest_content_type,
    negotiate_manifest_version,
    parse_invocation_content_type,
    parse_manifest_content_type,
)
from perdure.protocol.versions import MANIFEST_ACCEPT


def _manifest() -> Manifest:
    counter = ServiceManifest(
        "Counter",
        ServiceType.VIRTUAL_OBJECT,
        (
            HandlerManifest(
                "add",
                HandlerType.EXCLUSIVE,
                input=InputSpec(
                    required=True, content_type="application/json", json_schema={"type": "integer"}
                ),
                output=OutputSpec(content_type="application/json", set_content_type_if_empty=False),
                options=Options(inactivity_timeout=30_000),
            ),
            HandlerManifest("get", HandlerType.SHARED, input=InputSpec()),
        ),
        Options(
            documentation="counts",
            enable_lazy_state=True,
            retry_policy_max_attempts=3,
            retry_policy_on_max_attempts=OnMaxAttempts.KILL,
            retry_policy_exponentiation_factor=1.5,
        ),
    )
    return Manifest(ProtocolMode.BIDI_STREAM, 6, 6, (counter,))


def test_json_shape_is_camel_case_without_nulls() -> None:
    data = _manifest().to_json(4)
    assert data == {
        "protocolMode": "BIDI_STREAM",
        "minProtocolVersion": 6,
        "maxProtocolVersion": 6,
        "services": [
            {
                "name": "Counter",
                "ty": "VIRTUAL_OBJECT",
                "handlers": [
                    {
                        "name": "add",
                        "ty": "EXCLUSIVE",
                        "input": {"required": True, "contentType": "application/json",
                                  "jsonSchema": {"type": "integer"}},
                        "output": {"contentType": "application/json",
                                   "setContentTypeIfEmpty": False},
                        "inactivityTimeout": 30000,
                    },
                    {"name": "get", "ty": "SHARED", "input": {}},
                ],
                "documentation": "counts",
                "enableLazyState": True,
                "retryPolicyMaxAttempts": 3,
                "retryPolicyExponentiationFactor": 1.5,
                "retryPolicyOnMaxAttempts": "KILL",
            }
        ],
    }  # fmt: skip


def test_parse_is_the_inverse_of_build() -> None:
    manifest = _manifest()
    assert Manifest.from_bytes(manifest.to_bytes()) == manifest


def test_a_field_newer_than_the_negotiated_version_is_refused() -> None:
    with pytest.raises(ManifestError, match="retryPolicyMaxAttempts needs manifest v4"):
        _manifest().to_json(3)
    bare = Manifest(ProtocolMode.REQUEST_RESPONSE, 5, 6, ())
    assert bare.to_json(2)["services"] == []


def _parse(patch: dict[str, Any]) -> Manifest:
    data = _manifest().to_json()
    service = data["services"][0]
    for key, value in patch.items():
        if key.startswith("handler."):
            service["handlers"][0][key.removeprefix("handler.")] = value
        elif key.startswith("service."):
            service[key.removeprefix("service.")] = value
        else:
            data[key] = value
    return Manifest.from_json(json.loads(json.dumps(data)))


@pytest.mark.parametrize(
    ("patch", "reason"),
    [
        ({"minProtocolVersion": 7}, "1 <= min <= max"),
        ({"protocolMode": "STREAM"}, "protocolMode must be one of"),
        ({"services": {}}, "services must be a list"),
        ({"extra": 1}, "unknown field"),
        ({"service.ty": "ACTOR"}, "ty must be one of SERVICE, VIRTUAL_OBJECT, WORKFLOW"),
        ({"service.name": "9lives"}, "invalid service name"),
        ({"service.abortTimeout": "10s"}, "abortTimeout has the wrong type"),
        ({"service.enableLazyState": 1}, "enableLazyState has the wrong type"),
        ({"service.workflowCompletionRetention": 1}, "belongs on the run handler"),
        ({"handler.name": "a.b"}, "invalid handler name"),
        ({"handler.ty": "WORKFLOW"}, "a VIRTUAL_OBJECT cannot have a WORKFLOW handler"),
        ({"handler.input": {"required": "yes"}}, "required must be a bool"),
        ({"handler.output": {"schema": {}}}, "unknown field"),
    ],
)
def test_malformed_manifests_are_rejected_with_the_reason(
    patch: dict[str, Any], reason: str
) -> None:
    with pytest.raises(ManifestError, match=reason):
        _parse(patch)


def test_missing_required_fields_and_bad_json() -> None:
    with pytest.raises(ManifestError, match="missing the required field services"):
        Manifest.from_json({"minProtocolVersion": 5, "maxProtocolVersion": 6})
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_bytes(b"{")
    with pytest.raises(ManifestError, match="must be a JSON object"):
        Manifest.from_json([])


def test_handler_types_follow_the_official_matrix() -> None:
    wf = ServiceManifest(
        "Order",
        ServiceType.WORKFLOW,
        (HandlerManifest("run", HandlerType.WORKFLOW), HandlerManifest("status")),
    )
    run, status = wf.handlers
    assert wf.effective_handler_type(run) is HandlerType.WORKFLOW
    assert wf.effective_handler_type(status) is HandlerType.SHARED  # not WORKFLOW
    obj = ServiceManifest("Obj", ServiceType.VIRTUAL_OBJECT, (HandlerManifest("h"),))
    assert obj.effective_handler_type(obj.handlers[0]) is HandlerType.EXCLUSIVE
    svc = ServiceManifest("Svc", ServiceType.SERVICE, (HandlerManifest("h"),))
    assert svc.effective_handler_type(svc.handlers[0]) is None
    assert svc.handler("h") is svc.handlers[0] and svc.handler("x") is None


def test_manifest_version_negotiation() -> None:
    assert negotiate_manifest_version(MANIFEST_ACCEPT) == 4
    assert negotiate_manifest_version(manifest_content_type(3)) == 3
    assert negotiate_manifest_version(None) == 2
    assert negotiate_manifest_version(manifest_content_type(1)) is None
    assert negotiate_manifest_version("application/json") is None
    assert parse_manifest_content_type("application/vnd.restate.endpointmanifest.v4+json") == 4
    assert parse_manifest_content_type("application/json") is None


def test_invocation_content_type() -> None:
    assert parse_invocation_content_type("application/vnd.restate.invocation.v6") == 6
    assert parse_invocation_content_type("application/vnd.restate.invocation.v6; x=1") is None
    assert parse_invocation_content_type("application/json") is None
    assert parse_invocation_content_type(None) is None


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        ({"minProtocolVersion": 5, "maxProtocolVersion": 6, "services": None},
         "manifest.services is required, got null"),
        ({"minProtocolVersion": None, "maxProtocolVersion": 6, "services": []},
         "manifest.minProtocolVersion is required, got null"),
        ({"minProtocolVersion": 5, "maxProtocolVersion": 6,
          "services": [{"name": "S", "ty": "SERVICE", "handlers": None}]},
         "handlers is required, got null"),
        ({"minProtocolVersion": 5, "maxProtocolVersion": 6,
          "services": [{"name": None, "ty": "SERVICE", "handlers": []}]},
         "service.name is required, got null"),
        ({"minProtocolVersion": 5, "maxProtocolVersion": 6,
          "services": [{"name": "S", "ty": "SERVICE", "handlers": [],
                        "retryPolicyExponentiationFactor": float("inf")}]},
         "must be a finite number"),
    ],
)  # fmt: skip
def test_null_and_infinite_fields_are_manifest_errors(data: Any, fragment: str) -> None:
    with pytest.raises(ManifestError, match=re.escape(fragment)):
        Manifest.from_json(data)


def test_a_manifest_nested_too_deeply_is_a_manifest_error() -> None:
    with pytest.raises(ManifestError, match="not valid JSON"):
        Manifest.from_bytes(b"[" * 100_000 + b"]" * 100_000)
    schema: Any = {}
    for _ in range(200):
        schema = {"items": schema}
    handler = {"name": "h", "input": {"jsonSchema": schema}}
    data = {"minProtocolVersion": 5, "maxProtocolVersion": 6,
            "services": [{"name": "S", "ty": "SERVICE", "handlers": [handler]}]}  # fmt: skip
    with pytest.raises(ManifestError, match="nested more than 128 levels"):
        Manifest.from_json(data)


@pytest.mark.parametrize("digits", ["²", "٦", "06", "", "6 "])
def test_an_invocation_content_type_with_odd_digits_names_no_version(digits: str) -> None:
    assert parse_invocation_content_type(f"application/vnd.restate.invocation.v{digits}") is None
