"""Ready-to-paste ``curl`` lines for every handler an app serves (what ``perdure dev`` prints).

Objects and workflows get ``KEY`` as the key (a real key, so the line works as pasted). A handler
that takes input gets an example body made from its input JSON schema: property names for
strings, 1 for numbers, the first choice of an enum or a union; one without a schema (``Any``)
gets no body (a GET: the ingress takes GET and POST for calls).
"""

from __future__ import annotations

import json
import shlex
from typing import Any
from urllib.parse import quote

from perdure.protocol.manifest import ServiceType
from perdure.sdk.definitions import HandlerDef
from perdure.sdk.endpoint import App
from perdure.sdk.serde import BYTES_CONTENT_TYPE

KEY_PLACEHOLDER = "KEY"
_MAX_DEPTH = 6


def curl_lines(app: App, ingress: str) -> list[str]:
    """One line per handler reachable through the ingress, in definition order."""
    lines = []
    for service in app.services.values():
        if service.options.ingress_private:
            continue
        for handler in service.handlers.values():
            if handler.options.ingress_private:
                continue
            lines.append(curl_line(handler, ingress))
    return lines


def curl_line(handler: HandlerDef, ingress: str) -> str:
    parts = [quote(handler.service_name, safe="")]
    if handler.service_type is not ServiceType.SERVICE:
        parts.append(KEY_PLACEHOLDER)
    parts.append(quote(handler.name, safe=""))
    url = f"{ingress.rstrip('/')}/{'/'.join(parts)}"
    line = f"curl {url}"
    if not handler.takes_input:
        return line  # the ingress takes GET as well as POST for calls
    if handler.input_serde.content_type == BYTES_CONTENT_TYPE:
        return line + " -H 'content-type: application/octet-stream' --data-binary 'bytes'"
    schema = handler.input_serde.json_schema()
    if schema is None:
        return line
    body = json.dumps(example_value(schema), separators=(", ", ": "))
    return f"{line} --json {shlex.quote(body)}"


def example_value(schema: Any, name: str | None = None) -> Any:
    """A plausible JSON value that matches ``schema`` (the subset perdure's SDK, Pydantic and
    msgspec produce: types, properties, items, enum/const, anyOf/oneOf, $ref into $defs)."""
    defs = schema.get("$defs", {}) if isinstance(schema, dict) else {}
    return _example(schema, name, defs, 0)


def _example(schema: Any, name: str | None, defs: dict[str, Any], depth: int) -> Any:
    if not isinstance(schema, dict) or depth > _MAX_DEPTH:
        return None
    if "$ref" in schema:
        target = str(schema["$ref"]).rsplit("/", 1)[-1]
        return _example(defs.get(target), name, defs, depth + 1)
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    for combinator in ("anyOf", "oneOf", "allOf"):
        choices = [c for c in schema.get(combinator, []) if c.get("type") != "null"]
        if choices:
            return _example(choices[0], name, defs, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    match kind:
        case "string":
            return name or "text"
        case "integer" | "number":
            return 1
        case "boolean":
            return True
        case "array":
            if "prefixItems" in schema:
                return [_example(s, name, defs, depth + 1) for s in schema["prefixItems"]]
            return [_example(schema.get("items", {}), name, defs, depth + 1)]
        case "object":
            props = schema.get("properties", {})
            if not props and isinstance(schema.get("additionalProperties"), dict):
                return {"key": _example(schema["additionalProperties"], "key", defs, depth + 1)}
            return {k: _example(v, k, defs, depth + 1) for k, v in props.items()}
        case "null":
            return None
    return None
