"""
The OpenAPI 3.1 description of the HTTP API, as :mod:`hailwhale.web.app` accepts it; the
daemon serves it at ``/openapi.json``.

Parameters are described as loosely as the daemon takes them (a query parameter is text
that the daemon parses: JSON, a lenient literal or a plain name), so a client generated from
the description can send everything the daemon accepts.  Which endpoints need a token
follows the daemon's configuration.
"""

from typing import Any

from hailwhale import __version__
from hailwhale.query.browse import MAX_LIMIT
from hailwhale.query.planner import MAX_DEPTH, MAX_NODES

JSON = "application/json"
TEXT = "text/plain"


def _ref(kind: str, name: str) -> dict:
    return {"$ref": f"#/components/{kind}/{name}"}


def _param(name: str, description: str, schema: dict | None = None, required: bool = False) -> dict:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "description": description,
        "schema": schema or {"type": "string"},
    }


PARAMETERS = {
    "pk": _param("pk", 'The pk: a name (`signup`), or a path as a JSON or lenient list (`["Product", "123"]`).'),
    "requiredPk": _param("pk", "The pk: a name, or a path as a JSON or lenient list.", required=True),
    "dimensions": _param(
        "dimensions",
        "Counting: the dimensions (a name, a list, or a nested object in JSON). "
        'Queries: one dimension (`_`, `country`, `["country","US"]`).',
    ),
    "dimension": _param("dimension", "Alias of `dimensions`."),
    "metrics": _param(
        "metrics",
        'Counting: an object of metric amounts (`{"dollars": 5}`). Queries: a name, '
        'a list or formulas (`["dollars","dollars/hits"]`); default `hits`.',
    ),
    "metric": _param("metric", "Alias of `metrics`."),
    "at": _param(
        "at",
        "The event's time: epoch seconds (or milliseconds, microseconds) or ISO 8601; "
        "default now. Outside the daemon's window it is a 400.",
    ),
    "asOf": _param(
        "at",
        "Answer as the data stood at this moment (epoch seconds or ISO 8601; default now): "
        "the periods end there, as the original's `total(..., at=...)`.",
    ),
    "periods": _param("periods", "A period or a list of them: `today`, `1h:1d`, `thirty`, `2026-11-01..2026-11-30`."),
    "period": _param("period", "Alias of `periods`."),
    "depth": _param(
        "depth",
        "Levels of sub-dimensions to answer as rows.",
        {"type": "string", "pattern": r"^\s*\+?[0-9]+\s*$", "description": f"a whole number from 0 to {MAX_DEPTH}"},
    ),
    "sort": _param("sort", "A metric or formula to order rows by; a leading `-` is descending."),
    "limit": _param(
        "limit",
        "Most sub-dimension rows (0: all).",
        {"type": "string", "pattern": r"^\s*\+?[0-9]+\s*$", "description": f"a whole number from 0 to {MAX_NODES}"},
    ),
    "tz": _param("tz", "An IANA time zone for calendar periods (`America/Los_Angeles`)."),
    "tzoffset": _param("tzoffset", "A fixed offset for calendar periods, hhmm (`-0700`)."),
    "recursive": _param(
        "recursive", "Rank every dimension below (default), or only direct children (`false`, `0` or `no`)."
    ),
    "option": _param("option", "The option chosen (`b`); with no `decision`, the pk is the decision."),
    "decision": _param("decision", "The decision's name under the pk (`language`); optional."),
    "decided": _param(
        "decided", 'Instead of `option`: a one-item object, decision name to option (`{"language": "EN"}`).'
    ),
    "options": _param(
        "options",
        "The options to choose among: a list (`['a', 'b', 'c']`, JSON or lenient) or a "
        'one-item object, decision name to options (`{"language": ["EN", "SP"]}`).',
        required=True,
    ),
    "known_dimensions": _param("known_dimensions", "Alias of `dimensions`: what is known about the visitor."),
    "by_metric": _param(
        "by_metric",
        "The objective: a metric (its mean per decision) or a ratio of two (`earned/spent`); default `value/hits`.",
    ),
    "formula": _param("formula", "Alias of `by_metric`."),
    "goal": _param("goal", "`max` (default) or `min`."),
    "explain": _param("explain", "`true`: answer the explanation (estimates, intervals, P(best), driver)."),
    "explore": _param("explore", "`false`: the best estimate, without exploring."),
    "unit": _param("unit", "A visitor id: the same visitor gets the same draw all (UTC) day."),
    "grant": _param(
        "grant",
        "A read grant (`hwg1.…`, minted by `Whale.grant` or `hailwhale.web.embed.grant` with the read token): "
        "instead of the token, for the pks, metrics and periods it covers, until it expires.",
    ),
    "browsePk": _param("pk", "The pk whose child pks and metric names to list; none: the top-level pks."),
    "browseLimit": _param(
        "limit",
        "Most names of each list (default 1000).",
        {"type": "string", "pattern": r"^\s*\+?[0-9]+\s*$", "description": f"a whole number from 1 to {MAX_LIMIT}"},
    ),
}
EVENT_PARAMETERS = ["requiredPk", "dimensions", "dimension", "metrics", "metric", "at"]  # GET: pk needed
DECISION_PARAMETERS = ["option", "decision", "decided"]
DECIDE_PARAMETERS = [
    "requiredPk",
    "options",
    "decision",
    "dimensions",
    "dimension",
    "known_dimensions",
    "by_metric",
    "formula",
    "goal",
    "explain",
    "explore",
    "unit",
]
BODY_EVENT_PARAMETERS = ["pk", "dimensions", "dimension", "metrics", "metric", "at"]  # POST: defaults for the body
QUERY_PARAMETERS = [
    "requiredPk",
    "dimensions",
    "dimension",
    "metrics",
    "metric",
    "periods",
    "period",
    "depth",
    "sort",
    "limit",
    "tz",
    "tzoffset",
    "asOf",
]

