"""The query engine on a real store, through the Python API (the HTTP API shares the planner)."""

import datetime

import pytest

from hailwhale.model.fields import FieldError
from hailwhale.testing import upcoming
from hailwhale.whale import Whale

HOUR, DAY = 3600, 86400


def in_winter(day: datetime.date) -> bool:
    """Los Angeles keeps standard time (-08:00) from December to February."""
    return day.month in (12, 1, 2)


# Mid-afternoon UTC on a winter day, ahead of the clock the store expires keys by.
NOW = upcoming(13, 45, 30, where=in_winter)
MIDNIGHT = NOW // DAY * DAY  # the UTC day NOW falls in starts here


@pytest.fixture(autouse=True)
def whale(store_url):
    Whale.configure(store_url, schema="1m:2d,1h:35d,1d:3y")


def count(pk, dimensions=None, metrics=None, when=NOW):
    Whale.count_now(pk, dimensions, metrics, at=when, now=NOW)


def shop():
    """Five countries whose revenue per visitor is 1, 2, ... 5 and whose revenue grows the other way."""
    for i, country in enumerate(["AA", "BB", "CC", "DD", "EE"]):
        visitors = 100 - 15 * i
        count("shop", {"country": country}, {"revenue": visitors * (i + 1), "visitors": visitors, "sales": i})


def test_headline_grouped_totals():
    """Grouped by country, sorted by revenue/visitors descending: the parent, then each country in order."""
    shop()

    answer = Whale.totals(
        "shop",
        "country",
        ["visitors", "revenue", "revenue/visitors"],
        "thirty",
        depth=1,
        sort="-revenue/visitors",
        now=NOW,
    )

    rows = answer["thirty"]["rows"]
    assert ["country", "EE", "DD", "CC", "BB", "AA"] == [row["path"][-1] for row in rows]
    assert {"visitors": 350.0, "revenue": 900.0, "revenue/visitors": 900 / 350} == rows[0]["metrics"]
    assert {"visitors": 40.0, "revenue": 200.0, "revenue/visitors": 5.0} == rows[1]["metrics"]


def test_limit_does_not_count_the_parent():
    """limit=2 gives the parent and the two top children, and says how many more there were."""
    shop()

    answer = Whale.totals("shop", "country", ["revenue"], "thirty", depth=1, sort="-revenue", limit=2, now=NOW)

    assert (["country", "DD", "CC"], 3) == ([r["path"][-1] for r in answer["thirty"]["rows"]], answer["thirty"]["more"])


def test_sort_by_a_formula_not_asked_for():
    """sort may name any metric or ratio, not only the ones returned."""
    shop()

    answer = Whale.totals("shop", "country", ["sales"], "today", depth=1, sort="-revenue/visitors", limit=1, now=NOW)

    assert [("country", 10.0), ("EE", 4.0)] == [(r["path"][-1], r["metrics"]["sales"]) for r in answer["today"]["rows"]]


def test_ungrouped_totals_keep_the_original_shape():
    """Without depth, /totals answers {period: {dimension: {metric: total}}}."""
    shop()

    assert {"seven": {'["country", "CC"]': {"revenue": 210.0}}} == Whale.totals(
        "shop", ["country", "CC"], "revenue", "seven", now=NOW
    )


def test_plotpoints_depth_as_the_original():
    """The original's testPlotpointsDepth: depth 1 gives direct children only, depth 2 the grandchild too."""
    count("test_depth", {"t": "a"})
    count("test_depth", {"t": "b"})
    count("test_depth", {"t": "b"})
    count("test_depth", {"t": {"c": "child"}})

    def last_points(depth, limit=0):
        answer = Whale.plotpoints("test_depth", "t", "hits", "hour", depth=depth, limit=limit, now=NOW)
        return {row["dimension"]: row["metrics"]["hits"][-1][1] for row in answer["rows"]}

    assert {"t": 4.0, '["t", "a"]': 1.0, '["t", "b"]': 2.0, '["t", "c"]': 1.0} == last_points(1)
    assert 1.0 == last_points(2)['["t", "c", "child"]']
    assert {"t": 4.0, '["t", "b"]': 2.0} == last_points(1, limit=1)


