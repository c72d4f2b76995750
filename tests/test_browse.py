"""What exists: the pk tree and the metric names per pk, written by the flush and read by /pks and Whale.pks."""

import pytest

from hailwhale.model import keys
from hailwhale.query import browse, requests
from hailwhale.store.client import INDEX_MARGIN
from hailwhale.testing import upcoming
from hailwhale.web import access
from hailwhale.whale import Whale
from tests.test_store import SCHEMA, plan_for

NOW = int(upcoming(1, 40))


@pytest.fixture
def whale(store_url):
    Whale.configure(store_url, schema="1m:2d,1h:35d,1d:3y")
    return Whale


def test_the_pk_tree_and_metric_names(store):
    """A flush registers each pk with its parent pk and its metric names with every prefix."""
    store.apply(
        plan_for(
            {"pk": ["Product", "123"], "metrics": {"revenue": 5}},
            {"pk": ["Product", "9", "x"], "metrics": {"sales": 1}},
            {"pk": "signup"},
        ),
        1,
        set(),
    )

    answers = [requests.run(browse.pks(pk), store) for pk in [(), ("Product",), ("Product", "9")]]

    assert [
        {
            "pk": None,
            "children": [{"name": "Product", "pk": ["Product"]}, {"name": "signup", "pk": ["signup"]}],
            "more": 0,
            "metrics": [],
            "more_metrics": 0,
        },
        {
            "pk": ["Product"],
            "children": [{"name": "123", "pk": ["Product", "123"]}, {"name": "9", "pk": ["Product", "9"]}],
            "more": 0,
            "metrics": ["hits", "revenue", "sales"],
            "more_metrics": 0,
        },
        {
            "pk": ["Product", "9"],
            "children": [{"name": "x", "pk": ["Product", "9", "x"]}],
            "more": 0,
            "metrics": ["hits", "sales"],
            "more_metrics": 0,
        },
    ] == answers


def test_an_answer_is_bounded_by_its_limit(store):
    """Past ``limit`` names the answer holds ``limit`` of them and says how many it left out."""
    store.apply(plan_for(*({"pk": ["many", str(n)], "metrics": {f"m{n}": 1}} for n in range(30))), 1, set())

    answer = requests.run(browse.pks(("many",), limit=7), store)

    assert (7, 23, 7, 24) == (
        len(answer["children"]),
        answer["more"],
        len(answer["metrics"]),
        answer["more_metrics"],
    )


def test_the_indexes_live_as_long_as_data_goes_on_arriving(store, raw):
    """The index sets outlive the longest-lived bucket of the latest write they index by the margin."""
    longest = max(size.interval + size.retention for size in SCHEMA.stored)
    index_keys = [
        keys.pks_key(keys.ROOT_TAG),
        keys.pks_key(keys.tag(("Product",))),
        keys.metric_names_key(keys.tag(("Product",))),
        keys.children_key(keys.tag(("Product",)), "_"),
    ]
    expiries = []
    for seq, now in enumerate((NOW, NOW + 86400), 1):
        store.apply(plan_for({"pk": ["Product", "123"], "dimensions": "a", "metrics": {"r": 5}}, now=now), seq, set())
        expiries.append({raw.expiretime(key) for key in index_keys})

    assert [{NOW + longest + INDEX_MARGIN}, {NOW + 86400 + longest + INDEX_MARGIN}] == expiries


def test_gauges_and_unique_counts_are_named_too(whale):
    """Metric names of every kind are indexed: sums, gauges and unique counts."""
    Whale.count_now("kinds", metrics={"queue.gauge": 3, "visitors.unique": "u1", "bytes": 10}, now=NOW)

    assert ["bytes", "hits", "queue.gauge", "visitors.unique"] == Whale.pks("kinds")["metrics"]


def test_whale_lists_the_top_level_pks(whale):
    """Whale.pks() answers what /pks answers: the top-level pks without a pk."""
    Whale.count_now(["Product", "1"], now=NOW)
    Whale.count_now("signup", now=NOW)

    assert (["Product", "signup"], ["1"]) == (
        [child["name"] for child in Whale.pks()["children"]],
        [child["name"] for child in Whale.pks("Product")["children"]],
    )


def test_a_bad_limit_is_refused():
    """limit is a whole number from 1 to 10,000."""
    with pytest.raises(browse.FieldError) as refused:
        browse.pks_from_params({"limit": "0"}, Whale.limits)

    assert "limit" == refused.value.field


def test_whale_mints_grants_and_graph_tags_with_the_read_token(store_url):
    """With the read token configured, Whale.grant and Whale.graph_tag sign grants; the tag never holds the token."""
    Whale.configure(store_url, read_token="read-0123456789")

    text = Whale.grant(pk="shop", metrics=["revenue/visitors"], period="seven", expires_in=60, now=NOW)
    tag = Whale.graph_tag("shop", "country", "revenue", {"period": "seven"}, host="https://hw.example")
    Whale.configure(store_url)

    assert access.Scope(
        expires=NOW + 60, pk=("shop",), metrics=frozenset({"revenue", "visitors"}), longest=7 * 86400
    ) == access.verify_grant("read-0123456789", text, NOW)
    assert ("grant=hwg1." in tag, "read-0123456789" in tag) == (True, False)


def test_without_a_read_token_whale_cannot_mint(whale, monkeypatch):
    """Whale.grant needs the read token; graph_tag then carries no grant (the daemon's queries are open)."""
    monkeypatch.delenv("HAILWHALE_READ_TOKEN", raising=False)
    monkeypatch.delenv("HAILWHALE_READ_TOKEN_FILE", raising=False)

    with pytest.raises(ValueError):
        Whale.grant(pk="shop")
    assert "grant=" not in Whale.graph_tag("shop")
