"""
The HTTP API (Klein): counting, the pixel, flushing, queries, self-stats, health and the
API's own OpenAPI description.

Handlers do three steps: turn the request into core values, run core functions plus at
most one store call (through the injected reader), and render JSON, text or a GIF.

Access (see :mod:`hailwhale.web.access`): the *read* endpoints (queries, ``/stats``,
``/metrics``) need the read token when one is set, and their CORS answers name only the
allowed origins; the *write* endpoints (``/count``, ``/count_now``, ``/flush``) need the
write token when one is set.  The pixel, ``/health`` and ``/openapi.json`` are always open,
and their CORS answers allow any origin.  Every error is JSON with a ``reason`` (the pixel's
is in ``X-Hailwhale-Error``), unknown paths and methods included.
"""

import functools
import json
import random
import re
from collections.abc import Callable

from klein import Klein
from twisted.internet import defer
from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import resource
from twisted.web.iweb import IRequest
from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound

from hailwhale.decide import counting, planning
from hailwhale.model import events, fields
from hailwhale.model.fields import FieldError, Limits
from hailwhale.query import browse, planner, rank
from hailwhale.query.requests import StoreUnavailable
from hailwhale.web import access, assets, embed
from hailwhale.web.assets import Asset, Assets

# The 43-byte transparent 1x1 GIF (protocols.md E.1).
PIXEL = bytes.fromhex("4749463839610100010080000000000000000021f90401000000002c00000000010001000002024401003b")
JSON_TYPES = (b"application/json", b"text/json")
# Pages run only the daemon's own scripts and styles (no inline script or style) and talk only to it.
PAGE_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    b"base-uri 'none'; form-action 'self'; frame-ancestors 'self'"
)


REMEMBERED_EVENTS = 10_000  # distinct counting fields remembered read (then forgotten all at once)

READ_PATHS = frozenset(
    {b"/totals", b"/plotpoints", b"/rank", b"/dimensions", b"/pks", b"/decide", b"/stats", b"/metrics"}
)
WRITE_PATHS = frozenset(
    {b"/count", b"/count_now", b"/count_decision", b"/count_decided_now", b"/flush", b"/flush_hail"}
)
log = Logger()


class Dropped(Exception):
    """Some events of a request were understood but not accepted (see ``/stats``)."""


class Unauthorized(Exception):
    def __init__(self, denied: access.Denied):
        super().__init__(denied.message)
        self.denied = denied


def _healthy() -> tuple[bool, dict]:
    return True, {"status": "ok"}


