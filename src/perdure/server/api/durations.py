"""Durations as the HTTP APIs spell them.

Parsing accepts the "friendly" forms (``10s``, ``1h 4m``, ``5 days``, ``60+sec``, ``500ms``),
ISO 8601 (``PT10S``, ``P1DT2H``) and, leniently, a bare integer as milliseconds (what the
official Python client sends). Months and years are rejected, and so is anything longer than
``MAX_DURATION_MS``: times are stored as milliseconds in 64-bit integers, and a retention or
delay that overflows them would fail every transition that uses it. Formatting writes the compact
friendly form the admin API shows (``1d``, ``1m``, ``10m``, ``100ms``, ``1h 30m``).
"""

from __future__ import annotations

import re

_UNITS_MS = {
    "ms": 1, "msec": 1, "msecs": 1, "millis": 1, "millisecond": 1, "milliseconds": 1,
    "s": 1000, "sec": 1000, "secs": 1000, "second": 1000, "seconds": 1000,
    "m": 60_000, "min": 60_000, "mins": 60_000, "minute": 60_000, "minutes": 60_000,
    "h": 3_600_000, "hr": 3_600_000, "hrs": 3_600_000, "hour": 3_600_000, "hours": 3_600_000,
    "d": 86_400_000, "day": 86_400_000, "days": 86_400_000,
    "w": 604_800_000, "week": 604_800_000, "weeks": 604_800_000,
}  # fmt: skip
_FRIENDLY_PART = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]+)\s*,?")
_ISO = re.compile(
    r"^P(?:(?P<w>\d+(?:\.\d+)?)W)?(?:(?P<d>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?(?:(?P<s>\d+(?:\.\d+)?)S)?)?$",
    re.IGNORECASE,
)


MAX_DURATION_MS = 100 * 365 * 86_400_000
"""100 years: longer than any retention, timeout or delay means anything."""


class DurationError(ValueError):
    pass


def parse_duration(text: str) -> int:
    """Milliseconds of a friendly, ISO 8601 or bare-millisecond duration (at most 100 years)."""
    try:
        ms = _parse(text)
    except DurationError:
        raise
    except (ValueError, OverflowError):  # thousands of digits, or a float overflowing to inf
        raise DurationError(
            f"{text.strip()[:40]!r} is longer than the maximum, 36500 days"
        ) from None
    if ms > MAX_DURATION_MS:
        raise DurationError(f"{text.strip()!r} is longer than the maximum, 36500 days")
    return ms


def _parse(text: str) -> int:
    text = text.replace("+", " ").strip()
    if not text:
        raise DurationError("empty duration")
    if text.isascii() and text.isdigit():
        return int(text)
    if text[0] in "pP":
        match = _ISO.match(text)
        if match is None or text.upper() in ("P", "PT"):
            raise DurationError(f"{text!r} is not an ISO 8601 duration (years/months unsupported)")
        scale = {"w": 604_800_000, "d": 86_400_000, "h": 3_600_000, "m": 60_000, "s": 1000}
        return int(sum(float(v) * scale[k] for k, v in match.groupdict().items() if v))
    total = 0.0
    position = 0
    while position < len(text):
        match = _FRIENDLY_PART.match(text, position)
        if match is None:
            raise DurationError(f"{text!r} is not a duration")
        unit = match.group(2).lower()
        if unit not in _UNITS_MS:
            raise DurationError(f"{text!r}: unknown or unsupported unit {match.group(2)!r}")
        total += float(match.group(1)) * _UNITS_MS[unit]
        position = match.end()
    return int(total)


def format_duration(ms: int) -> str:
    """The compact friendly form: ``1d``, ``1h 30m``, ``500ms``, ``0s``."""
    if ms <= 0:
        return "0s"
    parts = []
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        count, ms = divmod(ms, size)
        if count:
            parts.append(f"{count}{unit}")
    if ms:
        parts.append(f"{ms}ms")
    return " ".join(parts)
