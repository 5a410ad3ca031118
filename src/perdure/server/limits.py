"""The server's limits on what clients and deployments may send, in one place.

Each limit keeps one bad request (or one bad deployment) from stalling or exhausting the server;
docs/operations.md lists them. Values mirror the official server where it has the same limit.
"""

from __future__ import annotations

MAX_REQUEST_BODY = 32 * 1024 * 1024
"""Bytes of an ingress or admin request body (413 beyond); the official default (32 MiB)."""

MAX_MANIFEST_BYTES = 16 * 1024 * 1024
"""Bytes of a discovery manifest; a deployment answering more fails registration (400)."""

DISCOVERY_DEADLINE = 30.0
"""Seconds one discovery may take in total: connect, headers and the whole manifest."""

MAX_LIST_LIMIT = 100_000
"""The largest ``limit`` of ``GET /invocations``."""

MAX_JSON_DEPTH = 512
"""Nesting levels of a JSON request body the admin API and the ingress parse themselves."""
