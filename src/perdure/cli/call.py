"""``perdure call SERVICE/[KEY/]HANDLER [JSON]``: invoke a handler through the ingress HTTP API.

A call waits for the handler's result and prints it; ``--send`` (with ``--delay``) only enqueues
the invocation and prints its id. The ingress is ``--ingress``, else ``$PERDURE_INGRESS_URL``,
else the ``ingress_endpoint`` the admin API's ``/version`` reports, else localhost:8080 -- so one
``--admin`` (or ``PERDURE_ADMIN_URL``) is enough to reach both APIs of a server.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx

from perdure.cli.admin_client import AdminClient, CliError, admin_token, admin_url
from perdure.cli.common import management_flags
from perdure.cli.render import Output
from perdure.cli.state import parse_json_argument

DEFAULT_INGRESS = "http://localhost:8080"


def add_parser(sub: Any) -> None:
    parser = sub.add_parser(
        "call",
        parents=[management_flags()],
        help="call a handler (or --send to enqueue it) and print the result",
    )
    parser.add_argument(
        "target", metavar="SERVICE/[KEY/]HANDLER", help="e.g. Greeter/greet or Counter/ann/add"
    )
    parser.add_argument("body", metavar="JSON", nargs="?", help="the handler's input as JSON")
    parser.add_argument("--send", action="store_true", help="enqueue; print the invocation id")
    parser.add_argument("--delay", help="with --send: run it after this long, e.g. 10s or 1h")
    parser.add_argument("--idempotency-key", metavar="K", help="run at most once for this key")
    parser.add_argument(
        "--header", action="append", default=[], metavar="K:V",
        help="a header the handler sees (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--ingress",
        metavar="URL",
        help="ingress API (default: $PERDURE_INGRESS_URL, else what the admin API reports, "
        f"else {DEFAULT_INGRESS})",
    )
    parser.add_argument("--timeout", type=float, help="give up after this many seconds (none)")
    parser.add_argument(
        "--ingress-token",
        metavar="TOKEN",
        help="the ingress's bearer token (default: $PERDURE_INGRESS_TOKEN)",
    )


def main(args: argparse.Namespace, out: Any) -> int:
    output = Output(out, as_json=args.json)
    try:
        return _call(args, output)
    except CliError as exc:
        print(f"perdure call: {exc.message}", file=sys.stderr)
        return 1


# -- the request ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    service: str
    key: str | None
    handler: str

    @classmethod
    def parse(cls, text: str) -> Target:
        parts = text.strip("/").split("/")
        if len(parts) == 2 and all(parts):
            return cls(parts[0], None, parts[1])
        if len(parts) == 3 and parts[0] and parts[2]:
            return cls(parts[0], parts[1], parts[2])
        raise CliError(
            f"bad target {text!r}: expected SERVICE/HANDLER (e.g. Greeter/greet) or "
            "OBJECT/KEY/HANDLER (e.g. Counter/ann/add)"
        )

    def path(self) -> str:
        key = f"/{quote(self.key, safe='')}" if self.key is not None else ""
        return f"/{self.service}{key}/{self.handler}"

    def __str__(self) -> str:
        return "/".join(p for p in (self.service, self.key, self.handler) if p is not None)


def ingress_url(given: str | None, admin: str | None, token: str | None = None) -> str:
    """--ingress, $PERDURE_INGRESS_URL, the admin's ``ingress_endpoint``, or the default."""
    url = given or os.environ.get("PERDURE_INGRESS_URL")
    if not url:
        with AdminClient(admin_url(admin), timeout=5.0, token=token) as client:
            try:
                url = client.version().get("ingress_endpoint")
            except CliError:  # no admin API to ask: the default it is
                url = None
    return str(url or DEFAULT_INGRESS).rstrip("/")


def _headers(args: argparse.Namespace) -> dict[str, str]:
    headers: dict[str, str] = {}
    for header in args.header:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise CliError(f"--header {header!r}: expected NAME:VALUE, e.g. x-user:ann")
        headers[name.strip()] = value.strip()
    if args.idempotency_key is not None:
        headers["idempotency-key"] = args.idempotency_key
    token = args.ingress_token or os.environ.get("PERDURE_INGRESS_TOKEN")
    if token:
        headers["authorization"] = f"Bearer {token}"
    return headers


