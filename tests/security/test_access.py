"""Who may use perdure's HTTP APIs, checked against a real ``perdure server``: bearer tokens on the
admin API and the ingress (sent by the CLI and perdure.client), and the defences of a developer's
localhost server against web pages (JSON-only writes, Host checks against DNS rebinding, Origin
checks, no CORS)."""

from __future__ import annotations

import argparse
import io
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from perdure.cli import main
from perdure.cli.server_flags import FlagError, protection
from perdure.client import Client, ClientError
from perdure.server.api.access import Access
from tests.security import HTTP
from tests.support.official import serve_asgi
from tests.support.perdure_server import PerdureServer

ADMIN_TOKEN = "admin-7f3c9a1e5b2d4c6e8a0b"
INGRESS_TOKEN = "ingress-2b4d6f8a0c1e3g5h7j9k"
SERVICES = "tests.security.open_services:app"


@dataclass
class Running:
    server: PerdureServer
    deployment: str

    @property
    def admin(self) -> str:
        return self.server.admin

    @property
    def ingress(self) -> str:
        return self.server.ingress


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def tokens(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A server whose admin API and ingress each need a token, with a deployment registered."""
    tmp = tmp_path_factory.mktemp("tokens")
    (tmp / "admin.token").write_text(ADMIN_TOKEN + "\n")
    (tmp / "ingress.token").write_text(INGRESS_TOKEN)
    flags = ["--admin-token-file", str(tmp / "admin.token"),
             "--ingress-token-file", str(tmp / "ingress.token")]  # fmt: skip
    with PerdureServer.start(tmp, args=flags) as server, serve_asgi(SERVICES, tmp) as url:
        server.http.headers.update(_bearer(ADMIN_TOKEN))
        server.register(url)
        yield Running(server, url)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    """A server without tokens, as a developer runs one on localhost."""
    tmp = tmp_path_factory.mktemp("open")
    with PerdureServer.start(tmp) as server, serve_asgi(SERVICES, tmp) as url:
        server.register(url)
        yield Running(server, url)


# -- bearer tokens ---------------------------------------------------------------------------------


def test_health_stays_open_without_a_token(tokens: Running) -> None:
    assert HTTP.get(tokens.admin + "/health").status_code == 200
    assert HTTP.get(tokens.ingress + "/restate/health").status_code == 200


def test_the_admin_api_needs_its_token(tokens: Running) -> None:
    missing = HTTP.get(tokens.admin + "/services")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"] == "Bearer"
    assert "--token" in missing.json()["message"]
    wrong = "x" * len(ADMIN_TOKEN)
    assert HTTP.get(tokens.admin + "/services", headers=_bearer(wrong)).status_code == 401
    ingress_one = HTTP.get(tokens.admin + "/services", headers=_bearer(INGRESS_TOKEN))
    assert ingress_one.status_code == 401
    right = HTTP.get(tokens.admin + "/services", headers=_bearer(ADMIN_TOKEN))
    assert right.status_code == 200
    assert [s["name"] for s in right.json()["services"]] == ["Greeter"]
    refused = HTTP.post(tokens.admin + "/deployments", json={"uri": "http://127.0.0.1:1"})
    assert refused.status_code == 401


def test_the_ingress_needs_its_token(tokens: Running) -> None:
    assert HTTP.post(tokens.ingress + "/Greeter/greet", json="Ann").status_code == 401
    with_admin_token = HTTP.post(
        tokens.ingress + "/Greeter/greet", json="Ann", headers=_bearer(ADMIN_TOKEN)
    )
    assert with_admin_token.status_code == 401
    ok = HTTP.post(tokens.ingress + "/Greeter/greet", json="Ann", headers=_bearer(INGRESS_TOKEN))
    assert ok.status_code == 200 and ok.json() == "Hello Ann"


def test_the_token_never_reaches_a_handler(tokens: Running) -> None:
    resp = HTTP.post(
        tokens.ingress + "/Greeter/headers", headers={**_bearer(INGRESS_TOKEN), "x-user": "ann"}
    )
    assert resp.status_code == 200
    assert "x-user" in resp.json() and "authorization" not in resp.json()


def test_the_web_ui_files_load_without_a_token(tokens: Running) -> None:
    # The UI's static files are not behind the token (its API calls are); no UI yet: 404.
    assert HTTP.get(tokens.admin + "/ui/index.html").status_code != 401


def test_the_cli_sends_the_admin_token(
    tokens: Running, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PERDURE_ADMIN_TOKEN", raising=False)
    monkeypatch.delenv("PERDURE_INGRESS_TOKEN", raising=False)
    out = io.StringIO()
    assert main(["services", "list", "--admin", tokens.admin], out=out) == 1
    assert "bearer token" in capsys.readouterr().err
    assert main(["services", "list", "--admin", tokens.admin, "--token", ADMIN_TOKEN], out=out) == 0
    assert "Greeter" in out.getvalue()
    monkeypatch.setenv("PERDURE_ADMIN_TOKEN", ADMIN_TOKEN)
    out = io.StringIO()
    assert main(["deployments", "list", "--admin", tokens.admin], out=out) == 0
    assert tokens.deployment in out.getvalue()


def test_perdure_call_sends_the_ingress_token(
    tokens: Running, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("PERDURE_INGRESS_TOKEN", raising=False)
    monkeypatch.setenv("PERDURE_ADMIN_TOKEN", ADMIN_TOKEN)
    call = ["call", "Greeter/greet", '"Bo"', "--admin", tokens.admin]
    assert main(call, out=io.StringIO()) == 1
    capsys.readouterr()
    out = io.StringIO()
    assert main([*call, "--ingress-token", INGRESS_TOKEN], out=out) == 0
    assert "Hello Bo" in out.getvalue()
    monkeypatch.setenv("PERDURE_INGRESS_TOKEN", INGRESS_TOKEN)
    out = io.StringIO()
    assert main([*call, "--ingress", tokens.ingress], out=out) == 0
    assert "Hello Bo" in out.getvalue()


def test_the_client_sends_the_ingress_token(
    tokens: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERDURE_INGRESS_TOKEN", raising=False)
    with Client(tokens.ingress) as client, pytest.raises(ClientError) as refused:
        client.service("Greeter", "greet").request("Cy")
    assert refused.value.code == 401
    with Client(tokens.ingress, token=INGRESS_TOKEN) as client:
        assert client.service("Greeter", "greet").request("Cy") == "Hello Cy"
    monkeypatch.setenv("PERDURE_INGRESS_TOKEN", INGRESS_TOKEN)
    with Client(tokens.ingress) as client:
        assert client.service("Greeter", "greet").request("Di") == "Hello Di"


def test_unusable_token_files_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "empty").write_text("\n")
    assert main(["server", "--admin-token-file", str(tmp_path / "empty")]) == 2
    assert "must hold one token" in capsys.readouterr().err
    assert main(["server", "--ingress-token-file", str(tmp_path / "missing")]) == 2
    assert "cannot read" in capsys.readouterr().err


# -- a web page against a developer's localhost server ---------------------------------------------


def _deployments(running: Running) -> list[str]:
    resp = HTTP.get(running.admin + "/deployments")
    return [d["uri"] for d in resp.json()["deployments"]]


def test_a_web_page_cannot_register_a_deployment(open_server: Running) -> None:
    before = _deployments(open_server)
    # What a <form> or a no-preflight fetch can send: text/plain, urlencoded, multipart, nothing.
    body = b'{"uri": "http://127.0.0.1:1", "force": true}'
    for content_type in ("text/plain", "application/x-www-form-urlencoded", None):
        headers = {"content-type": content_type} if content_type else {}
        resp = HTTP.post(open_server.admin + "/deployments", content=body, headers=headers)
        assert resp.status_code == 415, resp.text
        assert "application/json" in resp.json()["message"]
    assert _deployments(open_server) == before


def test_a_foreign_host_is_refused_against_dns_rebinding(open_server: Running) -> None:
    port = open_server.admin.rsplit(":", 1)[1]
    for api, path in ((open_server.admin, "/deployments"), (open_server.ingress, "/Greeter/greet")):
        method = "GET" if path == "/deployments" else "POST"
        resp = HTTP.request(
            method, api + path, json="Ann", headers={"host": f"evil.example:{port}"}
        )
        assert resp.status_code == 403
        message = resp.json()["message"]
        assert "evil.example" in message and "DNS rebinding" in message
        assert "--allowed-host" in message
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "app.localhost"):
        assert HTTP.get(open_server.admin + "/deployments", headers={"host": host}).is_success


def test_a_page_of_another_origin_is_refused(open_server: Running) -> None:
    evil = {"origin": "http://evil.example"}
    resp = HTTP.post(open_server.ingress + "/Greeter/greet", json="Ann", headers=evil)
    assert resp.status_code == 403 and "origin" in resp.json()["message"]
    resp = HTTP.post(
        open_server.admin + "/deployments", json={"uri": "http://127.0.0.1:1"}, headers=evil
    )
    assert resp.status_code == 403
    sandboxed = HTTP.get(open_server.admin + "/deployments", headers={"origin": "null"})
    assert sandboxed.status_code == 403
    # The server's own pages (the web UI) and local tools may call it.
    own = {"origin": open_server.admin}
    assert HTTP.get(open_server.admin + "/deployments", headers=own).is_success
    local = {"origin": "http://localhost:3000"}
    resp = HTTP.post(open_server.ingress + "/Greeter/greet", json="Ann", headers=local)
    assert resp.json() == "Hello Ann"


def test_no_cors_is_granted(open_server: Running) -> None:
    preflight = HTTP.options(
        open_server.admin + "/deployments",
        headers={
            "origin": "http://localhost:3000",
            "access-control-request-method": "DELETE",
            "access-control-request-headers": "content-type",
        },
    )
    answers = [
        preflight,
        HTTP.get(open_server.admin + "/deployments", headers={"origin": open_server.admin}),
        HTTP.post(open_server.ingress + "/Greeter/greet", json="Ann"),
    ]
    for resp in answers:
        assert not [h for h in resp.headers if h.lower().startswith("access-control-")]


def test_allowed_hosts_come_from_the_flag_or_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def parsed(*argv: str) -> tuple[str, ...]:
        parser = argparse.ArgumentParser()
        from perdure.cli.server_flags import add_server_flags

        add_server_flags(parser)
        return protection(parser.parse_args(list(argv))).allowed_hosts

    monkeypatch.setenv("PERDURE_ALLOWED_HOSTS", "perdure.internal, box")
    assert parsed() == ("perdure.internal", "box")
    assert parsed("--allowed-host", "only.example") == ("only.example",)
    access = Access("127.0.0.1:9070", allowed_hosts=("perdure.internal",))
    assert access.host_allowed("perdure.internal:9070")
    assert access.host_allowed("10.1.2.3:9070")  # an address cannot be rebound
    assert not access.host_allowed("perdure.internal.evil.example")
    assert Access("127.0.0.1:9070", allowed_hosts=("*",)).host_allowed("anything.example")
    monkeypatch.setenv("PERDURE_ADMIN_TOKEN_FILE", "/nonexistent/token")
    with pytest.raises(FlagError, match="--admin-token-file"):
        parsed()
