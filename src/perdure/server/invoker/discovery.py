"""Discovery: ``GET {uri}/discover`` and the checks the official server makes on the answer."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from perdure.protocol import Manifest, ManifestError
from perdure.protocol.identity import SigningKey, sign
from perdure.protocol.versions import MANIFEST_ACCEPT, parse_manifest_content_type
from perdure.server.invoker.h2 import H2Error, H2Pool
from perdure.server.invoker.local import LOCAL_SCHEME, LocalApps, LocalError, Stream

DISCOVERY_TIMEOUT = 30.0


class DiscoveryError(Exception):
    """Registering the deployment failed; ``status`` is what the admin API answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


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
) -> Discovered:
    url = urlsplit(uri)
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
    try:
        if use_http_11:
            response = await http11.get(
                f"{url.scheme}://{url.netloc}{path}", headers=headers, timeout=DISCOVERY_TIMEOUT
            )
            status, content_type, body = (
                response.status_code,
                response.headers.get("content-type"),
                response.content,
            )
            server = response.headers.get("x-restate-server")
            http_version = "HTTP/1.1"
        else:
            async with asyncio.timeout(DISCOVERY_TIMEOUT):
                stream: Stream
                if url.scheme == LOCAL_SCHEME and local is not None:
                    stream = local.request(url.hostname, "GET", path, headers, end_stream=True)
                else:
                    stream = await pool.request(
                        url.hostname, url.port or 80, "GET", path, headers, end_stream=True
                    )
                status, head = await stream.response()
                chunks = []
                while (chunk := await stream.read()) is not None:
                    chunks.append(chunk)
            body = b"".join(chunks)
            content_type = head.get("content-type")
            server = head.get("x-restate-server")
            http_version = "HTTP/2.0"
    except (OSError, H2Error, LocalError, httpx.HTTPError, TimeoutError) as exc:
        raise DiscoveryError(
            500, f"error when trying to discover the service endpoint {uri}: {exc or type(exc)}"
        ) from None
    if status != 200:
        raise DiscoveryError(
            500 if status >= 500 else 400,
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
