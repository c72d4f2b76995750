"""
A queue message's body: lines (each a UDP line: JSON object, ``/count`` query string or
statsd), or a JSON array of event objects, as an HTTP batch is.
"""

import json

from hailwhale.model.fields import FieldError


def is_array(body: bytes) -> bool:
    """Whether ``body`` is written as a JSON array (else it is read as lines)."""
    return body.lstrip()[:1] == b"["


def array_items(body: bytes) -> list:
    """The items of a JSON array body; raises :class:`FieldError` (``bad_json``) if it is not one."""
    try:
        items = json.loads(body)
    except (ValueError, RecursionError):
        raise FieldError("body", "not valid JSON (or nested too deeply)", "bad_json") from None
    if not isinstance(items, list):
        raise FieldError("body", "a JSON body is a list of event objects", "bad_json")
    return items
