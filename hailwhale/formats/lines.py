"""
One UDP line, whatever its format: a JSON object, a ``/count`` query string, or statsd.

:func:`parse_line` is the definition; :mod:`hailwhale.formats.fast_lines` gives the same
answers faster for the lines that dominate traffic.
"""

import json

from hailwhale.formats import statsd
from hailwhale.model import events
from hailwhale.model.events import Event
from hailwhale.model.fields import FieldError, Limits


def parse_line(line: bytes, now: float, limits: Limits) -> Event:
    """
    One event from a UDP line: a JSON object, a ``/count`` query string (with or
    without the leading ``/count?``), or a statsd line (see :mod:`hailwhale.formats.statsd`).
    """
    return parse_text(line_text(line, limits), now, limits)


def line_text(line: bytes, limits: Limits) -> str:
    if len(line) > limits.max_line_bytes:
        raise FieldError("line", f"longer than {limits.max_line_bytes} bytes", "line_too_long")
    try:
        return line.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise FieldError("line", "not UTF-8", "not_utf8") from None


def parse_text(text: str, now: float, limits: Limits) -> Event:
    form = form_of(text)
    if form == "json":
        try:
            raw = json.loads(text)
        except (ValueError, RecursionError):
            raise FieldError("line", "not valid JSON (or nested too deeply)", "bad_json") from None
        if not isinstance(raw, dict):
            raise FieldError("line", "a JSON line must be an object", "bad_json")
        return events.from_fields(raw, now, limits)
    if form == "count":
        return events.from_fields(events.query_fields(text.split("?", 1)[1]), now, limits)
    if form == "query":
        return events.from_fields(events.query_fields(text), now, limits)
    return statsd.parse_line(text, now, limits)


def form_of(text: str) -> str:
    """What a (decoded, stripped) line is written as: json, count (``/count?...``), query or statsd."""
    if text.startswith("{"):
        return "json"
    if text.startswith(("/count?", "?")):
        return "count"
    # a statsd name ends at its first ':', while a query string's first name ends at '='
    colon, equals = text.find(":"), text.find("=")
    if (colon < 0 or 0 <= equals < colon) and (text.startswith("pk=") or "&pk=" in text):
        return "query"
    return "statsd"