SCHEMAS = {
    "Error": {
        "type": "object",
        "required": ["error", "reason"],
        "properties": {
            "error": {"type": "string", "description": "What was wrong, for people."},
            "reason": {"type": "string", "description": "What was wrong, for programs (as counted in /stats)."},
            "field": {"type": "string", "description": "The parameter or field at fault, for a 400."},
        },
    },
    "Event": {
        "type": "object",
        "description": "One event; fields of the query string are defaults for every event of a body.",
        "required": ["pk"],
        "properties": {
            "pk": {
                "description": "A name or a path (list of names).",
                "oneOf": [{"type": "string", "minLength": 1}, {"type": "array", "items": {"type": "string"}}],
            },
            "dimensions": {"description": "A name, a list, or a nested object."},
            "dimension": {"description": "Alias of dimensions."},
            "metrics": {
                "type": "object",
                "additionalProperties": {"type": "number"},
                "description": "Metric amounts; `hits: 1` is added.",
            },
            "metric": {"description": "Alias of metrics."},
            "at": {"description": "Epoch seconds or ISO 8601 text."},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"enum": ["ok", "unavailable"]},
            "reason": {"enum": ["starting", "stopping", "store_unreachable", "broker_unreachable"]},
            "since": {"type": ["number", "null"]},
            "error": {"type": ["string", "null"], "description": "The broker's last error (broker_unreachable)."},
        },
    },
    "Pks": {
        "type": "object",
        "required": ["pk", "children", "more", "metrics", "more_metrics"],
        "properties": {
            "pk": {"type": ["array", "null"], "items": {"type": "string"}},
            "children": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["name", "pk"],
                    "properties": {"name": {"type": "string"}, "pk": {"type": "array", "items": {"type": "string"}}},
                },
            },
            "more": {"type": "integer"},
            "metrics": {"type": "array", "items": {"type": "string"}},
            "more_metrics": {"type": "integer"},
        },
    },
    "Flushed": {
        "type": "object",
        "required": ["flushed", "backlog_events"],
        "properties": {"flushed": {"type": "boolean"}, "backlog_events": {"type": "integer"}},
    },
}


def _error(description: str) -> dict:
    return {"description": description, "content": {JSON: {"schema": _ref("schemas", "Error")}}}


RESPONSES = {
    "BadRequest": _error("A parameter or field is wrong; `field` names it. Nothing of the request was counted."),
    "Unauthorized": {
        **_error("The token is missing or wrong (`missing_token`, `wrong_token`)."),
        "headers": {"WWW-Authenticate": {"schema": {"type": "string"}}},
    },
    "Unavailable": _error(
        "Not accepted now: `dropped` (a limit, or the daemon is stopping), or "
        "`store_unavailable`. Nothing of the request was counted."
    ),
    "Forbidden": _error(
        "A read grant that does not cover this (`outside_grant`: another pk, metric or a longer period; "
        "`grant_not_accepted`: an endpoint grants do not open)."
    ),
    "NotFound": _error("No such path."),
    "MethodNotAllowed": {
        **_error("The path does not take this method; `Allow` lists those it takes."),
        "headers": {"Allow": {"schema": {"type": "string"}}},
    },
}

