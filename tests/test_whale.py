"""The blocking Python API on a real store: the seed README's examples and the original's library tests."""

import time

import pytest

from hailwhale.testing import upcoming
from hailwhale.whale import Whale

NOW = upcoming(1, 40)  # ahead of the clock the store expires keys by


@pytest.fixture(autouse=True)
def whale(store_url):
    Whale.configure(store_url, schema="1m:2d,1h:35d,1d:3y")
    yield Whale


def test_seed_readme_counting():
    """The seed README's first example, verbatim: one hit today."""
    Whale.count_now("my_counter", metrics={"hits": 1})

    assert Whale.total("my_counter", metric="hits", period="today") == 1


def test_seed_readme_plotpoints_and_totals():
    """The seed README's plotpoints and totals calls work with its spellings (metric=, period=)."""
    Whale.count_now("my_counter", metrics={"hits": 1})
    Whale.count_now("my_counter", metrics={"sales": 1, "revenue": 5})
    Whale.count_now(
        ["Product", "123"], metric={"revenue": 10.0, "sales": 1}, dimensions={"country": "US", "device": "Mac OS X"}
    )

    pps = Whale.plotpoints("my_counter", metrics=["hits", "sales", "revenue/hits"], period="mtd")
    totals = Whale.totals(["Product", "123"], metric=["revenue", "sales"], period="1d:1mo")

    today = time.gmtime()
    assert (today.tm_mday, [2.0, 1.0, 2.5]) == (
        len(pps["_"]["hits"]),
        [pps["_"][m][-1][1] for m in ("hits", "sales", "revenue/hits")],
    )
    assert {"1d:1mo": {"_": {"revenue": 10.0, "sales": 1.0}}} == totals


def test_pk_prefixes_are_counted():
    """A path pk counts under its prefix too."""
    Whale.count_now(["Product", "123"], metrics={"revenue": 10}, now=NOW)
    Whale.count_now(["Product", "456"], metrics={"revenue": 5}, now=NOW)

    assert (15.0, 10.0) == (
        Whale.total("Product", "revenue", period="today", now=NOW),
        Whale.total(["Product", "123"], "revenue", period="today", now=NOW),
    )


def test_get_subdimensions():
    """The original's testGetSubdimensions and testGetAllSubdimensions (ints come back as strings)."""
    Whale.count_now("t", {"a": 1, "b": 2})

    assert ["a", "b"] == Whale.get_subdimensions("t")
    assert ["_", "a", ["a", "1"], "b", ["b", "2"]] == Whale.all_subdimensions("t")
    assert [["a", "1"]] == Whale.get_subdimensions("t", "a")


def test_plotpoints_last_point():
    """The original's testPlotpoints and testRatioPlotpoints: five events end the series at 5, 25 and 5."""
    for _ in range(5):
        Whale.count_now("test_plotpoints", "x", {"hits": 1, "values": 5}, now=NOW)

    pps = Whale.plotpoints("test_plotpoints", "x", ["hits", "values", "values/hits"], period="hour", now=NOW)

    assert [5.0, 25.0, 5.0] == [pps["x"][m][-1][1] for m in ("hits", "values", "values/hits")]


def test_totals_ratio_is_sum_over_sum():
    """A ratio total is the sum of numerators over the sum of denominators, not a sum of ratios."""
    Whale.count_now("ex", metrics={"dollars": 5}, at=NOW - 86400, now=NOW)
    Whale.count_now("ex", metrics={"dollars": 2}, now=NOW)
    Whale.count_now("ex", metrics={"dollars": 10}, now=NOW)

    assert pytest.approx(17 / 3) == Whale.total("ex", "dollars/hits", period="seven", now=NOW)


def test_count_now_rejects_what_it_cannot_understand():
    """A bad event raises an error naming the field, and nothing is counted."""
    with pytest.raises(ValueError, match=r"metrics\.x"):
        Whale.count_now("bad", metrics={"x": "lots"}, now=NOW)

    assert 0 == Whale.total("bad", period="today", now=NOW)


def test_forked_children_write_with_their_own_writer_id(store_url):
    """Processes forked after Whale is set up (gunicorn --preload, multiprocessing) all get counted."""
    import multiprocessing

    Whale.count_now("forked", now=NOW)
    context = multiprocessing.get_context("fork")
    children = [context.Process(target=_count_five) for _ in range(3)]
    for child in children:
        child.start()
    for child in children:
        child.join(30)

    assert ([0, 0, 0], 16.0) == ([c.exitcode for c in children], Whale.total("forked", period="today", now=NOW))


def _count_five():
    for _ in range(5):
        Whale.count_now("forked", now=NOW)


def test_an_event_older_than_every_retention_raises():
    """count_now of an event no bucket would keep raises naming 'at', instead of writing nothing silently."""
    from hailwhale.model.fields import FieldError

    with pytest.raises(FieldError) as caught:
        Whale.count_now("old", at=NOW - 4 * 365 * 86400, now=NOW)

    assert ("at", "too_old") == (caught.value.field, caught.value.reason)
