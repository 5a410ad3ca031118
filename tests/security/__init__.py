"""Security: request identity, access checks on the HTTP APIs, /query limits, file permissions."""

import httpx

HTTP = httpx.Client(timeout=30.0, limits=httpx.Limits(max_keepalive_connections=0))
"""The tests' HTTP client: generous timeouts for a loaded CI machine, no keep-alive (each server
under test is short-lived)."""