def _call(args: argparse.Namespace, output: Output) -> int:
    target = Target.parse(args.target)
    if args.delay and not args.send:
        raise CliError("--delay needs --send (a delayed invocation cannot be waited for here)")
    headers = _headers(args)
    content: bytes | None = None
    if args.body is not None:
        value = parse_json_argument(args.body)
        content = json.dumps(value, ensure_ascii=False).encode()
        headers["content-type"] = "application/json"
    base = ingress_url(args.ingress, args.admin, admin_token(args.token))
    path = target.path() + ("/send" if args.send else "")
    params = {"delay": args.delay} if args.delay else None
    timeout = httpx.Timeout(args.timeout, connect=min(args.timeout or 10.0, 10.0))
    try:
        with httpx.Client(timeout=timeout) as http:
            resp = http.post(base + path, content=content, headers=headers, params=params)
    except httpx.TimeoutException:
        raise CliError(f"no answer from {base} within {args.timeout}s (--timeout)") from None
    except httpx.TransportError as exc:
        raise CliError(
            f"cannot reach the ingress at {base} ({exc.__class__.__name__}). Is a server "
            "running? Start one with `perdure server` (or `perdure dev`), or pass --ingress URL "
            "(or set PERDURE_INGRESS_URL)"
        ) from None
    invocation_id = resp.headers.get("x-restate-id")
    if resp.status_code >= 400:
        return _failed(resp, target, invocation_id, output)
    if args.send:
        return _accepted(resp, output)
    if output.as_json:
        output.json({"status": "succeeded", "invocation_id": invocation_id,
                     **_output_field(resp.content)})  # fmt: skip
    elif output.terminal:
        _pretty(resp.content, output)
    elif resp.content:
        output.out.write(resp.content.decode("utf-8", errors="replace").rstrip("\n") + "\n")
    return 0


# -- the answer -----------------------------------------------------------------------------------


def _output_field(body: bytes) -> dict[str, Any]:
    """``output`` as JSON when the body is JSON, as text when UTF-8, else ``output_base64``."""
    if not body:
        return {"output": None}
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return {"output_base64": base64.b64encode(body).decode()}
    try:
        return {"output": json.loads(text)}
    except ValueError:
        return {"output": text}


def _pretty(body: bytes, output: Output) -> None:
    if not body:
        output.markup("[dim](no output)[/]")
        return
    from rich.json import JSON  # noqa: PLC0415

    try:
        output.console.print(JSON(body.decode("utf-8")))
    except (UnicodeDecodeError, ValueError):
        output.line(body.decode("utf-8", errors="replace"))


def _accepted(resp: httpx.Response, output: Output) -> int:
    body = resp.json()
    invocation_id = body.get("invocationId") or resp.headers.get("x-restate-id")
    previously = body.get("status") == "PreviouslyAccepted"
    execution_time = body.get("executionTime")
    if output.as_json:
        shape: dict[str, Any] = {
            "status": "previously_accepted" if previously else "accepted",
            "invocation_id": invocation_id,
            "output": None,
        }
        if execution_time:
            shape["execution_time"] = execution_time
        output.json(shape)
        return 0
    notes = []
    if execution_time:
        notes.append(f"runs at {execution_time}")
    if previously:
        notes.append("previously accepted: the same invocation as before")
    output.line(invocation_id + (f"  ({'; '.join(notes)})" if notes else ""))
    return 0


def _failed(resp: httpx.Response, target: Target, invocation_id: str | None,
            output: Output) -> int:  # fmt: skip
    try:
        body = resp.json()
    except ValueError:
        body = None
    body = body if isinstance(body, dict) else {}
    code = body.get("code", resp.status_code)
    message = str(body.get("message") or resp.text or resp.reason_phrase)
    source = resp.headers.get("x-restate-error-source") or body.get("source")
    if output.as_json:
        output.json({"status": "failed", "invocation_id": invocation_id, "output": None,
                     "error": {"code": code, "message": message, "source": source}})  # fmt: skip
    if source == "invocation":
        print(f"perdure call: {target} failed with a terminal error [{code}]: {message}",
              file=sys.stderr)  # fmt: skip
        return 1
    hint = ""
    if resp.status_code == 404:
        hint = (
            f"; `perdure services list` shows the registered services and "
            f"`perdure services describe {target.service}` their handlers"
        )
    message = message.rstrip(".") if hint else message
    print(f"perdure call: the ingress refused {target} [{code}]: {message}{hint}",
          file=sys.stderr)  # fmt: skip
    return 1
