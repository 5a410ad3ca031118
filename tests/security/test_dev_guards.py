"""``perdure dev`` takes the server's security flags: its APIs have the same guards."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.dev.support import REPO, DevProcess
from tests.security import HTTP

KEY = "publickeyv1_AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY"


def test_perdure_dev_guards_its_apis_like_the_server(tmp_path: Path) -> None:
    (tmp_path / "ingress.token").write_text("dev-ingress-token")
    args = ["--ingress-token-file", str(tmp_path / "ingress.token")]
    with DevProcess.start("tests/security/open_services.py", tmp_path, cwd=REPO, args=args) as dev:
        assert dev.call("Greeter/greet", "Ann").status_code == 401
        ok = HTTP.post(
            f"{dev.ingress}/Greeter/greet",
            json="Ann",
            headers={"authorization": "Bearer dev-ingress-token"},
        )
        assert ok.json() == "Hello Ann"
        rebound = HTTP.get(f"{dev.admin}/deployments", headers={"host": "evil.example"})
        assert rebound.status_code == 403
        form = HTTP.post(
            f"{dev.admin}/deployments", content=b"{}", headers={"content-type": "text/plain"}
        )
        assert form.status_code == 415


def test_perdure_dev_serves_an_app_that_verifies_identity(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from perdure.sdk import endpoint
    from perdure.server.invoker import local

    # In-process requests carry a scope extension no HTTP server sets; the app trusts only that.
    assert endpoint.IN_PROCESS == local.IN_PROCESS
    monkeypatch.setenv("PERDURE_TEST_IDENTITY_KEY", KEY)
    monkeypatch.setenv("PERDURE_TEST_RUNS", str(tmp_path / "runs.txt"))
    with DevProcess.start("tests/security/perdure_services.py", tmp_path, cwd=REPO) as dev:
        assert dev.call("Counter/ann/add", 2).json() == 2
    assert (tmp_path / "runs.txt").read_text() == "add ann 2\n"
