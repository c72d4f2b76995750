"""
The HTTP API (Klein): counting, the pixel, flushing, queries and self-stats.

Handlers do three steps: turn the request into core values, run core functions plus at
most one store call (through the injected reader), and render JSON, text or a GIF.
"""

import json
from collections.abc import Callable

import redis
from klein import Klein
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.web.iweb import IRequest

from hailwhale import events, query
from hailwhale.fields import FieldError

# The 43-byte transparent 1x1 GIF (protocols.md E.1).
PIXEL = bytes.fromhex("4749463839610100010080000000000000000021f90401000000002c00000000010001000002024401003b")
JSON_TYPES = (b"application/json", b"text/json")


class Dropped(Exception):
    """Some events of a request were understood but not accepted (see ``/stats``)."""


class HailwhaleWeb:
    app = Klein()

    def __init__(self, ingest, flusher, reader, stats_snapshot: Callable[[], dict], clock: IReactorTime, schema,
                 max_body_bytes: int = 1 << 20, count_now_timeout: float = 10.0):
        self._ingest = ingest
        self._flusher = flusher
        self._reader = reader
        self._stats_snapshot = stats_snapshot
        self._clock = clock
        self._schema = schema
        self._max_body = max_body_bytes
        self._count_now_timeout = count_now_timeout

    def resource(self):
        return self.app.resource()

    # -- counting ---------------------------------------------------------------------

    @app.route("/count", methods=["GET", "POST"])
    def count(self, request: IRequest):
        self._accept(request)
        _allow_any_origin(request)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"OK"

    @app.route("/count.gif", methods=["GET", "POST"])
    def pixel(self, request: IRequest):
        _allow_any_origin(request)
        request.setHeader(b"Content-Type", b"image/gif")
        request.setHeader(b"Cache-Control", b"no-store, no-cache, must-revalidate")
        request.setHeader(b"Pragma", b"no-cache")
        request.setHeader(b"Expires", b"0")
        try:
            self._accept(request)
        except FieldError as error:
            self._ingest.count_http_error(error.reason)
            request.setResponseCode(400)
            request.setHeader(b"X-Hailwhale-Error", str(error).encode("ascii", "backslashreplace")[:400])
        except Dropped as error:
            request.setResponseCode(503)
            request.setHeader(b"X-Hailwhale-Error", str(error).encode("ascii"))
        return PIXEL

    @app.route("/count", methods=["OPTIONS"])
    @app.route("/count.gif", methods=["OPTIONS"])
    @app.route("/count_now", methods=["OPTIONS"])
    def preflight(self, request: IRequest):
        origin = request.getHeader(b"Origin") or b"*"
        request.setHeader(b"Access-Control-Allow-Origin", origin)
        request.setHeader(b"Access-Control-Allow-Credentials", b"true")
        request.setHeader(b"Access-Control-Allow-Methods", b"GET, POST, OPTIONS")
        request.setHeader(b"Access-Control-Allow-Headers", b"Content-Type")
        request.setHeader(b"Access-Control-Max-Age", b"86400")
        request.setHeader(b"Vary", b"Origin")
        request.setResponseCode(204)
        return b""

    @app.route("/count_now", methods=["GET", "POST"])
    @defer.inlineCallbacks
    def count_now(self, request: IRequest):
        seq = self._ingest.accumulator.next_seq
        self._accept(request)
        _allow_any_origin(request)
        durable = self._flusher.when_durable(seq)
        self._flusher.flush()
        durable.addTimeout(self._count_now_timeout, self._clock)
        try:
            yield durable
        except defer.TimeoutError:
            return _json(request, 503, {"error": "accepted, but not yet written to the store; it will be retried",
                                        "reason": "store_unavailable"})
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"OK"

    @app.route("/flush", methods=["POST"])
    @defer.inlineCallbacks
    def flush(self, request: IRequest):
        emptied = yield self._flusher.flush()
        status = 200 if emptied else 503
        return _json(request, status, {"flushed": emptied, "backlog_events": self._flusher.backlog_events})

    def _accept(self, request: IRequest) -> None:
        now = self._clock.seconds()
        batch = [events.from_fields(raw, now, self._ingest.limits) for raw in self._event_fields(request)]
        dropped = self._ingest.accept_all(batch)
        if dropped:
            raise Dropped(f"{len(batch)} events not accepted ({dropped}); nothing of this request was counted")
        self._ingest.count_http(len(batch))

    def _event_fields(self, request: IRequest) -> list[dict]:
        params = _args(request)
        if request.method != b"POST":
            return [params]
        body = request.content.read(self._max_body + 1) if request.content is not None else b""
        if len(body) > self._max_body:
            raise FieldError("body", f"longer than {self._max_body} bytes", "body_too_long")
        content_type = (request.getHeader(b"Content-Type") or b"").split(b";")[0].strip().lower()
        text = _text(body, "body").strip()
        if not text or content_type in (b"application/x-www-form-urlencoded", b"multipart/form-data"):
            return [params]
        if content_type in JSON_TYPES or text[0] in "[{":
            try:
                decoded = json.loads(text)
            except (ValueError, RecursionError):
                raise FieldError("body", "not valid JSON (or nested too deeply)", "bad_json") from None
            items = decoded if isinstance(decoded, list) else [decoded]
            if not items or not all(isinstance(item, dict) for item in items):
                raise FieldError("body", "a JSON body is an event object or a list of them", "bad_json")
            return [{**params, **item} for item in items]
        return [{**params, **events.query_fields(text)}]

    # -- queries ----------------------------------------------------------------------

    @app.route("/totals", methods=["GET"])
    def totals(self, request: IRequest):
        return self._answer(request, query.totals_from_params)

    @app.route("/plotpoints", methods=["GET"])
    def plotpoints(self, request: IRequest):
        return self._answer(request, query.plotpoints_from_params)

    @app.route("/rank", methods=["GET"])
    def rank(self, request: IRequest):
        return self._answer(request, query.rank_from_params)

    @app.route("/dimensions", methods=["GET"])
    def dimensions(self, request: IRequest):
        return self._answer(request, lambda params, now, schema, limits: query.dimensions_from_params(params, limits))

    @defer.inlineCallbacks
    def _answer(self, request: IRequest, planner):
        """Plan the query from the request (a bad parameter is a 400), run it in the store's threads, answer JSON."""
        plan = planner(_args(request), self._clock.seconds(), self._schema, self._ingest.limits)
        answer = yield self._reader.answer(plan)
        return _json(request, 200, answer)

    @app.route("/stats", methods=["GET"])
    def stats(self, request: IRequest):
        return _json(request, 200, self._stats_snapshot())

    @app.handle_errors(FieldError)
    def bad_input(self, request: IRequest, failure):
        error = failure.value
        self._ingest.count_http_error(error.reason)
        return _json(request, 400, {"error": str(error), "field": error.field, "reason": error.reason})

    @app.handle_errors(redis.RedisError)
    def store_unavailable(self, request: IRequest, failure):
        self._ingest.count_http_error("store_unavailable")
        return _json(request, 503, {"error": f"the store did not answer: {failure.value}",
                                    "reason": "store_unavailable"})

    @app.handle_errors(Dropped)
    def dropped(self, request: IRequest, failure):
        return _json(request, 503, {"error": str(failure.value), "reason": "dropped"})


def _allow_any_origin(request: IRequest) -> None:
    request.setHeader(b"Access-Control-Allow-Origin", b"*")


def _json(request: IRequest, status: int, body: object) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"Content-Type", b"application/json")
    _allow_any_origin(request)
    return json.dumps(body).encode("utf-8")


def _text(raw: bytes, field: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError(field, "not UTF-8", "not_utf8") from None


def _args(request: IRequest) -> dict[str, str]:
    """The first value of each query (or form) argument, as text."""
    return {_text(key, "request"): _text(values[0], _text(key, "request")) for key, values in (request.args or {}).items() if values}

