"""Request identity v1: the server signs every request to a deployment, the deployment verifies.

Proven both ways with real processes: the official restate-server signs and a perdure-SDK
deployment verifies; ``perdure server`` signs and an official-SDK (restate-sdk) deployment
verifies. Unsigned and forged requests to a verifying perdure deployment get 401 and run nothing.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from perdure.cli import main
from perdure.protocol import InvocationId, encode_messages
from perdure.protocol import messages as m
from perdure.protocol.identity import (
    IdentityError,
    SigningKey,
    Verifier,
    b58decode,
    b58encode,
    key_id,
    protocol_path,
)
from tests.security import HTTP
from tests.support.official import RestateServer, serve_asgi
from tests.support.perdure_server import PerdureServer

V6 = "application/vnd.restate.invocation.v6"

# Restate's own test vector (crates/service-client, request_identity/v1.rs): this PKCS#8 key's
# public half is written publickeyv1_AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY.
RESTATE_TEST_KEY = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIPe++4ZTPQDF81otpoU/mOGHC2vOAVp9WbiCblvn3nXO
-----END PRIVATE KEY-----
"""


def new_key(path: Path) -> str:
    """Write a fresh Ed25519 PKCS#8 PEM key to ``path``; return its ``publickeyv1_`` id."""
    private = Ed25519PrivateKey.generate()
    path.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return key_id(private.public_key())


# -- the format ------------------------------------------------------------------------------------


def test_key_ids_are_written_as_restate_writes_them() -> None:
    key = SigningKey.from_pem(RESTATE_TEST_KEY)
    assert key.kid == "publickeyv1_AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY"
    assert b58decode(b58encode(b"\0\0\x01\xff")) == b"\0\0\x01\xff"
    assert protocol_path("/prefix/invoke/Greeter/greet") == "/invoke/Greeter/greet"
    assert protocol_path("/discover") == "/discover"


def test_a_signature_holds_only_for_its_path_key_and_time() -> None:
    key = SigningKey.from_pem(RESTATE_TEST_KEY)
    verifier = Verifier.of([key.kid])
    now = int(time.time())
    good = dict(key.headers("/invoke/Counter/add", "ann", now))
    verifier.verify(good, "/invoke/Counter/add", now)

    other = SigningKey(Ed25519PrivateKey.generate())
    header, _, signature = good["x-restate-jwt-v1"].split(".")
    other_claims = other.token("/invoke/Counter/reset", None, now).split(".")[1]
    refused = {
        "another path": (good, "/invoke/Counter/reset", now),
        "expired": (good, "/invoke/Counter/add", now + 61),
        "not yet valid": (good, "/invoke/Counter/add", now - 61),
        "unsigned": ({}, "/invoke/Counter/add", now),
        "another scheme": ({**good, "x-restate-signature-scheme": "unsigned"}, "/discover", now),
        "no token": ({"x-restate-signature-scheme": "v1"}, "/invoke/Counter/add", now),
        "garbage": ({**good, "x-restate-jwt-v1": "a.b.c"}, "/invoke/Counter/add", now),
        "another key": (dict(other.headers("/discover", None, now)), "/discover", now),
        "claims swapped in": (
            {**good, "x-restate-jwt-v1": f"{header}.{other_claims}.{signature}"},
            "/invoke/Counter/reset",
            now,
        ),
    }
    for case, (headers, path, when) in refused.items():
        try:
            verifier.verify(headers, path, when)
        except IdentityError:
            continue
        pytest.fail(f"{case}: accepted")


@settings(max_examples=300, deadline=None)
@given(junk=st.text(), at=st.integers(0, 400), key_text=st.text())
def test_mangled_tokens_and_keys_only_raise_identity_errors(
    junk: str, at: int, key_text: str
) -> None:
    key = SigningKey.from_pem(RESTATE_TEST_KEY)
    token = key.token("/discover", None, 1000)
    mangled = token[:at] + junk + token[at:]
    headers = {"x-restate-signature-scheme": "v1", "x-restate-jwt-v1": mangled}
    try:
        Verifier.of([key.kid]).verify(headers, "/discover", 1000)
    except IdentityError:
        assert junk  # only a mangled token is refused
    for text in (key_text, "publickeyv1_" + key_text):
        with contextlib.suppress(IdentityError):
            Verifier.of([text])


def test_bad_keys_are_refused_with_a_reason() -> None:
    with pytest.raises(IdentityError, match="publickeyv1_"):
        Verifier.of(["AfQwmwfgEZhrWpvv8N52SHpRtZqGGaFr4AZN6qtYWSiY"])
    with pytest.raises(IdentityError, match="32 bytes"):
        Verifier.of(["publickeyv1_AfQwmwfg"])
    with pytest.raises(IdentityError, match="Ed25519"):
        SigningKey.from_pem(_rsa_pem())


