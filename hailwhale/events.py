"""
The event model, and parsing of events from every textual input.

An event has a pk path, a set of dimension leaves, metrics (``hits`` included) and the
time it happened.  :func:`from_fields` reads one from named fields (a query string, a
JSON object, keyword arguments); :func:`parse_line` reads one UDP line.
"""

import json
from collections.abc import Mapping
from urllib.parse import parse_qsl

import attrs

from hailwhale import fields
from hailwhale.encoding import Path
from hailwhale.fields import FieldError, Leaves, Limits

@attrs.frozen
class Event:
    pk: Path
    dimensions: Leaves
    metrics: Mapping[str, int | float]
    at: float


def from_fields(raw: Mapping[str, object], now: float, limits: Limits) -> Event:
    """An event from its named fields; ``metric`` and ``dimension`` are aliases."""
    return Event(
        pk=fields.pk(raw.get("pk"), limits),
        dimensions=fields.leaves(_either(raw, "dimensions", "dimension"), limits),
        metrics=fields.metric_values(_either(raw, "metrics", "metric"), limits),
        at=fields.timestamp(raw.get("at"), now, limits),
    )


def _either(raw: Mapping[str, object], name: str, alias: str) -> object:
    value = raw.get(name)
    return raw.get(alias) if value is None else value


def query_fields(query: str) -> dict[str, str]:
    """The fields of a ``/count`` query string (the first value of each name wins)."""
    found: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        found.setdefault(key, value)
    return found


def parse_line(line: bytes, now: float, limits: Limits) -> Event:
    """
    One event from a UDP line: a JSON object, or a ``/count`` query string (with or
    without the leading ``/count?``).
    """
    if len(line) > limits.max_line_bytes:
        raise FieldError("line", f"longer than {limits.max_line_bytes} bytes", "line_too_long")
    try:
        text = line.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise FieldError("line", "not UTF-8", "not_utf8") from None
    if text.startswith("{"):
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise FieldError("line", "not valid JSON (or nested too deeply)", "bad_json") from None
        if not isinstance(raw, dict):
            raise FieldError("line", "a JSON line must be an object", "bad_json")
        return from_fields(raw, now, limits)
    if text.startswith(("/count?", "?")):
        text = text.split("?", 1)[1]
    if text.startswith("pk=") or "&pk=" in text:
        return from_fields(query_fields(text), now, limits)
    raise FieldError("line", "neither a JSON object nor a /count query string", "unrecognised")
