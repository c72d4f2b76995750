"""
One UDP line, whatever its format: a JSON object, a ``/count`` query string, or statsd.
"""

import json

from hailwhale import events, statsd
from hailwhale.events import Event
from hailwhale.fields import FieldError, Limits


def parse_line(line: bytes, now: float, limits: Limits) -> Event:
    """
    One event from a UDP line: a JSON object, a ``/count`` query string (with or
    without the leading ``/count?``), or a statsd line (see :mod:`hailwhale.statsd`).
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
        return events.from_fields(raw, now, limits)
    if text.startswith(("/count?", "?")):
        return events.from_fields(events.query_fields(text.split("?", 1)[1]), now, limits)
    # a statsd name ends at its first ':', while a query string's first name ends at '='
    colon, equals = text.find(":"), text.find("=")
    if (colon < 0 or 0 <= equals < colon) and (text.startswith("pk=") or "&pk=" in text):
        return events.from_fields(events.query_fields(text), now, limits)
    return statsd.parse_line(text, now, limits)
