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

Pages that show graphs get them from the daemon (``Whale.graph_tag``); when the daemon
has a read token, ``Whale.configure(read_token=...)`` (or ``HAILWHALE_READ_TOKEN``, or
``HAILWHALE_READ_TOKEN_FILE``) lets Whale mint the read grants those pages carry instead.
"""

import itertools
import os
import random
import threading
import time

from hailwhale import compat
from hailwhale.aggregate import rollup
from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.decide import counting, planning
from hailwhale.model import events, paths
from hailwhale.model.fields import Limits
from hailwhale.model.schema import DEFAULT, Schema, parse_schema
from hailwhale.query import browse, planner, rank, requests
from hailwhale.store import Store, embedded
from hailwhale.web import access, embed

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
    _settings: tuple = (None, None, False, None)
    _read_token: str | None = None
    _pid: int | None = None
    _batches = itertools.count(1)
    _writing = threading.Lock()  # batch tokens must reach the store in order
    limits = Limits()

    @classmethod
    def configure(
        cls, url: str | None = None, schema: str | None = None, cluster: bool = False, read_token: str | None = None
    ) -> None:
        """
        Use the store at ``url`` (and ``schema``, else the one recorded there, else the
        default); ``read_token``: the daemon's read token, to mint grants with.
        """
        cls._read_token = access.valid_token(read_token) if read_token is not None else None
        if cls._store is not None:
            cls._store.close()
        cls._settings = (url, schema, cluster, read_token)
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
        assert cls._store is not None
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
            now,
            cls.limits.bounded_in_past(cls.schema().longest_retention()),
        )
        cls._write(event, now)

    @classmethod
    def count_decision(
        cls,
        pk,
        decided=None,
        metric=None,
        dimensions=None,
        *,
        option=None,
        decision=None,
        metrics=None,
        at=None,
        now: float | None = None,
    ) -> None:
        """
        Count one decision now: ``decided={'language': 'EN'}`` (or ``option='EN'``, with an
        optional ``decision='language'``) under ``pk``, with its metrics and the visitor's
        dimensions; counted under the pk path ``pk + [decision name] + [option]``.
        """
        now = time.time() if now is None else now
        raw = {
            "pk": pk,
            "decided": decided,
            "option": option,
            "decision": decision,
            "dimensions": dimensions,
            "metrics": metrics if metrics is not None else metric,
            "at": at,
        }
        cls._write(
            counting.event_from_fields(raw, now, cls.limits.bounded_in_past(cls.schema().longest_retention())), now
        )

    @classmethod
    def _write(cls, event, now: float) -> None:
        one = Accumulator(cls.schema().finest.interval, max_keys=1)
        one.add(event)
        batch = one.swap()
        assert batch is not None
        plan = rollup.plan(batch.entries, cls.schema(), now, batch.levels, batch.members, batch.samples)
        with cls._writing:
            applied = cls.store().apply(plan, next(cls._batches), set())
        if applied.repeats or applied.refused:
            raise RuntimeError(f"the store did not take this event: {applied}")
        # no daemon may be running to fold what closed: fold this pk's closed finest buckets now
        finest = cls.schema().finest.interval
        cls.store().fold(applied.tags, int(now // finest) * finest - finest, now, cls.schema())

    # -- reading ----------------------------------------------------------------------

    @classmethod
    def _run(cls, plan):
        return requests.run(plan, cls.store())

    @classmethod
    def totals(
        cls,
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
        now: float | None = None,
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
            "depth": depth,
            "sort": sort,
            "limit": limit,
            "tz": tz,
            "tzoffset": tzoffset,
        }
        return cls._run(planner.totals_from_params(params, _now(now), cls.schema(), cls.limits))

    @classmethod
    def total(
        cls,
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
        now: float | None = None,
    ) -> float:
        """
        One number: ``metric`` (a name or a formula) over ``period`` (default: thirty) as it
        stands now, or as it stood at ``at`` (a datetime, epoch seconds or ISO 8601); with
        ``index``, the one point of the period's series at that index (-1: the latest).
        """
        now = compat.moment(at, _now(now))
        if index is not None:
            series = cls.plotpoints(
                pk, dimension, [metric], period, dimension=dimensions, tz=tz, tzoffset=tzoffset, now=now
            )
            (by_metric,) = series.values()
            return by_metric[metric][index][1]
        label = period or planner.DEFAULT_PLOTPOINTS_PERIOD
        answer = cls.totals(pk, dimension, [metric], [label], dimension=dimensions, tz=tz, tzoffset=tzoffset, now=now)
        (by_node,) = answer[label].values()
        return by_node[metric]

    @classmethod
    def plotpoints(
        cls,
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
        now: float | None = None,
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
            "depth": depth,
            "sort": sort,
            "limit": limit,
            "tz": tz,
            "tzoffset": tzoffset,
        }
        return cls._run(planner.plotpoints_from_params(params, _now(now), cls.schema(), cls.limits))

    @classmethod
    def rank(
        cls,
        pk,
        metric="hits",
        dimension=None,
        period=None,
        *,
        recursive=True,
        tz=None,
        tzoffset=None,
        now: float | None = None,
    ) -> dict:
        """Which sub-dimensions of ``dimension`` matter for ``metric`` (a name or a ratio), as ``/rank``."""
        params = {
            "pk": pk,
            "dimension": dimension,
            "metric": [metric],
            "period": period,
            "recursive": recursive,
            "tz": tz,
            "tzoffset": tzoffset,
        }
        return cls._run(rank.rank_from_params(params, _now(now), cls.schema(), cls.limits))

    @classmethod
    def decide(
        cls,
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
        rng: random.Random | None = None,
        now: float | None = None,
        **original,
    ):
        """
        Choose one of ``options`` (a list, or ``{'language': ['EN', 'SP']}``) for a visitor
        with ``known_dimensions``, maximising ``by_metric`` (alias ``formula``; a metric or a
        ratio ``a/b``; ``goal='min'`` minimises).  Returns the chosen option as given, or
        with ``explain=True`` the explanation dict, as ``/decide`` answers.  ``unit`` (a
        visitor id) makes the answer sticky; ``rng`` (a ``random.Random``) makes it reproducible.
        The original's order, ``decide(pk_base, decision_name, options, formula, known_data)``,
        is taken too (see :func:`hailwhale.compat.decide_params`).
        """
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
        plan = planning.decide_from_params(
            params, _now(now), cls.schema(), cls.limits, rng if rng is not None else random.Random()
        )
        answer = cls._run(plan)
        return answer if explain else answer["option"]

    # -- the original's names ------------------------------------------------------------

    @classmethod
    def count_decided_now(cls, pk_base, decision, option, dimensions=None, metrics=None, at=None, **kw) -> None:
        """The original's ``count_decided_now``: ``count_decision`` of ``option`` of ``decision`` under ``pk_base``."""
        compat.count_decided_now(cls, pk_base, decision, option, dimensions, metrics, at, **kw)

    @classmethod
    def scalar_plotpoints(cls, pk, *args, **kw) -> dict:
        """The original's ``scalar_plotpoints`` (see :func:`hailwhale.compat.scalar_plotpoints`)."""
        return compat.scalar_plotpoints(cls, pk, *args, **kw)

    @classmethod
    def ratio_plotpoints(cls, pk, *args, **kw) -> dict:
        """The original's ``ratio_plotpoints`` (see :func:`hailwhale.compat.ratio_plotpoints`)."""
        return compat.ratio_plotpoints(cls, pk, *args, **kw)

    @classmethod
    def rank_subdimensions_scalar(cls, pk, *args, **kw) -> dict:
        """The original's ``rank_subdimensions_scalar``: ``rank`` of a metric."""
        return compat.rank_subdimensions_scalar(cls, pk, *args, **kw)

    @classmethod
    def rank_subdimensions_ratio(cls, pk, *args, **kw) -> dict:
        """The original's ``rank_subdimensions_ratio``: ``rank`` of ``numerator/denominator``."""
        return compat.rank_subdimensions_ratio(cls, pk, *args, **kw)

    @classmethod
    def cached_plotpoints(cls, pk, *args, unmemoize=False, **kw) -> dict:
        """The original's ``cached_plotpoints``: ``plotpoints`` (nothing is cached: queries are read in the store)."""
        return cls.plotpoints(pk, *args, **kw)

    @classmethod
    def cached_totals(cls, pk, *args, unmemoize=False, **kw) -> dict:
        """The original's ``cached_totals``: ``totals``."""
        return cls.totals(pk, *args, **kw)

    @classmethod
    def cached_rank(cls, pk, *args, unmemoize=False, **kw) -> dict:
        """The original's ``cached_rank``: ``rank``."""
        return cls.rank(pk, *args, **kw)

    @classmethod
    def get_subdimensions(cls, pk, dimension="_") -> list:
        """The direct children of ``dimension``: names, or lists for deeper paths."""
        rows = cls._run(planner.dimensions_from_params({"pk": pk, "dimension": dimension, "depth": 1}, cls.limits))
        return [paths.plain(tuple(row["path"])) for row in rows[1:]]

    @classmethod
    def all_subdimensions(cls, pk, dimension="_") -> list:
        """``dimension`` itself, then everything below it, depth first."""
        rows = cls._run(
            planner.dimensions_from_params({"pk": pk, "dimension": dimension, "depth": planner.MAX_DEPTH}, cls.limits)
        )
        return [paths.plain(tuple(row["path"])) for row in rows]

    @classmethod
    def pks(cls, pk=None, limit: int = browse.DEFAULT_LIMIT) -> dict:
        """
        What exists under ``pk`` (None: the top-level pks), as ``/pks`` answers:
        ``{"pk", "children": [{"name", "pk"}, ...], "more", "metrics", "more_metrics"}``.
        """
        return cls._run(browse.pks_from_params({"pk": pk, "limit": limit}, cls.limits))

    # -- graphs on pages ----------------------------------------------------------------

    @classmethod
    def read_token(cls) -> str | None:
        """The daemon's read token: ``configure(read_token=...)``, else ``HAILWHALE_READ_TOKEN``, else the first
        line of the file ``HAILWHALE_READ_TOKEN_FILE`` names, else None (the daemon's queries are open)."""
        if cls._read_token is not None:
            return cls._read_token
        if os.environ.get("HAILWHALE_READ_TOKEN"):
            return access.valid_token(os.environ["HAILWHALE_READ_TOKEN"])
        if os.environ.get("HAILWHALE_READ_TOKEN_FILE"):
            with open(os.environ["HAILWHALE_READ_TOKEN_FILE"], encoding="utf-8") as file:
                return access.token_from_file_text(file.read())
        return None

    @classmethod
    def grant(
        cls,
        pk=None,
        metrics=None,
        period=None,
        expires_in: float = embed.DEFAULT_GRANT_SECONDS,
        now: float | None = None,
    ) -> str:
        """
        A read grant for a page (see :func:`hailwhale.web.embed.grant`): ``pk`` and every pk
        under it, the stored metrics of ``metrics`` (names or formulas), periods up to
        ``period`` (``thirty``, ``35d``, seconds), for ``expires_in`` seconds.  None means
        any.  Needs the read token (:meth:`read_token`).
        """
        token = cls.read_token()
        if token is None:
            raise ValueError("no read token to sign with: Whale.configure(read_token=...) or HAILWHALE_READ_TOKEN")
        return embed.grant(token, pk, metrics, period, expires_in, now)

    @classmethod
    def graph_tag(cls, pk, dimension=None, metric=None, extra=None, host="") -> str:
        """
        The original's ``<script src='{host}/graph.js?...'></script>``: a live graph of
        ``metric`` for ``pk`` and ``dimension``, drawn where the tag stands on any page
        (``extra``: more /graph.js parameters, such as ``period``, ``depth``, ``title``).
        With a read token (:meth:`read_token`) the tag carries a grant for this graph alone,
        valid a day, never the token.
        """
        return embed.graph_tag(pk, dimension, metric, extra, host, read_token=cls.read_token())


def _now(now: float | None) -> float:
    return time.time() if now is None else now
