"""
Graphs on other pages, pure: read grants minted from friendly arguments, the original's
``graph_tag``, and the options ``/graph.js`` hands to the widget.

A page on another site must never hold the read token.  The server that renders the page
(a Django view, a script) holds it and mints a grant, scoped to one pk prefix, some
metrics and a longest period, expiring soon; the page holds only the grant::

    from hailwhale.web.embed import grant, graph_tag
    grant(read_token, pk=["Product", "123"], metrics=["revenue/visitors"], period="thirty")
    graph_tag(["Product", "123"], "country", "revenue/visitors", host="https://hw.example", read_token=token)

Neither needs Twisted, Redis or a running daemon.
"""

import html
import json
import math
import re
import time
from collections.abc import Mapping
from urllib.parse import urlencode

from hailwhale.model import fields, lenient
from hailwhale.model.fields import FieldError, Limits, first
from hailwhale.model.schema import SchemaError, parse_duration
from hailwhale.query import formula, periods
from hailwhale.web import access

DAY = 86400
DEFAULT_GRANT_SECONDS = DAY
DEFAULT_PERIOD = "thirty"
DEFAULT_LIMIT = "10"  # the original widget drew at most 10 dimensions
DEFAULT_INTERVAL_MS = 6000  # the original /graph.js polled every 6 s
LEAST_INTERVAL_MS = 1000
MOST_INTERVAL_MS = 86_400_000  # browsers fire a timer of more than 2**31 ms at once
# to-date periods grow over the calendar: a grant must cover their longest
LONGEST_TO_DATE = {"wtd": 7 * DAY, "mtd": 31 * DAY, "ytd": 366 * DAY}
_FLOAT_HOURS = re.compile(r"^([+-]?)(\d{1,2})(?:\.(\d+))?$")
_HHMM = re.compile(r"^[+-]?\d{3,4}$")
_FALSE = ("", "false", "0", "no", "off", "none", "null")


def longest_seconds(period: object, now: float) -> int | None:
    """
    The longest window ``period`` can name, in seconds: a period (``thirty``, ``1h:1d``,
    ``mtd``: its longest month, ``2026-11-01..2026-11-30``), a duration (``35d``) or seconds.
    """
    if period is None:
        return None
    if isinstance(period, int) and not isinstance(period, bool):
        return period
    text = str(period).strip()
    try:
        return parse_duration(text)
    except SchemaError:
        pass
    word = text.partition("|")[0].strip()
    if word in LONGEST_TO_DATE:
        return LONGEST_TO_DATE[word]
    window = periods.resolve(text, now)
    return window.end - window.start


def stored_metrics(metrics: object) -> frozenset[str]:
    """The stored metric names that ``metrics`` (names or formulas, in any form queries take) read."""
    return frozenset(name for f in formula.parse_list(metrics) for name in f.inputs)


def grant(
    read_token: str,
    pk: object = None,
    metrics: object = None,
    period: object = None,
    expires_in: float = DEFAULT_GRANT_SECONDS,
    now: float | None = None,
) -> str:
    """
    A read grant, signed with ``read_token``, that the read endpoints accept instead of the
    token until it expires (``expires_in`` seconds from ``now``): for ``pk`` and every pk
    under it (None: every pk), reading the stored metrics of ``metrics`` (names or formulas:
    ``["revenue/visitors"]`` allows revenue and visitors, in any formula; None: every
    metric), over periods up to ``period`` long (a period such as ``thirty``, a duration such
    as ``35d``, or seconds; None: any).
    """
    now = time.time() if now is None else now
    scope = access.Scope(
        expires=math.ceil(now + expires_in),
        pk=None if pk is None else fields.pk(pk, Limits()),
        metrics=None if metrics is None else stored_metrics(metrics),
        longest=longest_seconds(period, now),
    )
    return access.sign_grant(read_token, scope)


def _param_text(value: object) -> str:
    """A parameter as the daemon reads it: text as it is, lists and dicts as compact JSON."""
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple, dict, bool)) or value is None:
        return json.dumps(list(value) if isinstance(value, tuple) else value, separators=(",", ":"))
    return str(value)


def graph_tag(
    pk: object,
    dimension: object = None,
    metric: object = None,
    extra: Mapping[str, object] | None = None,
    host: str = "",
    read_token: str | None = None,
    grant_seconds: float = DEFAULT_GRANT_SECONDS,
    now: float | None = None,
) -> str:
    """
    The original's ``<script src='{host}/graph.js?...'></script>``: a graph of ``metric``
    (default ``hits``) for ``pk`` and ``dimension`` where the tag stands, on any page.
    ``extra`` adds /graph.js parameters (``period``, ``depth``, ``title``, ``area``,
    ``tzoffset``, ``interval``, ...); as in the original, without ``area`` the graph is an
    area graph of the dimension's children (``area=true``, ``depth=1``).  With
    ``read_token`` the tag carries a grant for exactly this graph (its pk and everything
    below, its metrics, its period), valid ``grant_seconds``, never the token.
    """
    params = {name: _param_text(value) for name, value in (extra or {}).items() if value is not None}
    params["pk"] = _param_text(list(pk) if isinstance(pk, tuple) else pk)
    if dimension is not None:
        params["dimension"] = _param_text(dimension)
    if metric is not None:
        params["metric"] = _param_text(metric)
    if "area" not in params:
        params["area"] = "true"
        params.setdefault("depth", "1")
    params.pop(access.QUERY_PARAMETER, None)
    if read_token is not None:
        read = [first(params, "metric", "metrics") or "hits"]
        if params.get("sort"):
            read.append(params["sort"].strip().lstrip("-"))
        metrics = sorted({name for text in read for name in stored_metrics(text)})
        params["grant"] = grant(read_token, pk, metrics, first(params, "period") or DEFAULT_PERIOD, grant_seconds, now)
    url = f"{host.rstrip('/')}/graph.js?{urlencode(params)}"
    return f"<script src='{html.escape(url, quote=True)}'></script>"