class HailwhaleWeb:
    app = Klein()

    def __init__(
        self,
        ingest,
        flusher,
        reader,
        stats_snapshot: Callable[[], dict],
        clock: IReactorTime,
        schema,
        max_body_bytes: int = 1 << 20,
        count_now_timeout: float = 10.0,
        policy: access.Policy = access.Policy(),
        health: Callable[[], tuple[bool, dict]] = _healthy,
        metrics: Callable[[str | None], tuple[bytes, str]] | None = None,
        openapi: dict | None = None,
        rng: random.Random | None = None,
        files: Assets | None = None,
    ):
        self._ingest = ingest
        self._flusher = flusher
        self._reader = reader
        self._stats_snapshot = stats_snapshot
        self._clock = clock
        self._schema = schema
        self._max_body = max_body_bytes
        self._count_now_timeout = count_now_timeout
        self._policy = policy
        self._health = health
        self._metrics = metrics
        self._openapi = openapi
        self._rng = rng if rng is not None else random.Random()
        self._files = files if files is not None else Assets.packaged()
        self._events = EventMemo()

    def resource(self) -> "CountingFront":
        """The HTTP API: the counting front (:class:`CountingFront`) before the Klein app."""
        return CountingFront(self, self.app.resource())

    def answer_count(self, request: IRequest, handler: Callable[[IRequest], bytes]) -> bytes:
        """
        The answer of a counting handler called directly (not through Klein), its errors
        answered as the Klein error handlers answer them.
        """
        try:
            return handler(request)
        except Unauthorized as error:
            return self._unauthorized(request, error.denied)
        except FieldError as error:
            return self._bad_input(request, error)
        except Dropped as error:
            return self._dropped(request, error)
        except Exception:
            return self._server_error(request, Failure())

    def _require(self, request: IRequest, token: str | None) -> None:
        """Raise :class:`Unauthorized` unless the request presents ``token`` (when one is required)."""
        if token is None:
            return
        denied = access.check(token, access.presented(request.getHeader(b"Authorization"), _args(request)))
        if denied is not None:
            raise Unauthorized(denied)

    def _require_read(self, request: IRequest, scope_of: "Callable[[dict, float], tuple] | None" = None) -> None:
        """
        Raise :class:`Unauthorized` unless the request presents the read token (when one is
        required) or a read grant whose scope covers it: ``scope_of(params, now)`` says what
        the request reads, as :func:`access.within` takes it (None: no grant opens this endpoint).
        """
        token = self._policy.read_token
        if token is None:
            return
        params = _args(request)
        presented = access.presented(request.getHeader(b"Authorization"), params)
        grant = params.get(access.GRANT_PARAMETER) or None
        if access.is_grant(presented):
            grant, presented = grant or presented, None
        if presented is not None or grant is None:
            denied = access.check(token, presented)
            if denied is None or grant is None:
                if denied is not None:
                    raise Unauthorized(denied)
                return
        if scope_of is None:
            raise Unauthorized(access.Denied("grant_not_accepted", "a read grant does not open this endpoint", 403))
        now = self._clock.seconds()
        scope = access.verify_grant(token, grant, now)
        if isinstance(scope, access.Denied):
            raise Unauthorized(scope)
        denied = access.within(scope, *scope_of(params, now))
        if denied is not None:
            raise Unauthorized(denied)

    # -- counting ---------------------------------------------------------------------

    @app.route("/count", methods=["GET", "POST"])
    def count(self, request: IRequest):
        self._require(request, self._policy.write_token)
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
            request.setHeader(b"X-Hailwhale-Reason", error.reason.encode("ascii", "backslashreplace"))
        except Dropped as error:
            request.setResponseCode(503)
            request.setHeader(b"X-Hailwhale-Error", str(error).encode("ascii"))
            request.setHeader(b"X-Hailwhale-Reason", b"dropped")
        return PIXEL

    @app.route("/count_decision", methods=["GET", "POST"])
    def count_decision(self, request: IRequest):
        """Counts decisions (see :mod:`hailwhale.decide.counting`) through the same ingest path as ``/count``."""
        self._require(request, self._policy.write_token)
        self._accept(request, counting.event_from_fields)
        _allow_any_origin(request)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"OK"

    @app.route("/count", methods=["OPTIONS"])
    @app.route("/count_decision", methods=["OPTIONS"])
    @app.route("/count.gif", methods=["OPTIONS"])
    @app.route("/count_now", methods=["OPTIONS"])
    @app.route("/count_decided_now", methods=["OPTIONS"])
    @app.route("/flush", methods=["OPTIONS"])
    def preflight(self, request: IRequest):
        """Counting from any page: the asking origin is allowed, with credentials (cookies) and the write token."""
        origin = request.getHeader(b"Origin") or b"*"
        request.setHeader(b"Access-Control-Allow-Origin", origin)
        request.setHeader(b"Access-Control-Allow-Credentials", b"true")
        request.setHeader(b"Access-Control-Allow-Methods", b"GET, POST, OPTIONS")
        request.setHeader(b"Access-Control-Allow-Headers", b"Authorization, Content-Type")
        request.setHeader(b"Access-Control-Max-Age", b"86400")
        request.setHeader(b"Vary", b"Origin")
        request.setResponseCode(204)
        return b""

    @app.route("/totals", methods=["OPTIONS"])
    @app.route("/plotpoints", methods=["OPTIONS"])
    @app.route("/rank", methods=["OPTIONS"])
    @app.route("/dimensions", methods=["OPTIONS"])
    @app.route("/pks", methods=["OPTIONS"])
    @app.route("/decide", methods=["OPTIONS"])
    @app.route("/stats", methods=["OPTIONS"])
    @app.route("/metrics", methods=["OPTIONS"])
    @app.route("/health", methods=["OPTIONS"])
    @app.route("/openapi.json", methods=["OPTIONS"])
    def read_preflight(self, request: IRequest):
        """Reading from a page: only allowed origins (every one unless --cors-origin), the read token as a header."""
        self._allow_origin(request)
        request.setHeader(b"Access-Control-Allow-Methods", b"GET, OPTIONS")
        request.setHeader(b"Access-Control-Allow-Headers", b"Authorization")
        request.setHeader(b"Access-Control-Max-Age", b"86400")
        request.setResponseCode(204)
        return b""

    @app.route("/count_now", methods=["GET", "POST"])
    def count_now(self, request: IRequest):
        return self._count_durably(request)

    @app.route("/count_decided_now", methods=["GET", "POST"])
    def count_decided_now(self, request: IRequest):
        """``/count_decision``, answered once the decisions are in the store (as ``/count_now``)."""
        return self._count_durably(request, counting.event_from_fields)

    @defer.inlineCallbacks
    def _count_durably(self, request: IRequest, parse: Callable | None = None):
        self._require(request, self._policy.write_token)
        seq = self._ingest.accumulator.next_seq
        self._accept(request, parse)
        _allow_any_origin(request)
        durable = self._flusher.when_durable(seq)
        self._flusher.flush()
        durable.addTimeout(self._count_now_timeout, self._clock)
        try:
            yield durable
        except defer.TimeoutError:
            return self._json(
                request,
                503,
                {
                    "error": "accepted, but not yet written to the store; it will be retried",
                    "reason": "store_unavailable",
                },
            )
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"OK"

    @app.route("/flush", methods=["POST"])
    @defer.inlineCallbacks
    def flush(self, request: IRequest):
        self._require(request, self._policy.write_token)
        emptied = yield self._flusher.flush()
        status = 200 if emptied else 503
        return self._json(request, status, {"flushed": emptied, "backlog_events": self._flusher.backlog_events})

    @app.route("/flush_hail", methods=["GET", "POST"])
    @defer.inlineCallbacks
    def flush_hail(self, request: IRequest):
        """The original's ``GET /flush_hail``: ``/flush``, answered ``OK`` as the original did (a 503 if it failed)."""
        self._require(request, self._policy.write_token)
        emptied = yield self._flusher.flush()
        if not emptied:
            return self._json(request, 503, {"flushed": False, "backlog_events": self._flusher.backlog_events})
        _allow_any_origin(request)
        request.setHeader(b"Content-Type", b"text/plain; charset=utf-8")
        return b"OK"

    def _accept(self, request: IRequest, parse: Callable | None = None) -> None:
        parse = parse or self._events
        now = self._clock.seconds()
        batch = [parse(raw, now, self._ingest.limits) for raw in self._event_fields(request)]
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
        return self._answer(request, planner.totals_from_params, self._reads(planner.DEFAULT_TOTALS_PERIODS))

    @app.route("/plotpoints", methods=["GET"])
    def plotpoints(self, request: IRequest):
        return self._answer(request, planner.plotpoints_from_params, self._reads((planner.DEFAULT_PLOTPOINTS_PERIOD,)))

    @app.route("/rank", methods=["GET"])
    def rank(self, request: IRequest):
        return self._answer(request, rank.rank_from_params, self._reads((planner.DEFAULT_PLOTPOINTS_PERIOD,)))

    @app.route("/dimensions", methods=["GET"])
    def dimensions(self, request: IRequest):
        return self._answer(
            request,
            lambda params, now, schema, limits: planner.dimensions_from_params(params, limits),
            lambda params, now: (fields.pk(params.get("pk"), self._ingest.limits), (), 0),
        )

    @app.route("/pks", methods=["GET"])
    def pks(self, request: IRequest):
        """A pk's child pks (the top-level pks without ``pk``) and the metric names counted under it."""
        return self._answer(
            request,
            lambda params, now, schema, limits: browse.pks_from_params(params, limits),
            lambda params, now: (fields.pk(params["pk"], self._ingest.limits) if params.get("pk") else None, (), 0),
        )

    def _reads(self, default_periods: tuple[str, ...]) -> Callable[[dict, float], tuple]:
        """What a query reads, for a grant: its pk, the stored metrics of its formulas and sort, its longest window."""

        def reads(params: dict, now: float) -> tuple:
            query = planner.from_params(params, now, self._schema, self._ingest.limits, default_periods)
            formulas = [*query.formulas, *([query.sort.formula] if query.sort else [])]
            return (
                query.pk,
                {name for f in formulas for name in f.inputs},
                max(window.end - window.start for window in query.windows),
            )

        return reads

    @app.route("/decide", methods=["GET"])
    def decide(self, request: IRequest):
        """
        Chooses an option (see :mod:`hailwhale.decide.planning`); the draw has its own generator, seeded from
        ours.
        """
        rng = random.Random(self._rng.getrandbits(64))
        return self._answer(
            request, lambda params, now, schema, limits: planning.decide_from_params(params, now, schema, limits, rng)
        )

    @defer.inlineCallbacks
    def _answer(self, request: IRequest, planner, scope_of=None):
        """
        Plan the query from the request (a bad parameter is a 400), run it in the store's
        threads, answer JSON; ``scope_of`` says what it reads, for a read grant (None: the
        token only).
        """
        self._require_read(request, scope_of)
        params = _args(request)
        now = self._clock.seconds()
        if params.get("at"):  # the answer as it stood then (the original's total(..., at=...))
            now = fields.timestamp(params["at"], now, self._ingest.limits)
        plan = planner(params, now, self._schema, self._ingest.limits)
        answer = yield self._reader.answer(plan)
        return self._json(request, 200, answer)

    # -- the daemon itself --------------------------------------------------------------

    @app.route("/stats", methods=["GET"])
    def stats(self, request: IRequest):
        self._require_read(request)
        return self._json(request, 200, self._stats_snapshot())

    @app.route("/metrics", methods=["GET"])
    def metrics(self, request: IRequest):
        self._require_read(request)
        if self._metrics is None:
            raise NotFound()
        accept = request.getHeader(b"Accept")
        body, content_type = self._metrics(accept.decode("latin-1") if accept else None)
        self._allow_origin(request)
        request.setHeader(b"Content-Type", content_type.encode("ascii"))
        return body

    @app.route("/health", methods=["GET"])
    def health(self, request: IRequest):
        healthy, answer = self._health()
        request.setHeader(b"Cache-Control", b"no-store")
        return self._json(request, 200 if healthy else 503, answer)

    @app.route("/openapi.json", methods=["GET"])
    def openapi(self, request: IRequest):
        if self._openapi is None:
            raise NotFound()
        return self._json(request, 200, self._openapi)

    # -- pages, the widget and /graph.js ------------------------------------------------

    @app.route("/", methods=["GET", "HEAD"])
    @app.route("/dashboard", methods=["GET", "HEAD"])
    def dashboard(self, request: IRequest):
        """The dashboard: a static page (it reads the API with the read token the person gives it)."""
        request.setHeader(b"Content-Security-Policy", PAGE_POLICY)
        request.setHeader(b"Referrer-Policy", b"same-origin")
        request.setHeader(b"X-Frame-Options", b"SAMEORIGIN")
        return self._asset(request, self._files.page, None, shared=False)

    @app.route("/hailwhale.js", methods=["GET", "HEAD"])
    def bundle(self, request: IRequest):
        """The widget in one file (uPlot and hailwhale's scripts), for pages of any origin."""
        return self._asset(request, self._files.bundle, _args(request).get("v"))

    @app.route("/static/<path:name>", methods=["GET", "HEAD"])
    def static(self, request: IRequest, name: str):
        asset = self._files.get(name)
        if asset is None:
            raise NotFound()
        return self._asset(request, asset, _args(request).get("v"))

    @app.route("/graph.js", methods=["GET", "HEAD"])
    def graph_js(self, request: IRequest):
        """The original's embed: a script that draws a graph where its <script> tag stands, on any page."""
        options = embed.graph_options(_args(request))
        script = embed.graph_js(options, self._files.url(assets.BUNDLE)).encode("utf-8")
        request.setHeader(b"Cache-Control", b"no-cache")
        return self._asset(request, assets.make_asset("graph.js", script), None)

    def _asset(self, request: IRequest, asset: Asset, version: str | None, shared: bool = True) -> bytes:
        """A file: its ETag (a 304 when the browser has it), gzip when accepted, long caching for its versioned URL."""
        request.setHeader(b"Content-Type", asset.content_type.encode("ascii"))
        request.setHeader(b"ETag", asset.etag)
        if not request.responseHeaders.hasHeader(b"Cache-Control"):
            request.setHeader(b"Cache-Control", assets.cache_control(asset, version))
        request.setHeader(b"X-Content-Type-Options", b"nosniff")
        request.setHeader(b"Vary", b"Accept-Encoding")
        if shared:
            request.setHeader(b"Cross-Origin-Resource-Policy", b"cross-origin")
            _allow_any_origin(request)
        if assets.not_modified(asset, request.getHeader(b"If-None-Match")):
            request.setResponseCode(304)
            return b""
        if asset.gzipped is not None and assets.accepts_gzip(request.getHeader(b"Accept-Encoding")):
            request.setHeader(b"Content-Encoding", b"gzip")
            return asset.gzipped
        return asset.body

    # -- errors -------------------------------------------------------------------------

    @app.handle_errors(Unauthorized)
    def unauthorized(self, request: IRequest, failure):
        return self._unauthorized(request, failure.value.denied)

    def _unauthorized(self, request: IRequest, denied: access.Denied) -> bytes:
        self._ingest.count_http_error(denied.reason)
        if denied.status == 401:
            challenge = b'Bearer realm="hailwhale"'
            if denied.reason != access.MISSING.reason:
                challenge += b', error="invalid_token"'
            request.setHeader(b"WWW-Authenticate", challenge)
        return self._json(request, denied.status, {"error": denied.message, "reason": denied.reason})

    @app.handle_errors(FieldError)
    def bad_input(self, request: IRequest, failure):
        return self._bad_input(request, failure.value)

    def _bad_input(self, request: IRequest, error: FieldError) -> bytes:
        self._ingest.count_http_error(error.reason)
        return self._json(request, 400, {"error": str(error), "field": error.field, "reason": error.reason})

    @app.handle_errors(StoreUnavailable)
    def store_unavailable(self, request: IRequest, failure):
        self._ingest.count_http_error("store_unavailable")
        return self._json(
            request, 503, {"error": f"the store did not answer: {failure.value}", "reason": "store_unavailable"}
        )

    @app.handle_errors(Dropped)
    def dropped(self, request: IRequest, failure):
        return self._dropped(request, failure.value)

    def _dropped(self, request: IRequest, error: Dropped) -> bytes:
        return self._json(request, 503, {"error": str(error), "reason": "dropped"})

    @app.handle_errors(HTTPException)
    def http_error(self, request: IRequest, failure):
        """Unknown paths (404) and methods (405, with Allow), and werkzeug's other refusals, as JSON."""
        error = failure.value
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            request.setHeader(b"Allow", ", ".join(error.valid_methods).encode("ascii"))
        reason = {404: "not_found", 405: "method_not_allowed"}.get(error.code, f"http_{error.code}")
        return self._json(request, error.code, {"error": error.description, "reason": reason})

    @app.handle_errors(Exception)
    def server_error(self, request: IRequest, failure):
        return self._server_error(request, failure)

    def _server_error(self, request: IRequest, failure: Failure) -> bytes:
        """A bug: logged, and answered as a JSON 500 rather than Twisted's HTML page."""
        log.failure("while answering {method} {path}", failure, method=request.method, path=request.path)
        return self._json(request, 500, {"error": "internal error (logged)", "reason": "internal_error"})

    # -- answers ------------------------------------------------------------------------

    def _allow_origin(self, request: IRequest) -> None:
        """CORS: a read answer names only the allowed origins; every other answer allows any origin."""
        # the router merges repeated slashes (//totals is /totals), so this must too
        if re.sub(rb"/+", b"/", request.path) not in READ_PATHS or not self._policy.cors_origins:
            _allow_any_origin(request)
            return
        request.setHeader(b"Vary", b"Origin")
        origin = access.allowed_origin(self._policy.cors_origins, request.getHeader(b"Origin"))
        if origin is not None:
            request.setHeader(b"Access-Control-Allow-Origin", origin)

    def _json(self, request: IRequest, status: int, body: object) -> bytes:
        request.setResponseCode(status)
        request.setHeader(b"Content-Type", b"application/json")
        self._allow_origin(request)
        return json.dumps(body).encode("utf-8")