EVENT_BODY = {
    "description": "An event, or a list of them (a batch, counted whole or not at all), as JSON; or the query "
    "string's form as a form or text body.",
    "required": False,
    "content": {
        JSON: {
            "schema": {
                "oneOf": [_ref("schemas", "Event"), {"type": "array", "items": _ref("schemas", "Event"), "minItems": 1}]
            }
        },
        "application/x-www-form-urlencoded": {"schema": _ref("schemas", "Event")},
        TEXT: {"schema": {"type": "string"}},
    },
}


def _errors(*names: str) -> dict:
    codes = {"BadRequest": "400", "Unauthorized": "401", "Forbidden": "403", "Unavailable": "503"}
    return {codes[name]: _ref("responses", name) for name in names}


def _counting(summary: str, ok: dict, security: list | None, body: bool = False) -> dict:
    operation: dict[str, Any] = {
        "summary": summary,
        "tags": ["counting"],
        "parameters": [_ref("parameters", name) for name in (BODY_EVENT_PARAMETERS if body else EVENT_PARAMETERS)],
        "responses": {"200": ok, **_errors("BadRequest", "Unauthorized", "Unavailable")},
    }
    if body:
        operation["requestBody"] = EVENT_BODY
    if security is not None:
        operation["security"] = security
    return operation


def _query(summary: str, parameters: list[str], answer: dict, security: list | None, grant: bool = True) -> dict:
    operation = {
        "summary": summary,
        "tags": ["queries"],
        "parameters": [_ref("parameters", name) for name in [*parameters, *(["grant"] if grant else [])]],
        "responses": {
            "200": {"description": "The answer.", "content": {JSON: {"schema": answer}}},
            **_errors("BadRequest", "Unauthorized", "Forbidden", "Unavailable"),
        },
    }
    if security is not None:
        operation["security"] = security
    return operation


GRAPH_JS_PARAMETERS = [
    ("pk", "The pk (default `_`); `category` is an alias."),
    ("dimension", "The dimension (`dimensions` is an alias)."),
    ("metric", "A metric, formula or list (`metrics` is an alias); default `hits`."),
    ("depth", "Levels of sub-dimensions to draw."),
    ("period", "The period (default `thirty`)."),
    ("limit", "Most sub-dimensions drawn (default 10)."),
    ("sort", "What picks and orders them."),
    ("title", "The graph's title (default: the pk and the dimension)."),
    ("area", "`true` (stacked areas of the children), `percent`, or empty for lines."),
    ("stacked", "`false` for areas that do not stack."),
    ("tz", "An IANA time zone."),
    ("tzoffset", "hhmm (`-0700`) or the original's float hours (`-5.5`), east of UTC."),
    ("interval", "Milliseconds between updates (default 6000, at least 1000)."),
    ("live", "`false`: draw once (`autoupdate` is an alias)."),
    ("height", "Pixels (default 300)."),
    ("hwurl", "The daemon's URL, if not where the script came from."),
    ("grant", "A read grant, when the daemon has a read token (never put the token itself in a page)."),
]


def page(summary: str) -> dict:
    return {
        "summary": summary,
        "tags": ["pages"],
        "security": [],
        "responses": {"200": {"description": "HTML.", "content": {"text/html": {"schema": {"type": "string"}}}}},
    }


def script(summary: str) -> dict:
    return {
        "summary": summary,
        "tags": ["pages"],
        "security": [],
        "responses": {
            "200": {
                "description": "JavaScript.",
                "content": {"application/javascript": {"schema": {"type": "string"}}},
            }
        },
    }