# -- /graph.js --------------------------------------------------------------------------


def hhmm(tzoffset: str) -> str:
    """
    A tzoffset as the queries take it: ``-0700`` and ``+0530`` stay; the float hours the
    original's callers sent (``-5.5``, ``8``, ``+5.75``) become hhmm, hours east of UTC
    (``-5.5`` is ``-0530``).  Anything else is left for the query to refuse.
    """
    text = tzoffset.strip()
    if _HHMM.match(text):
        return text
    match = _FLOAT_HOURS.match(text)
    if not match:
        return text
    sign, hours, fraction = match.groups()
    minutes = round(float(f"0.{fraction}") * 60) if fraction else 0
    whole = int(hours) + minutes // 60
    return f"{'-' if sign == '-' else '+'}{whole:02d}{minutes % 60:02d}"


def _flag(value: object) -> bool:
    return str(value).strip().lower() not in _FALSE


def _area(value: object) -> bool | str:
    text = str(value).strip().lower()
    if text in ("percent", "expand", "100"):
        return "percent"
    return _flag(text)


def _default_title(pk_text: str, dimension_text: object) -> str:
    try:
        pk = " / ".join(fields.pk(pk_text, Limits()))
    except FieldError:
        pk = pk_text
    try:
        node = fields.node(dimension_text, Limits())
    except FieldError:
        node = ()
    return f"{pk} [{node[-1] if node else 'Overall'}]"


def graph_options(params: Mapping[str, str]) -> dict:
    """
    The widget's options from ``/graph.js`` parameters (the ones ``graph_tag`` emits and the
    original took).  Query parameters go to ``/plotpoints`` as given, so a bad one shows
    the daemon's reason in the page; a token is never passed on.
    """
    options: dict = {
        "pk": first(params, "pk", "category") or "_",
        "metrics": first(params, "metrics", "metric") or "hits",
        "period": first(params, "period") or DEFAULT_PERIOD,
        "limit": first(params, "limit") or DEFAULT_LIMIT,
    }
    dimension = first(params, "dimensions", "dimension")
    if dimension is not None:
        options["dimensions"] = dimension
    for name in ("depth", "sort", "tz", "host", "grant"):
        if first(params, name) is not None:
            options[name] = params[name]
    if first(params, "hwurl") is not None:
        options["host"] = params["hwurl"]
    if first(params, "tzoffset") is not None:
        options["tzoffset"] = hhmm(params["tzoffset"])
    options["title"] = first(params, "title") or _default_title(options["pk"], dimension)
    if first(params, "area") is not None:
        options["area"] = _area(params["area"])
    if first(params, "stacked") is not None:
        options["stacked"] = _flag(params["stacked"])
    live = first(params, "live", "autoupdate")
    options["live"] = True if live is None else _flag(live)
    interval = _finite(first(params, "interval"))
    if interval is None:
        interval = DEFAULT_INTERVAL_MS
    options["interval"] = min(max(int(interval), LEAST_INTERVAL_MS), MOST_INTERVAL_MS)
    height = re.match(r"^(\d{2,4})(px)?$", str(first(params, "height") or "300").strip())
    options["height"] = int(height.group(1)) if height else 300
    width_factor = _finite(first(params, "width_factor"))
    if width_factor is not None:
        options["widthFactor"] = min(max(width_factor, 0.5), 12.0)
    colors = first(params, "colors")
    if colors is not None:
        try:
            decoded = lenient.decode(str(colors))
        except lenient.LenientError:
            decoded = None
        if isinstance(decoded, list) and all(isinstance(c, str) for c in decoded):
            options["colors"] = decoded[:50]
    return options


def _finite(text: object) -> float | None:
    """``text`` as a finite number, or None when it is missing or not one (as the original's lenient embed)."""
    try:
        number = float(str(text))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _js_value(value: object) -> str:
    """JSON safe to place in a script: no ``</script>``, no line separators JavaScript would choke on."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def graph_js(options: Mapping[str, object], bundle_url: str) -> str:
    """
    The script ``/graph.js`` answers: draws the graph right after its own ``<script>`` tag,
    loading the widget (``bundle_url``, on the daemon's origin) once per page.
    """
    return GRAPH_JS.replace("OPTIONS", _js_value(dict(options))).replace("BUNDLE", _js_value(bundle_url))


GRAPH_JS = """/* hailwhale graph: see /openapi.json and the README's "Graphs" section */
(function () {
  "use strict";
  var options = OPTIONS;
  var script = document.currentScript;
  var base = options.host || (script && script.src ? script.src.replace(/\\/graph\\.js(\\?.*)?$/, "") : "");
  options.host = base;
  var box = document.createElement("div");
  box.className = "hailwhale-embed";
  if (script && script.parentNode) {
    script.parentNode.insertBefore(box, script.nextSibling);
  } else {
    document.body.appendChild(box);
  }
  function draw() {
    window.Hailwhale.graph(box, options);
  }
  if (window.Hailwhale && window.Hailwhale.graph) {
    draw();
    return;
  }
  (window.HailwhaleQueue = window.HailwhaleQueue || []).push(draw);
  if (!window.HailwhaleLoading) {
    window.HailwhaleLoading = true;
    var tag = document.createElement("script");
    tag.src = base + BUNDLE;
    tag.async = true;
    (document.head || document.documentElement).appendChild(tag);
  }
})();
"""