class EventMemo:
    """
    :func:`hailwhale.model.events.from_fields` for fields without a time (the event is at
    ``now``), remembered by the text of the fields it reads: pixels and beacons repeat
    the same few pk, dimensions and metrics, each request but a new time (and perhaps a
    cache-busting parameter, which is not read).  At most ``size`` are remembered, then
    forgotten all at once; fields that are not all text, or that fail, are read each time.
    """

    def __init__(self, size: int = REMEMBERED_EVENTS):
        self._size = size
        self._known: dict[tuple, events.Event] = {}
        self._limits: Limits | None = None

    def __call__(self, raw: dict, now: float, limits: Limits) -> events.Event:
        if raw.get("at") not in (None, ""):
            return events.from_fields(raw, now, limits)
        if limits is not self._limits:
            self._known, self._limits = {}, limits
        key = (raw.get("pk"), raw.get("dimensions"), raw.get("dimension"), raw.get("metrics"), raw.get("metric"))
        try:
            known = self._known.get(key)
        except TypeError:  # a JSON body's dicts and lists
            return events.from_fields(raw, now, limits)
        if known is None:
            known = events.from_fields(raw, now, limits)
            if len(self._known) >= self._size:
                self._known.clear()
            self._known[key] = known
        return events.Event(known.pk, known.dimensions, known.metrics, now, known.levels, known.members)


