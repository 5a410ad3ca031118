"""Service and handler options travel through discovery into the server's admin API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.scenarios.support import call

pytestmark = pytest.mark.interop


def test_options_reach_the_admin_api(server: Any) -> None:
    service = httpx.get(f"{server.admin}/services/Configured", timeout=30).json()
    assert service["documentation"] == "a configured service"
    # Request/response deployments have no inactivity timeout: the server reports 0s for them.
    request_response = getattr(server, "mode", "") == "official-http1.1"
    assert service["inactivity_timeout"] == ("0s" if request_response else "1m 30s")
    assert service["abort_timeout"] == "5m"
    assert service["idempotency_retention"] == "2h"
    assert service["journal_retention"] == "3h"
    assert service["retry_policy"] == {
        "initial_interval": "250ms",
        "exponentiation_factor": 3.0,
        "max_attempts": 7,
        "max_interval": "20s",
        "on_max_attempts": "Kill",
    }
    (hidden,) = service["handlers"]
    assert hidden["public"] is False
    assert hidden.get("inactivity_timeout") == (None if request_response else "45s")
    assert hidden["documentation"] == "Only other handlers may call this one."
    assert call(server, "Configured/hidden").status_code == 400  # ingress-private
