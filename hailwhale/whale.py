"""
The blocking Python API, in the original's class-method style.

``Whale`` writes and reads the same store, with the same scripts, key schema and query
planner as the daemon, so scripts, Django views and the daemon can share one store::

    from hailwhale.whale import Whale
    Whale.count_now('my_counter', metrics={'hits': 1})
    assert Whale.total('my_counter', metric='hits', period='today') == 1

The store is ``Whale.configure(url)``, else ``HAILWHALE_REDIS_URL``, else the embedded
store of a daemon started in the current directory (``./hailwhale-data``), else
``redis://127.0.0.1:6379/0``.  The schema is the one the daemon recorded in the store.
"""

import itertools
import os
import threading
import time

from hailwhale import embedded, encoding, events, query, rollup
from hailwhale.accumulator import Accumulator
from hailwhale.fields import Limits
from hailwhale.schema import DEFAULT, Schema, parse_schema
from hailwhale.store import Store

DEFAULT_URL = "redis://127.0.0.1:6379/0"


def default_url() -> str:
    if os.environ.get("HAILWHALE_REDIS_URL"):
        return os.environ["HAILWHALE_REDIS_URL"]
    if embedded.socket_path("hailwhale-data").exists():
        return embedded.socket_url("hailwhale-data")
    return DEFAULT_URL


class Whale:
    _store: Store | None = None
    _schema: Schema | None = None
    _settings: tuple = (None, None, False)
    _pid: int | None = None
    _batches = itertools.count(1)
    _writing = threading.Lock()  # batch tokens must reach the store in order
    limits = Limits()

    @classmethod
    def configure(cls, url: str | None = None, schema: str | None = None, cluster: bool = False) -> None:
        """Use the store at ``url`` (and ``schema``, else the one recorded there, else the default)."""
        if cls._store is not None:
            cls._store.close()
        cls._settings = (url, schema, cluster)
        cls._store = Store.connect(url or default_url(), cluster=cluster)
        cls._schema = parse_schema(schema) if schema else None
        cls._pid = os.getpid()

    @classmethod
    def store(cls) -> Store:
        if cls._store is None:
            cls.configure()
        elif cls._pid != os.getpid():
            # a forked child (gunicorn, multiprocessing) needs its own connection and writer id
            cls.configure(*cls._settings)
        return cls._store

    @classmethod
    def schema(cls) -> Schema:
        if cls._schema is None:
            cls._schema = parse_schema(cls.store().recorded_schema() or DEFAULT)
        return cls._schema

    # -- writing ----------------------------------------------------------------------

    @classmethod
    def count_now(cls, pk, dimensions=None, metrics=None, at=None, *, metric=None, now: float | None = None) -> None:
        """Count one event in the store now; when this returns, it is there."""
        now = time.time() if now is None else now
        event = events.from_fields(
            {"pk": pk, "dimensions": dimensions, "metrics": metrics if metrics is not None else metric, "at": at},
            now, cls.limits.bounded_in_past(cls.schema().longest_retention()),
        )
        one = Accumulator(cls.schema().finest.interval, max_keys=1)
        one.add(event)
        batch = one.swap()
        plan = rollup.plan(batch.entries, cls.schema(), now, batch.levels, batch.members)
        with cls._writing:
            applied = cls.store().apply(plan, next(cls._batches), set())
        if applied.repeats or applied.refused:
            raise RuntimeError(f"the store did not take this event: {applied}")

    # -- reading ----------------------------------------------------------------------

    @classmethod
    def _run(cls, plan):
        return query.run(plan, cls.store())

    @classmethod
    def totals(cls, pk, dimensions=None, metrics=None, periods=None, *, metric=None, period=None, dimension=None,
               depth=0, sort=None, limit=0, tz=None, tzoffset=None, now: float | None = None) -> dict:
        """``{period: {dimension: {metric: total}}}`` (grouped rows with ``depth``), as ``/totals`` answers."""
        params = {"pk": pk, "dimensions": _first(dimensions, dimension), "metrics": _first(metrics, metric),
                  "periods": _first(periods, period), "depth": depth, "sort": sort, "limit": limit, "tz": tz,
                  "tzoffset": tzoffset}
        return cls._run(query.totals_from_params(params, _now(now), cls.schema(), cls.limits))

    @classmethod
    def total(cls, pk, metric="hits", dimension=None, period=None, *, dimensions=None, tz=None, tzoffset=None,
              now: float | None = None) -> float:
        """One number: ``metric`` (a name or a formula) over ``period`` (default: thirty)."""
        label = period or query.DEFAULT_PLOTPOINTS_PERIOD
        answer = cls.totals(pk, _first(dimension, dimensions), [metric], [label], tz=tz, tzoffset=tzoffset, now=now)
        (by_node,) = answer[label].values()
        return by_node[metric]

    @classmethod
    def plotpoints(cls, pk, dimensions=None, metrics=None, period=None, *, metric=None, dimension=None, depth=0,
                   sort=None, limit=0, tz=None, tzoffset=None, now: float | None = None) -> dict:
        """``{dimension: {metric: [[epoch_ms, value], ...]}}`` (grouped rows with ``depth``), as ``/plotpoints``."""
        params = {"pk": pk, "dimensions": _first(dimensions, dimension), "metrics": _first(metrics, metric),
                  "period": period, "depth": depth, "sort": sort, "limit": limit, "tz": tz, "tzoffset": tzoffset}
        return cls._run(query.plotpoints_from_params(params, _now(now), cls.schema(), cls.limits))

    @classmethod
    def rank(cls, pk, metric="hits", dimension=None, period=None, *, recursive=True, tz=None, tzoffset=None,
             now: float | None = None) -> dict:
        """Which sub-dimensions of ``dimension`` matter for ``metric`` (a name or a ratio), as ``/rank``."""
        params = {"pk": pk, "dimension": dimension, "metric": [metric], "period": period, "recursive": recursive,
                  "tz": tz, "tzoffset": tzoffset}
        return cls._run(query.rank_from_params(params, _now(now), cls.schema(), cls.limits))

    @classmethod
    def get_subdimensions(cls, pk, dimension="_") -> list:
        """The direct children of ``dimension``: names, or lists for deeper paths."""
        rows = cls._run(query.dimensions_from_params({"pk": pk, "dimension": dimension, "depth": 1}, cls.limits))
        return [encoding.plain(tuple(row["path"])) for row in rows[1:]]

    @classmethod
    def all_subdimensions(cls, pk, dimension="_") -> list:
        """``dimension`` itself, then everything below it, depth first."""
        rows = cls._run(query.dimensions_from_params({"pk": pk, "dimension": dimension, "depth": query.MAX_DEPTH},
                                                     cls.limits))
        return [encoding.plain(tuple(row["path"])) for row in rows]


def _first(*values):
    for value in values:
        if value is not None:
            return value
    return None


def _now(now: float | None) -> float:
    return time.time() if now is None else now
