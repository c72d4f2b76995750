"""
Where a Django project's counts go: the daemon (``client``, a :class:`hailwhale.client.Client`),
or, for a project's own test suite without a daemon, ``memory`` (remembers every event, and
adds them up for ``total``) or ``null`` (counts nothing, reads zero).

Every backend has the client's methods; :func:`hailwhale.contrib.django.backend` gives the
one ``HAILWHALE['BACKEND']`` names::

    from hailwhale.contrib.django import backend
    assert [("shop.Order", "12")] == [e.pk for e in backend().counted]   # with BACKEND "memory"
"""

import threading

import attrs

from hailwhale.client import Client
from hailwhale.contrib.django.conf import Settings
from hailwhale.web import embed


@attrs.frozen
class Counted:
    """One event a test backend took: as the caller gave it, and how (``count``, ``count_now``, ``count_decision``)."""

    pk: object
    dimensions: object = None
    metrics: object = None
    at: object = None
    how: str = "count"
    decision: object = None
    option: object = None


def _path(value: object) -> tuple[str, ...]:
    if value is None or value == "_":
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(item) for item in value)
    return (str(value),)


def _leaves(dimensions: object, prefix: tuple[str, ...] = ()) -> set[tuple[str, ...]]:
    """Every node an event's dimensions count under (the root included)."""
    found = {prefix}
    if isinstance(dimensions, dict):
        for key, value in dimensions.items():
            found |= _leaves(value, (*prefix, str(key)))
    elif isinstance(dimensions, (list, tuple)):
        for depth in range(1, len(dimensions) + 1):
            found.add((*prefix, *(str(item) for item in dimensions[:depth])))
    elif dimensions not in (None, "_"):
        found.add((*prefix, str(dimensions)))
    return found


def graph_tag(settings: Settings, pk, dimension=None, metric=None, extra=None, host=None) -> str:
    """The graph tag every backend makes the same way: on the public URL, with a grant when a read token is set."""
    return embed.graph_tag(
        pk,
        dimension,
        metric,
        extra,
        settings.public_url if host is None else host,
        settings.read_token,
        settings.grant_seconds,
    )


class NullBackend:
    """Counts nothing; reads are zero (totals and series empty); graph tags are drawn as with the daemon."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def count(self, pk, dimensions=None, metrics=None, at=None, *, metric=None) -> None:
        self._take(Counted(pk, dimensions, metrics if metrics is not None else metric, at, "count"))

    def count_now(self, pk, dimensions=None, metrics=None, at=None, *, metric=None) -> None:
        self._take(Counted(pk, dimensions, metrics if metrics is not None else metric, at, "count_now"))

    def count_decision(self, pk, decided=None, metric=None, dimensions=None, *, option=None, decision=None, **kw):
        metrics = kw.get("metrics") if kw.get("metrics") is not None else metric
        if decided is not None:
            ((decision, option),) = dict(decided).items()
        self._take(Counted(pk, dimensions, metrics, kw.get("at"), "count_decision", decision, option))

    def count_decided_now(self, pk_base, decision, option, dimensions=None, metrics=None, at=None) -> None:
        self.count_decision(pk_base, dimensions=dimensions, option=option, decision=decision, metrics=metrics, at=at)

    def _take(self, event: Counted) -> None:
        pass

    def batch(self):
        import contextlib

        return contextlib.nullcontext(self)

    def total(self, pk, metric="hits", dimension=None, period=None, *a, **kw) -> float:
        return 0.0

    def totals(self, *a, **kw) -> dict:
        return {}

    def plotpoints(self, *a, **kw) -> dict:
        return {}

    def rank(self, *a, **kw) -> dict:
        return {}

    def get_subdimensions(self, *a, **kw) -> list:
        return []

    def all_subdimensions(self, pk, dimension="_") -> list:
        return [dimension]

    def flush(self) -> dict:
        return {"flushed": True, "backlog_events": 0}

    def grant(self, pk=None, metrics=None, period=None, expires_in=None, now=None) -> str:
        if self.settings.read_token is None:
            raise ValueError("no read token to sign with: HAILWHALE['READ_TOKEN']")
        seconds = self.settings.grant_seconds if expires_in is None else expires_in
        return embed.grant(self.settings.read_token, pk, metrics, period, seconds, now)

    def graph_tag(self, pk, dimension=None, metric=None, extra=None, host=None) -> str:
        return graph_tag(self.settings, pk, dimension, metric, extra, host)


class MemoryBackend(NullBackend):
    """
    Remembers every event (``counted``, a list of :class:`Counted`; ``clear()`` forgets
    them); ``total`` adds up a metric (``hits``: one per event) over the events under a pk
    and in a dimension, whatever their time.
    """

    def __init__(self, settings: Settings):
        super().__init__(settings)
        self.counted: list[Counted] = []
        self._lock = threading.Lock()

    def _take(self, event: Counted) -> None:
        with self._lock:
            self.counted.append(event)

    def clear(self) -> None:
        with self._lock:
            self.counted.clear()

    def total(self, pk, metric="hits", dimension=None, period=None, *a, **kw) -> float:
        want_pk, want_node = _path(pk), _path(dimension if dimension is not None else kw.get("dimensions"))
        found = 0.0
        for event in list(self.counted):
            path = _path(event.pk)
            if event.how == "count_decision":
                path = (*path, *_path(event.decision), *_path(event.option))
            if path[: len(want_pk)] != want_pk or want_node not in _leaves(event.dimensions):
                continue
            given = event.metrics
            amounts: dict = {"hits": 1}
            amounts.update(dict.fromkeys(given, 1) if isinstance(given, (list, tuple)) else dict(given or {}))  # type: ignore[call-overload]
            found += float(amounts.get(metric, 0))
        return found


class ClientBackend(Client):
    """The daemon: a :class:`hailwhale.client.Client` made from the settings."""

    def __init__(self, settings: Settings):
        super().__init__(
            settings.url,
            settings.udp,
            read_token=settings.read_token,
            write_token=settings.write_token,
            timeout=settings.timeout,
            max_datagram=settings.max_datagram,
        )
        self.settings = settings

    def grant(self, pk=None, metrics=None, period=None, expires_in=None, now=None) -> str:
        seconds = self.settings.grant_seconds if expires_in is None else expires_in
        return super().grant(pk, metrics, period, seconds, now)

    def graph_tag(self, pk, dimension=None, metric=None, extra=None, host=None) -> str:
        return graph_tag(self.settings, pk, dimension, metric, extra, host)


BACKENDS = {"client": ClientBackend, "memory": MemoryBackend, "null": NullBackend}


def make(settings: Settings):
    return BACKENDS[settings.backend](settings)
