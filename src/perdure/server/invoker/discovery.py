"""Discovery: ``GET {uri}/discover`` and the checks the official server makes on the answer."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import h2.exceptions
import httpx

from perdure.protocol import Manifest, ManifestError
from perdure.protocol.identity import SigningKey, sign
from perdure.protocol.versions import MANIFEST_ACCEPT, parse_manifest_content_type
from perdure.server.invoker.h2 import H2Error, H2Pool
from perdure.server.invoker.local import LOCAL_SCHEME, LocalApps, LocalError, Stream
from perdure.server.limits import DISCOVERY_DEADLINE, MAX_MANIFEST_BYTES

_Answer = tuple[int, str | None, bytes, str | None]
"""(status, content-type, body, x-restate-server) of a discovery response."""


class _TooLarge(Exception):
    pass


CALL_FAILED = "META0003"


class DiscoveryError(Exception):
    """Registering the deployment failed; ``status`` is what the admin API answers, ``code``
    the official server's error code for the same failure (``META0003``: the call failed)."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


@dataclass(frozen=True, slots=True)
class Discovered:
    manifest: Manifest
    raw: bytes
    http_version: str
    sdk_version: str | None


async def discover(
    uri: str,
    *,
    use_http_11: bool,
    additional_headers: dict[str, str],
    pool: H2Pool,
    http11: httpx.AsyncClient,
    local: LocalApps | None = None,
    identity: SigningKey | None = None,
    deadline: float = DISCOVERY_DEADLINE,
    max_manifest_bytes: int = MAX_MANIFEST_BYTES,
) -> Discovered:
    """Ask ``uri`` for its manifest; DiscoveryError (4xx, saying what failed) if that fails.

    Bounded: the whole exchange must finish within ``deadline`` seconds, and a manifest larger
    than ``max_manifest_bytes`` is refused as soon as it is known to be (a deployment that drips
    or floods cannot hold a registration or the server's memory).
    """
    if any(c.isspace() or not c.isprintable() for c in uri):
        raise DiscoveryError(400, f"bad uri {uri!r}: it holds whitespace or control characters")
    url = urlsplit(uri)
    try:
        port = url.port
    except ValueError:
        raise DiscoveryError(
            400, f"bad uri {uri!r}: the port is not a number from 0 to 65535"
        ) from None
    if url.scheme == LOCAL_SCHEME and local is not None and url.hostname:
        if local.get(url.hostname) is None:
            raise DiscoveryError(400, f"no in-process app is mounted as {uri}")
    elif url.scheme not in ("http", "https") or not url.hostname:
        raise DiscoveryError(400, f"bad uri {uri!r}: expected http://host:port[/path]")
    path = f"{url.path.rstrip('/')}/discover"
    headers = [("accept", MANIFEST_ACCEPT)] + [
        (k.lower(), v) for k, v in additional_headers.items()
    ]
    headers.extend(sign(identity, "/discover", None, time.time()))
    calling = f"error when calling '{uri}'"
    try:
        async with asyncio.timeout(deadline):
            if use_http_11:
                answer = await _get_http11(
                    http11, f"{url.scheme}://{url.netloc}{path}", headers, max_manifest_bytes
                )
            else:
                answer = await _get_h2(
                    pool, local, url.hostname, port or 80, path, headers, max_manifest_bytes,
                    local_app=url.scheme == LOCAL_SCHEME,
                )  # fmt: skip
    except TimeoutError:
        raise DiscoveryError(
            400,
            f"{calling}: no complete answer to discovery within {deadline:g} s "
            "(is the deployment up, and does it answer GET /discover?)",
            CALL_FAILED,
        ) from None
    except _TooLarge:
        raise DiscoveryError(
            400,
            f"{calling}: the discovery manifest is larger than {max_manifest_bytes} bytes",
            CALL_FAILED,
        ) from None
    except (ConnectionRefusedError, httpx.ConnectError):
        raise DiscoveryError(
            400,
            f"{calling}: cannot connect (is the deployment running, on that host and port?)",
            CALL_FAILED,
        ) from None
    except (OSError, H2Error, LocalError, httpx.HTTPError, httpx.InvalidURL, ValueError,
            h2.exceptions.H2Error) as exc:  # fmt: skip
        hint = (
            ""
            if use_http_11 or url.scheme == LOCAL_SCHEME
            else "; if the deployment serves only HTTP/1.1, register it with use_http_11"
        )
        raise DiscoveryError(400, f"{calling}: {_describe(exc)}{hint}", CALL_FAILED) from None
    status, content_type, body, server = answer
    http_version = "HTTP/1.1" if use_http_11 else "HTTP/2.0"
    if status != 200:
        raise DiscoveryError(
            400,
            f"the deployment {uri} answered discovery with HTTP {status}: "
            f"{body[:200].decode(errors='replace')}",
        )
    if parse_manifest_content_type(content_type) is None:
        raise DiscoveryError(
            400, f"discovery answered with unexpected content-type {content_type!r}"
        )
    try:
        manifest = Manifest.from_bytes(body)
    except ManifestError as exc:
        raise DiscoveryError(400, f"bad discovery manifest: {exc}") from None
    if manifest.protocol_mode is None:
        raise DiscoveryError(400, "bad discovery manifest: protocolMode is missing")
    if not manifest.min_protocol_version <= 6 <= manifest.max_protocol_version:
        raise DiscoveryError(
            400,
            "unsupported service protocol versions: the deployment supports "
            f"[{manifest.min_protocol_version}, {manifest.max_protocol_version}], "
            "perdure speaks 6",
        )
    return Discovered(manifest, body, http_version, server)


async def _get_http11(
    client: httpx.AsyncClient, url: str, headers: list[tuple[str, str]], limit: int
) -> _Answer:
    async with client.stream("GET", url, headers=headers, timeout=None) as response:
        declared = response.headers.get("content-length", "")
        if (
            declared.isascii()
            and declared.isdigit()
            and (len(declared) > 18 or int(declared) > limit)
        ):
            raise _TooLarge
        chunks, size = [], 0
        async for chunk in response.aiter_raw():
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
        return (
            response.status_code,
            response.headers.get("content-type"),
            b"".join(chunks),
            response.headers.get("x-restate-server"),
        )


async def _get_h2(  # noqa: PLR0917
    pool: H2Pool,
    local: LocalApps | None,
    host: str,
    port: int,
    path: str,
    headers: list[tuple[str, str]],
    limit: int,
    *,
    local_app: bool,
) -> _Answer:
    stream: Stream
    if local_app and local is not None:
        stream = local.request(host, "GET", path, headers, end_stream=True)
    else:
        stream = await pool.request(host, port, "GET", path, headers, end_stream=True)
    try:
        status, head = await stream.response()
        chunks, size = [], 0
        while (chunk := await stream.read()) is not None:
            size += len(chunk)
            if size > limit:
                raise _TooLarge
            chunks.append(chunk)
    except BaseException:
        # Too large, timed out or failed: free the stream on the shared connection.
        with contextlib.suppress(Exception):
            stream.reset()
        raise
    return status, head.get("content-type"), b"".join(chunks), head.get("x-restate-server")


def _describe(exc: BaseException) -> str:
    """What failed, in words: the exception's text, else its kind."""
    text = str(exc).strip()
    kind = type(exc).__name__
    if isinstance(exc, httpx.HTTPError) and exc.__cause__ is not None:
        cause = str(exc.__cause__).strip()
        text = f"{text} ({cause})" if cause and cause != text else text
    return f"{kind}: {text}" if text else kind
