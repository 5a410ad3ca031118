"""The admin API shows services, handlers and deployments as the official server does."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.server.conftest import deployed

pytestmark = pytest.mark.interop


def normalized(service: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in service.items() if k != "deployment_id"}
    out["handlers"] = sorted(service["handlers"], key=lambda h: h["name"])
    return out


def admin_views(tmp: Path, *, official: bool) -> dict[str, Any]:
    with deployed(tmp, official=official) as d:
        deployment = d.admin.get("/deployments").json()["deployments"][0]
        missing = d.admin.get("/services/Nope")
        return {
            "services": {
                name: normalized(d.admin.get(f"/v4/services/{name}").json())
                for name in ("Greeter", "Counter", "Signup")
            },
            "deployment_keys": sorted(deployment),
            "deployment_uri": deployment["uri"].replace(d.url, "URL"),
            "protocol": (deployment["protocol_type"], deployment["http_version"]),
            "reregister": d.admin.post("/deployments", json={"uri": d.url}).status_code,
            "missing": (missing.status_code, missing.json()),
            "delete_without_force": d.admin.delete(f"/deployments/{deployment['id']}").status_code,
            "bad_invocation": d.admin.patch("/invocations/nope/cancel").status_code,
            "health": d.admin.get("/health").status_code,
        }


def test_admin_views_match_the_official_server(tmp_path: Path) -> None:
    ours = admin_views(tmp_path / "perdure", official=False)
    theirs = admin_views(tmp_path / "official", official=True)
    assert ours == theirs
