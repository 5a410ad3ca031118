"""``perdure dev`` takes the server's security flags: its APIs have the same guards."""

from __future__ import annotations

from pathlib import Path

import httpx

from tests.dev.support import REPO, DevProcess


def test_perdure_dev_guards_its_apis_like_the_server(tmp_path: Path) -> None:
    (tmp_path / "ingress.token").write_text("dev-ingress-token")
    args = ["--ingress-token-file", str(tmp_path / "ingress.token")]
    with DevProcess.start("tests/security/open_services.py", tmp_path, cwd=REPO, args=args) as dev:
        assert dev.call("Greeter/greet", "Ann").status_code == 401
        ok = httpx.post(
            f"{dev.ingress}/Greeter/greet",
            json="Ann",
            headers={"authorization": "Bearer dev-ingress-token"},
        )
        assert ok.json() == "Hello Ann"
        rebound = httpx.get(f"{dev.admin}/deployments", headers={"host": "evil.example"})
        assert rebound.status_code == 403
        form = httpx.post(
            f"{dev.admin}/deployments", content=b"{}", headers={"content-type": "text/plain"}
        )
        assert form.status_code == 415
