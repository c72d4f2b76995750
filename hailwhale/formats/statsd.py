"""
statsd and DogStatsD lines, as events.

``<name>:<value>[:<value>...]|<type>[|@<rate>][|#<tag>:<value>,<tag>...][|T<epoch>][|c:<container>]``

- The name's dots make the pk path: ``shop.checkout`` is ``["shop", "checkout"]``.
- Tags make the dimensions: ``#country:US,device:mac`` is ``{"country": "US",
  "device": "mac"}``; a bare tag ``#canary`` is the dimension ``canary``.
- The value becomes a metric named for its kind, and ``hits`` counts the line:

  ==========  =====================================================================
  ``c``       ``count``: the value divided by the sample rate
  ``g``       ``gauge``: a level; ``+x``/``-x`` change the last level of the series
  ``ms``      ``ms.sum`` and ``ms.count``, both divided by the rate (mean: ``ms.sum/ms.count``),
              and the distribution ``ms.dist`` (each value counted 1/rate times): ``ms.dist:p99``
  ``h``/``d`` ``h.sum``/``h.count``/``h.dist`` and ``d.sum``/``d.count``/``d.dist``, likewise
  ``s``       ``unique``: the value is a member; queries count distinct members
  ==========  =====================================================================

- DogStatsD packing (``name:1:2:3|ms``) gives several values of one type; ``|T`` sets
  the event time; a container id (``|c:...``) is ignored.  etsy's other multi-metric
  form (``name:1|c:2|ms``) is not supported: its second type reads as a container id
  or a bad field.
"""

import math

from hailwhale.model import fields, sketch
from hailwhale.model.events import Event
from hailwhale.model.fields import MAX_METRIC, FieldError, Limits

TIMINGS = ("ms", "h", "d")
TYPES = ("c", "g", "s") + TIMINGS
NOT_A_LINE = "neither a JSON object, a /count query string nor a statsd line"


def parse_line(text: str, now: float, limits: Limits) -> Event:
    """The event of one statsd line (already decoded and stripped)."""
    name, colon, rest = text.partition(":")
    values_text, bar, options = rest.partition("|")
    if not colon or not bar:
        raise FieldError("line", NOT_A_LINE, "unrecognised")
    kind, *extras = options.split("|")
    kind = kind.strip()
    if kind not in TYPES:
        raise FieldError("type", f"statsd type {kind[:20]!r} is not one of {', '.join(TYPES)}", "bad_statsd_type")
    rate, tags, at = 1.0, "", now
    for extra in extras:
        if extra.startswith("@"):
            rate = _rate(extra[1:])
        elif extra.startswith("#"):
            tags = extra[1:]
        elif extra.startswith("T"):
            at = fields.timestamp(extra[1:], now, limits)
        elif not extra.startswith("c:"):
            raise FieldError("line", f"unknown statsd field {extra[:40]!r}", "bad_statsd_field")
    pk = fields.pk(name.strip().split("."), limits)
    dimensions = _dimensions(tags, limits)
    if kind == "s":
        member = fields.name(values_text, "value", limits)
        return Event(pk, dimensions, {"hits": 1}, at, members={"unique": frozenset([member])})
    values = [_value(item, kind) for item in values_text.split(":")]
    if kind == "c":
        return Event(pk, dimensions, {"hits": 1, "count": math.fsum(v for _, v in values) / rate}, at)
    if kind == "g":
        level, relative = _level(values)
        return Event(pk, dimensions, {"hits": 1}, at, levels={"gauge": level}, relative_levels=relative)
    counts: dict[str, float] = {}
    for _, value in values:
        name = sketch.bucket(value)
        counts[name] = counts.get(name, 0.0) + 1 / rate
    return Event(
        pk,
        dimensions,
        {"hits": 1, f"{kind}.sum": math.fsum(v for _, v in values) / rate, f"{kind}.count": len(values) / rate},
        at,
        samples={f"{kind}.dist": counts},
    )


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = math.nan
    if not 0 < rate <= 1:
        raise FieldError(
            "rate", f"a sample rate is a number above 0 and at most 1, not {text[:20]!r}", "bad_sample_rate"
        )
    return rate


def _value(text: str, kind: str) -> tuple[bool, float]:
    """(whether the value is signed, the value)."""
    text = text.strip()
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not abs(value) <= MAX_METRIC or "_" in text:
        raise FieldError("value", f"{text[:40]!r} is not a finite number", "bad_statsd_value")
    if value < 0 and kind == "ms":
        raise FieldError("value", "a timing cannot be negative", "bad_statsd_value")
    return text[:1] in "+-", value


def _level(values: list[tuple[bool, float]]) -> tuple[float, bool]:
    """A gauge's packed values in order: (the level or change they make, whether it is a change)."""
    base, change = None, 0.0
    for signed, value in values:
        if signed:
            change += value
        else:
            base, change = value, 0.0
    return (change, True) if base is None else (base + change, False)


def _dimensions(tags: str, limits: Limits) -> fields.Leaves:
    found: set[tuple[str, ...]] = set()
    for tag in tags.split(","):
        if not tag:
            continue
        key, colon, value = tag.partition(":")
        if not key:
            raise FieldError("dimensions", f"tag {tag[:40]!r} has no name", "bad_tags")
        key = fields.name(key, "dimensions", limits)
        found.add((key, fields.name(value, "dimensions", limits)) if colon else (key,))
    return fields.leaf_set(found, limits) if found else fields.NO_LEAVES