class CountingFront(resource.Resource):
    """
    The root of the HTTP API: ``GET /count.gif`` and ``GET /count``, the counting traffic,
    are answered here by the same handlers, with the same headers, errors and counts as
    through the Klein app; every other request goes to the Klein app.  It saves Klein's
    routing and Deferreds, about half of a pixel's cost; :meth:`quick` gives the same
    answers to :class:`hailwhale.web.server.HailwhaleSite`, which saves most of the rest.
    """

    isLeaf = True

    def __init__(self, web: HailwhaleWeb, routed: resource.Resource):
        super().__init__()
        self._web = web
        self._routed = routed
        self._counting: dict[bytes, Callable[[IRequest], bytes]] = {
            b"/count.gif": functools.partial(web.answer_count, handler=web.pixel),
            b"/count": functools.partial(web.answer_count, handler=web.count),
        }

    def quick(self, path: bytes) -> Callable[[IRequest], bytes] | None:
        """The answer of a GET of ``path``, if it is a counting path; else None."""
        return self._counting.get(path)

    def render(self, request: IRequest):
        if request.method == b"GET":
            answer = self._counting.get(request.path)
            if answer is not None:
                return answer(request)
        return self._routed.render(request)


def _allow_any_origin(request: IRequest) -> None:
    request.setHeader(b"Access-Control-Allow-Origin", b"*")


def _text(raw: bytes, field: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FieldError(field, "not UTF-8", "not_utf8") from None


def _args(request: IRequest) -> dict[str, str]:
    """The first value of each query (or form) argument, as text."""
    return {
        _text(key, "request"): _text(values[0], _text(key, "request"))
        for key, values in (request.args or {}).items()
        if values
    }
