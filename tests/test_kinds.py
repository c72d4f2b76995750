"""Gauges and unique counts on a real store: levels are never added up, members are counted once."""

import pytest

from hailwhale.testing import upcoming
from hailwhale.whale import Whale

NOW = upcoming(13, 45, 30)  # mid-hour, ahead of the clock the store expires keys by
EARLIER = NOW - 120  # two minutes before, in the same hour


@pytest.fixture(autouse=True)
def whale(store_url):
    Whale.configure(store_url, schema="1m:2d,1h:35d,1d:3y")


def count(pk, dimensions=None, metrics=None, when=NOW):
    Whale.count_now(pk, dimensions, metrics, at=when, now=NOW)


def test_gauge_keeps_the_last_value_of_a_bucket():
    """Two levels in one minute: the minute holds the second, not their sum."""
    count("queue", None, {"depth.gauge": 40})
    count("queue", None, {"depth.gauge": 7})

    assert 7.0 == Whale.total("queue", metric="depth.gauge", period="1m:1m", now=NOW)


def test_gauge_over_a_window_is_its_latest_bucket():
    """Over an hour of minutes (and the hour bucket), a gauge answers its latest level, not a total."""
    count("queue", None, {"depth.gauge": 40, "jobs": 1}, when=EARLIER)
    count("queue", None, {"depth.gauge": 7, "jobs": 1})

    totals = Whale.totals("queue", metrics=["depth.gauge", "jobs"], periods=["1m:1h", "1d:1w"], now=NOW)

    assert {
        "1m:1h": {"_": {"depth.gauge": 7.0, "jobs": 2.0}},
        "1d:1w": {"_": {"depth.gauge": 7.0, "jobs": 2.0}},
    } == totals


def test_gauge_series_point_by_point():
    """Each point of a series holds the level of its own bucket (0 where none was reported)."""
    count("queue", None, {"depth.gauge": 40}, when=EARLIER)
    count("queue", None, {"depth.gauge": 7})

    series = Whale.plotpoints("queue", metric="depth.gauge", period="1m:3m", now=NOW)["_"]["depth.gauge"]

    assert [40.0, 0.0, 7.0] == [value for _, value in series]


def test_gauge_roll_up_takes_the_last_reported():
    """At a parent node a gauge is the level last reported by any of its children."""
    count(["collectd", "web01"], {"host": "web01"}, {"load.gauge": 0.5})
    count(["collectd", "web02"], {"host": "web02"}, {"load.gauge": 2.0})

    grouped = Whale.totals("collectd", "host", ["load.gauge"], "1m:1h", depth=1, now=NOW)["1m:1h"]["rows"]

    assert [("host", 2.0), ("web02", 2.0), ("web01", 0.5)] == [
        (row["path"][-1], row["metrics"]["load.gauge"]) for row in grouped
    ]


def test_unique_counts_members_once_across_buckets_and_events():
    """A unique count unites its members over the window: a visitor seen twice counts once."""
    count("site", {"page": "home"}, {"visitors.unique": ["ann", "bob"]}, when=EARLIER)
    count("site", {"page": "home"}, {"visitors.unique": "ann"})
    count("site", {"page": "cart"}, {"visitors.unique": "cy"})

    totals = Whale.totals("site", "page", ["visitors.unique", "hits"], "1m:1h", depth=1, now=NOW)["1m:1h"]

    assert [("page", 3.0, 3.0), ("home", 2.0, 2.0), ("cart", 1.0, 1.0)] == [
        (row["path"][-1], row["metrics"]["visitors.unique"], row["metrics"]["hits"]) for row in totals["rows"]
    ]


def test_unique_series_per_bucket():
    """Point by point, a unique count is the distinct members of that point's bucket."""
    count("site", None, {"visitors.unique": ["ann", "bob"]}, when=EARLIER)
    count("site", None, {"visitors.unique": ["ann"]})

    series = Whale.plotpoints("site", metric="visitors.unique", period="1m:3m", now=NOW)["_"]["visitors.unique"]

    assert [2.0, 0.0, 1.0] == [value for _, value in series]