def test_seed_readme_grouped_plotpoints():
    """The seed README's plotpoints call, verbatim, answers one row per country."""
    Whale.count_now(
        ["Product", "123"], metric={"revenue": 10.0, "visitor": 2}, dimensions={"country": "US", "device": "Mac OS X"}
    )

    plotpoints = Whale.plotpoints(["Product", "123"], dimensions="country", metric=["revenue/visitor"], depth=1)

    assert [("country", 5.0), ("US", 5.0)] == [
        (row["path"][-1], row["metrics"]["revenue/visitor"][-1][1]) for row in plotpoints["rows"]
    ]


def test_rank_scalar_as_the_original():
    """The original's testRankSubdimensionsScalar: only asub2 and b matter; a and t are explained by children."""
    count("rank", {"t": {"a": "asub1"}})
    count("rank", {"t": {"a": "asub2"}}, {"hits": 30})
    count("rank", {"t": "b"}, {"hits": 80})
    count("rank", {"t": "c"}, {"hits": 10})

    ranked = Whale.rank("rank", "hits", "t", "today", now=NOW)

    important = {key: row["important"] for key, row in ranked.items()}
    assert {
        "t": False,
        '["t", "a"]': False,
        '["t", "a", "asub1"]': False,
        '["t", "a", "asub2"]': True,
        '["t", "b"]': True,
        '["t", "c"]': False,
    } == important
    assert (121.0, 80.0, 41.0) == (
        ranked["t"]["score"],
        ranked['["t", "b"]']["score"],
        ranked['["t", "b"]']["difference"],
    )


def test_rank_ratio_as_the_original():
    """The original's testRankSubdimensionsRatio: R = 529,994/50,000; asub2 and b differ by >10% on enough volume."""
    count("ratio", {"t": {"a": "asub1"}}, {"value": 109_989, "visitors": 9_999})
    count("ratio", {"t": {"a": "asub2"}}, {"value": 330_000, "visitors": 22_000})
    count("ratio", {"t": "b"}, {"value": 90_000, "visitors": 18_000})
    count("ratio", {"t": "c"}, {"value": 5, "visitors": 1})

    ranked = Whale.rank("ratio", "value/visitors", "t", "today", now=NOW)

    assert pytest.approx(529_994 / 50_000) == ranked["t"]["score"]
    assert (False, True, True, False) == tuple(
        ranked[key]["important"] for key in ('["t", "a", "asub1"]', '["t", "a", "asub2"]', '["t", "b"]', '["t", "c"]')
    )
    b = ranked['["t", "b"]']
    assert pytest.approx((5 - 529_994 / 50_000) * 18_000) == b["effect"]


def test_month_boundary():
    """At 00:00:30 on a month's first day, mtd holds only that day, yesterday only the last of the month before."""
    now = upcoming(0, 0, 30, where=lambda day: day.day == 1)
    Whale.count_now("edge", at=now - 31, now=now)  # 23:59:59 on the last day of the month before
    Whale.count_now("edge", at=now - 30, now=now)  # 00:00:00 on the first

    assert (1.0, 1.0, 2.0, 1.0) == tuple(
        Whale.total("edge", period=p, now=now) for p in ("mtd", "yesterday", "seven", "today")
    )


def test_hour_boundary():
    """Minute and hour windows split exactly at the boundary."""
    now = upcoming(13, 0, 10)
    Whale.count_now("hb", at=now - 11, now=now)  # 12:59:59
    Whale.count_now("hb", at=now - 10, now=now)  # 13:00:00

    assert (1.0, 2.0, 2.0) == (
        Whale.total("hb", period="1h:1h", now=now),
        Whale.total("hb", period="1m:2m", now=now),
        Whale.total("hb", period="day", now=now),
    )