def describe(read_token: bool = False, write_token: bool = False) -> dict:
    """The OpenAPI 3.1 document; ``read_token``/``write_token``: whether the daemon requires them."""
    read: list[dict] | None = [{"bearer": []}, {"tokenParameter": []}, {"grant": []}] if read_token else None
    write: list[dict] | None = [{"bearer": []}, {"tokenParameter": []}] if write_token else None
    ok_text = {
        "description": "Counted (in memory; in the store by the next flush).",
        "content": {TEXT: {"schema": {"const": "OK"}}},
    }
    pixel = {
        "summary": "Count an event from an <img> tag: always a 1x1 GIF, never cached, never needs a token.",
        "tags": ["counting"],
        "parameters": [_ref("parameters", name) for name in EVENT_PARAMETERS],
        "responses": {
            status: {
                "description": description,
                "headers": {
                    "X-Hailwhale-Error": {"schema": {"type": "string"}},
                    "X-Hailwhale-Reason": {"schema": {"type": "string"}},
                }
                if status != "200"
                else {},
                "content": {"image/gif": {"schema": {"type": "string", "contentMediaType": "image/gif"}}},
            }
            for status, description in (
                ("200", "Counted."),
                ("400", "Not counted; X-Hailwhale-Reason says why."),
                ("503", "Not accepted now; X-Hailwhale-Reason says why."),
            )
        },
    }
    count_summary = "Count events: one from the query string, or a body of one or many."
    now_summary = "Count events and answer once they are in the store."
    now_ok = {"description": "Counted and written to the store.", "content": {TEXT: {"schema": {"const": "OK"}}}}
    stats = {
        "summary": "The daemon's own counters (see the README).",
        "tags": ["the daemon"],
        "responses": {
            "200": {"description": "Counters.", "content": {JSON: {"schema": {"type": "object"}}}},
            **_errors("Unauthorized"),
        },
    }
    metrics = {
        "summary": "The same counters in the Prometheus text format.",
        "tags": ["the daemon"],
        "responses": {
            "200": {
                "description": "Prometheus text (or OpenMetrics, if the Accept header asks).",
                "content": {
                    TEXT: {"schema": {"type": "string"}},
                    "application/openmetrics-text": {"schema": {"type": "string"}},
                },
            },
            **_errors("Unauthorized"),
        },
    }
    for operation in (stats, metrics):
        if read is not None:
            operation["security"] = read
    health = {
        "summary": "For load balancers: 200 while the store answers, 503 with the reason otherwise.",
        "tags": ["the daemon"],
        "security": [],
        "responses": {
            code: {"description": description, "content": {JSON: {"schema": _ref("schemas", "Health")}}}
            for code, description in (("200", "Healthy."), ("503", "Not healthy; reason says why."))
        },
    }
    flush: dict[str, Any] = {
        "summary": "Flush now.",
        "tags": ["counting"],
        "responses": {
            code: {"description": description, "content": {JSON: {"schema": _ref("schemas", "Flushed")}}}
            for code, description in (
                ("200", "Everything pending is in the store."),
                ("503", "The store did not take everything; it is retried."),
            )
        },
    }
    flush["responses"].update(_errors("Unauthorized"))
    if write is not None:
        flush["security"] = write
    rows = {"type": "object"}
    decision_summary = "Count a decision: the option shown, its metrics and the visitor's dimensions."
    count_decision: dict[str, dict[str, Any]] = {
        "get": _counting(decision_summary, ok_text, write),
        "post": _counting(decision_summary, ok_text, write, body=True),
    }
    durable_summary = "Count a decision, as /count_decision, and answer once it is in the store."
    count_decided_now: dict[str, dict[str, Any]] = {
        "get": _counting(durable_summary, now_ok, write),
        "post": _counting(durable_summary, now_ok, write, body=True),
    }
    for counting in (*count_decision.values(), *count_decided_now.values()):
        counting["parameters"] += [_ref("parameters", name) for name in DECISION_PARAMETERS]
    flush_hail: dict[str, Any] = {
        "summary": "The original's name of /flush: flush now, answer OK.",
        "tags": ["counting"],
        "responses": {
            "200": {"description": "Everything pending is in the store.", "content": {"text/plain": {}}},
            "503": flush["responses"]["503"],
            **_errors("Unauthorized"),
        },
    }
    if write is not None:
        flush_hail["security"] = write
    decide = _query(
        'Choose an option for this visitor from the counted decisions: `{"option": ...}`, or the explanation.',
        DECIDE_PARAMETERS,
        rows,
        [{"bearer": []}, {"tokenParameter": []}] if read_token else None,
        grant=False,
    )
    decide["tags"] = ["decisions"]
    for operation in (*count_decision.values(), *count_decided_now.values()):
        operation["tags"] = ["decisions"]
    paths = {
        "/count": {
            "get": _counting(count_summary, ok_text, write),
            "post": _counting(count_summary, ok_text, write, body=True),
        },
        "/count_now": {
            "get": _counting(now_summary, now_ok, write),
            "post": _counting(now_summary, now_ok, write, body=True),
        },
        "/count.gif": {
            "get": pixel,
            "post": {
                **pixel,
                "parameters": [_ref("parameters", name) for name in BODY_EVENT_PARAMETERS],
                "requestBody": EVENT_BODY,
            },
        },
        "/flush": {"post": flush},
        "/flush_hail": {"get": flush_hail, "post": flush_hail},
        "/count_decision": count_decision,
        "/count_decided_now": count_decided_now,
        "/decide": {"get": decide},
        "/totals": {"get": _query("Totals per period, dimension and metric.", QUERY_PARAMETERS, rows, read)},
        "/plotpoints": {
            "get": _query(
                "Series per dimension and metric: [epoch_ms, value] per bucket.", QUERY_PARAMETERS, rows, read
            )
        },
        "/rank": {
            "get": _query(
                "Which sub-dimensions matter for a metric or ratio.",
                [
                    "requiredPk",
                    "dimension",
                    "dimensions",
                    "metric",
                    "metrics",
                    "period",
                    "periods",
                    "recursive",
                    "tz",
                    "tzoffset",
                    "asOf",
                ],
                rows,
                read,
            )
        },
        "/dimensions": {
            "get": _query(
                "A dimension and everything below it.",
                ["requiredPk", "dimension", "dimensions", "depth"],
                {"type": "array", "items": {"type": "object"}},
                read,
            )
        },
        "/pks": {
            "get": _query(
                "What exists: the child pks of a pk (without `pk`, the top-level pks) and the metric names "
                "counted under it; `more` and `more_metrics` count the names left out past `limit`.",
                ["browsePk", "browseLimit"],
                _ref("schemas", "Pks"),
                read,
            )
        },
        "/": {"get": page("The dashboard (HTML; it reads the API with the read token the person gives it).")},
        "/dashboard": {"get": page("The dashboard, as `/`.")},
        "/hailwhale.js": {"get": script("The graph widget in one file: uPlot, then `Hailwhale.graph(element, {})`.")},
        "/graph.js": {
            "get": {
                **script(
                    "The original's embed: a script that draws a live graph where its `<script>` tag stands, "
                    "on a page of any origin (`Whale.graph_tag` writes the tag)."
                ),
                "parameters": [_param(name, description) for name, description in GRAPH_JS_PARAMETERS],
            }
        },
        "/static/{name}": {
            "get": {
                "summary": "A file of the widget or the dashboard; with `?v=<version>` cached for a year, "
                "else revalidated (ETag, 304).",
                "tags": ["pages"],
                "security": [],
                "parameters": [
                    {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                    _param("v", "The file's version (the start of its sha256), as the pages name it."),
                ],
                "responses": {
                    "200": {
                        "description": "The file.",
                        "content": {
                            kind: {"schema": {"type": "string"}}
                            for kind in ("application/javascript", "text/css", "image/svg+xml", TEXT)
                        },
                    },
                    "304": {"description": "The browser's copy (If-None-Match) is current."},
                    "404": _ref("responses", "NotFound"),
                },
            }
        },
        "/stats": {"get": stats},
        "/metrics": {"get": metrics},
        "/health": {"get": health},
        "/openapi.json": {
            "get": {
                "summary": "This description.",
                "tags": ["the daemon"],
                "security": [],
                "responses": {
                    "200": {"description": "OpenAPI 3.1.", "content": {JSON: {"schema": {"type": "object"}}}}
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "hailwhale",
            "version": __version__,
            "description": "Real-time counting of rolled-up, multi-dimensional metrics. Every error is JSON "
            "with a `reason` (the pixel's is in X-Hailwhale-Reason); unknown paths are 404 and "
            "unknown methods 405, both JSON.",
        },
        "paths": paths,
        "components": {
            "parameters": PARAMETERS,
            "schemas": SCHEMAS,
            "responses": RESPONSES,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "Authorization: Bearer <token>"},
                "tokenParameter": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "token",
                    "description": "The token as a query parameter (it lands in logs: prefer the header).",
                },
                "grant": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "grant",
                    "description": "A read grant, for pages that must not hold the token (also as Bearer credentials).",
                },
            },
        },
    }