def _rsa_pem() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_perdure_server_refuses_an_unusable_key_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    flag = "--request-identity-private-key-pem-file"
    assert main(["server", flag, str(tmp_path / "missing.pem")]) == 2
    assert "cannot read" in capsys.readouterr().err
    (tmp_path / "rsa.pem").write_bytes(_rsa_pem())
    assert main(["server", flag, str(tmp_path / "rsa.pem")]) == 2
    assert "not an Ed25519 key" in capsys.readouterr().err


# -- the official server signs, a perdure deployment verifies -------------------------------------


@pytest.fixture
def runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "runs.txt"
    path.write_text("")
    monkeypatch.setenv("PERDURE_TEST_RUNS", str(path))
    return path


@pytest.mark.interop
def test_official_server_signs_and_the_perdure_sdk_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: Path
) -> None:
    kid = new_key(tmp_path / "identity.pem")
    monkeypatch.setenv("PERDURE_TEST_IDENTITY_KEY", kid)
    config = f'request-identity-private-key-pem-file = "{tmp_path / "identity.pem"}"'
    with (
        RestateServer.start(tmp_path, extra_config=config) as restate,
        serve_asgi("tests.security.perdure_services:app", tmp_path) as url,
    ):
        restate.register(url)
        assert HTTP.post(f"{restate.ingress}/Greeter/greet", json="Ann").json() == "Hello Ann"
        assert HTTP.post(f"{restate.ingress}/Counter/k%2F1/add", json=2).json() == 2
        assert HTTP.post(f"{restate.ingress}/Counter/k%2F1/add", json=3).json() == 5
        assert runs.read_text().splitlines() == ["greet Ann", "add k/1 2", "add k/1 3"]
        _assert_unsigned_and_forged_requests_are_refused(url, tmp_path, runs)


def _assert_unsigned_and_forged_requests_are_refused(url: str, tmp: Path, runs: Path) -> None:
    before = runs.read_text()
    forger = SigningKey.from_pem(_pem_of(Ed25519PrivateKey.generate()))
    now = int(time.time())
    inv = InvocationId.new()
    # An attempt that makes up the object's state: the total is a million.
    made_up = encode_messages(
        [
            m.StartMessage(
                id=inv.to_bytes(),
                debug_id=str(inv),
                known_entries=1,
                key="k/1",
                state_map=[m.StateEntry(key=b"total", value=b"1000000")],
            ),
            m.InputCommand(value=m.Value(content=b"1")),
        ]
    )
    with httpx.Client(timeout=10.0) as http:
        assert http.get(f"{url}/discover").status_code == 401
        assert http.get(f"{url}/health").status_code == 200
        for headers in (
            {},
            dict(forger.headers("/invoke/Counter/add", "k/1", now)),
            {"x-restate-signature-scheme": "unsigned"},
        ):
            resp = http.post(
                f"{url}/invoke/Counter/add",
                content=made_up,
                headers={"content-type": V6, **headers},
            )
            assert resp.status_code == 401, resp.text
            assert "request identity" in resp.text
    assert runs.read_text() == before  # nothing ran


def _pem_of(private: Ed25519PrivateKey) -> bytes:
    return private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


# -- perdure's server signs, an official-SDK deployment verifies ----------------------------------


@pytest.mark.interop
def test_perdure_server_signs_and_the_official_sdk_verifies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kid = new_key(tmp_path / "identity.pem")
    monkeypatch.setenv("PERDURE_TEST_IDENTITY_KEY", kid)
    flags = ["--request-identity-private-key-pem-file", str(tmp_path / "identity.pem")]
    with (
        PerdureServer.start(tmp_path, args=flags) as server,
        serve_asgi("tests.security.official_services:app", tmp_path) as url,
    ):
        # The official SDK does enforce its keys: an unsigned discovery is refused.
        assert HTTP.get(f"{url}/discover", timeout=10.0).status_code == 401
        server.register(url)  # discovery, signed
        assert HTTP.post(f"{server.ingress}/Greeter/greet", json="Bo").json() == "Hello Bo"
        assert HTTP.post(f"{server.ingress}/Counter/a%20b/add", json=2).json() == 2
        assert HTTP.post(f"{server.ingress}/Counter/a%20b/add", json=5).json() == 7  # sub: key
        server.register(url, use_http_11=True)  # HTTP/1.1 attempts are signed too
        assert HTTP.post(f"{server.ingress}/Counter/a%20b/add", json=1).json() == 8


@pytest.mark.interop
def test_perdure_server_and_sdk_agree_through_the_environment_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, runs: Path
) -> None:
    kid = new_key(tmp_path / "identity.pem")
    monkeypatch.setenv("PERDURE_TEST_IDENTITY_KEY", kid)
    monkeypatch.setenv(
        "PERDURE_REQUEST_IDENTITY_PRIVATE_KEY_PEM_FILE", str(tmp_path / "identity.pem")
    )
    with (
        PerdureServer.start(tmp_path) as server,
        serve_asgi("tests.security.perdure_services:app", tmp_path) as url,
    ):
        server.register(url)
        assert HTTP.post(f"{server.ingress}/Counter/c/add", json=4).json() == 4
        assert runs.read_text().splitlines() == ["add c 4"]