def test_time_zone_moves_today():
    """'today' in Los Angeles starts at 08:00 UTC: an event at 07:00 UTC is yesterday there."""
    Whale.count_now("tz", at=MIDNIGHT + 7 * HOUR, now=NOW)
    Whale.count_now("tz", at=MIDNIGHT + 9 * HOUR, now=NOW)

    assert (2.0, 1.0, 1.0, 1.0) == (
        Whale.total("tz", period="today", now=NOW),
        Whale.total("tz", period="today", tz="America/Los_Angeles", now=NOW),
        Whale.total("tz", period="today|-0800", now=NOW),
        Whale.total("tz", period="yesterday", tzoffset="-0800", now=NOW),
    )


def test_local_days_in_series():
    """With tz, daily points are that zone's days, read from hourly buckets."""
    Whale.count_now("tzs", at=MIDNIGHT - DAY + 7 * HOUR, now=NOW)  # 23:00 two days back in Los Angeles
    Whale.count_now("tzs", at=MIDNIGHT - DAY + 9 * HOUR, now=NOW)  # 01:00 the day after there

    points = Whale.plotpoints("tzs", metrics="hits", period="seven", tz="America/Los_Angeles", now=NOW)["_"]["hits"]

    la = datetime.timezone(datetime.timedelta(hours=-8))
    days = {datetime.datetime.fromtimestamp(ms / 1000, la).date(): value for ms, value in points}
    la_today = datetime.datetime.fromtimestamp(NOW, la).date()
    expected = {la_today - datetime.timedelta(days=2): 1.0, la_today - datetime.timedelta(days=1): 1.0}
    assert (expected, 7) == ({d: v for d, v in days.items() if v}, len(points))


def test_unanswerable_windows_say_so():
    """Thirty days of half-hour-offset days would need minute buckets kept for 2 days only: an error, not zeros."""
    with pytest.raises(FieldError, match="1m buckets are kept for 2d"):
        Whale.totals("shop", metrics="hits", periods="thirty", tz="Asia/Kolkata", now=NOW)


def test_cumulative_and_last_over_stored_data():
    """Series suffixes work over stored buckets: a running total and a forward-filled level."""
    Whale.count_now("lvl", metrics={"level": 5}, at=NOW - 180, now=NOW)
    Whale.count_now("lvl", metrics={"level": 7}, at=NOW - 60, now=NOW)

    series = Whale.plotpoints("lvl", metrics=["level:cumulative", "level:last"], period="1m:4m", now=NOW)["_"]

    assert ([5.0, 5.0, 12.0, 12.0], [5.0, 5.0, 7.0, 7.0]) == (
        [v for _, v in series["level:cumulative"]],
        [v for _, v in series["level:last"]],
    )


def test_dimension_tree_listing():
    """The dimension tree lists a dimension and what is below it, to a depth."""
    shop()

    assert ["country"] == Whale.get_subdimensions("shop")
    assert [
        "country",
        ["country", "AA"],
        ["country", "BB"],
        ["country", "CC"],
        ["country", "DD"],
        ["country", "EE"],
    ] == Whale.all_subdimensions("shop", "country")


def test_server_and_python_grouping_agree():
    """The server-side group-by and the general path (taken for a sort with a suffix) give the same rows."""
    shop()

    def grouped(sort, limit):
        return Whale.totals(
            "shop", "country", ["revenue", "sales"], "thirty", depth=1, sort=sort, limit=limit, now=NOW
        )["thirty"]

    for limit in (0, 2):
        assert grouped("-revenue/visitors", limit) == grouped("-revenue/visitors:cumulative", limit)


def test_rank_direct_children_only():
    """With recursive=False, rank looks at direct children only, not the dimension itself or deeper ones."""
    count("rank", {"t": {"a": "asub1"}})
    count("rank", {"t": "b"}, {"hits": 80})

    assert ['["t", "b"]', '["t", "a"]'] == list(Whale.rank("rank", "hits", "t", "today", recursive=False, now=NOW))
