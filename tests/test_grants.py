"""Read grants and the embed helpers, pure: signing, checking, scopes, graph_tag and /graph.js's options."""

import html
import json
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hailwhale.query import periods
from hailwhale.web import access, embed

TOKEN = "read-0123456789"
NOW = 1_800_000_000
DAY = 86400

names = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12)
scopes = st.builds(
    access.Scope,
    expires=st.integers(NOW + 1, NOW + 10 * 365 * DAY),
    pk=st.none() | st.lists(names, min_size=1, max_size=4).map(tuple),
    metrics=st.none() | st.frozensets(names, max_size=6),
    longest=st.none() | st.integers(1, 10 * 365 * DAY),
)


@given(scopes)
def test_a_grant_carries_its_scope(scope):
    """What a grant was signed for is what checking it gives back."""
    assert scope == access.verify_grant(TOKEN, access.sign_grant(TOKEN, scope), NOW)


@given(scopes, st.data())
def test_any_change_to_a_grant_is_refused(scope, data):
    """A grant with any one character changed is not accepted (the signature covers all of it)."""
    text = access.sign_grant(TOKEN, scope)
    at = data.draw(st.integers(0, len(text) - 1))
    replacement = data.draw(st.characters(codec="ascii").filter(lambda char: char != text[at]))
    changed = text[:at] + replacement + text[at + 1 :]

    assert access.BAD_GRANT == access.verify_grant(TOKEN, changed, NOW)


@given(st.text(max_size=200))
def test_text_that_is_no_grant_is_refused(text):
    """Any text at all is either refused as a bad grant or was signed by the token (it never raises)."""
    assert access.BAD_GRANT == access.verify_grant(TOKEN, text, NOW)


def test_a_grant_of_another_token_is_refused():
    """A grant signed with another read token (or before the token changed) is a bad grant."""
    other = access.sign_grant("another-token", access.Scope(expires=NOW + 60))

    assert access.BAD_GRANT == access.verify_grant(TOKEN, other, NOW)


def test_a_grant_expires():
    """A grant is good until its expiry second, and refused from then on."""
    text = access.sign_grant(TOKEN, access.Scope(expires=NOW + 60))

    assert (access.Scope(expires=NOW + 60), "expired_grant") == (
        access.verify_grant(TOKEN, text, NOW + 59),
        access.verify_grant(TOKEN, text, NOW + 60).reason,
    )


def test_a_scope_covers_pks_under_its_prefix_its_metrics_and_periods_up_to_its_longest():
    """within(): the pk prefix, the stored metrics and the longest period (plus an hour for daylight saving days)."""
    scope = access.Scope(expires=NOW + 60, pk=("Product", "123"), metrics=frozenset({"a", "b"}), longest=7 * DAY)
    requests = [
        (("Product", "123"), {"a"}, 7 * DAY),
        (("Product", "123", "x"), {"a", "b"}, 7 * DAY + 3600),
        (("Product",), {"a"}, DAY),
        (("Product", "1234"), {"a"}, DAY),
        (None, (), 0),
        (("Product", "123"), {"a", "c"}, DAY),
        (("Product", "123"), {"a"}, 8 * DAY),
    ]

    answers = [access.within(scope, pk, metrics, longest) for pk, metrics, longest in requests]

    assert [None, None, "outside_grant", "outside_grant", "outside_grant", "outside_grant", "outside_grant"] == [
        None if answer is None else answer.reason for answer in answers
    ]
    assert {403} == {answer.status for answer in answers if answer is not None}


def test_an_open_scope_covers_everything():
    """A grant for any pk, metric and period covers the root of the pk tree too."""
    assert None is access.within(access.Scope(expires=NOW + 1), None, {"x"}, 10 * 365 * DAY)


def test_minting_from_formulas_and_period_names():
    """embed.grant reads formulas as the stored metrics they use, and periods as their longest window."""
    text = embed.grant(TOKEN, ["shop", 5], ["revenue/visitors", "hits:cumulative", "revenue/5"], "thirty", 600, NOW)

    assert access.Scope(
        expires=NOW + 600, pk=("shop", "5"), metrics=frozenset({"revenue", "visitors", "hits"}), longest=30 * DAY
    ) == access.verify_grant(TOKEN, text, NOW)


@pytest.mark.parametrize(
    "period, seconds",
    [("thirty", 30 * DAY), ("mtd", 31 * DAY), ("ytd", 366 * DAY), ("35d", 35 * DAY), (3600, 3600), ("1h:1d", DAY)],
)
def test_the_longest_window_of_a_period(period, seconds):
    """A grant's period is the longest window the period can name: to-date periods at their longest."""
    assert seconds == embed.longest_seconds(period, NOW)


def test_a_bad_grant_period_is_refused():
    """A period that is neither a period nor a duration is refused when minting, as a query would refuse it."""
    with pytest.raises(periods.PeriodError):
        embed.grant(TOKEN, "p", None, "fortnight", now=NOW)


# -- graph_tag ------------------------------------------------------------------------------


def tag_params(tag: str) -> tuple[str, dict[str, str]]:
    (src,) = re.findall(r"^<script src='([^']*)'></script>$", tag)
    url = html.unescape(src)
    return url.split("?")[0], {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def test_graph_tag_is_the_originals():
    """The original's example: pk and dimension as JSON, an area graph of the children unless told otherwise."""
    tag = embed.graph_tag(["Product", 5], {"country": "US"}, "dollars/hits", host="http://hw.example")

    assert (
        "http://hw.example/graph.js",
        {
            "pk": '["Product",5]',
            "dimension": '{"country":"US"}',
            "metric": "dollars/hits",
            "area": "true",
            "depth": "1",
        },
    ) == tag_params(tag)


def test_graph_tag_keeps_extra_parameters_and_escapes_them():
    """extra parameters pass as given (an explicit area turns the defaults off), quoted for an HTML attribute."""
    tag = embed.graph_tag("signup", extra={"area": "", "period": "seven", "title": "Sign'ups <b>"}, host="")

    assert ("/graph.js", {"pk": "signup", "area": "", "period": "seven", "title": "Sign'ups <b>"}) == tag_params(tag)
    assert "<b>" not in tag and "Sign'ups" not in tag


def test_graph_tag_with_a_token_carries_a_grant_for_that_graph_only():
    """With the read token, the tag holds a grant for its pk, its metrics and its period, and never the token."""
    extra = {"period": "seven", "sort": "-orders"}
    tag = embed.graph_tag(["shop", "web"], "country", "revenue/visitors", extra, read_token=TOKEN, now=NOW)

    _, params = tag_params(tag)
    assert TOKEN not in tag
    assert access.Scope(
        expires=NOW + DAY,
        pk=("shop", "web"),
        metrics=frozenset({"revenue", "visitors", "orders"}),
        longest=7 * DAY,
    ) == access.verify_grant(TOKEN, params["grant"], NOW)


# -- /graph.js --------------------------------------------------------------------------------


def test_graph_js_options_from_the_originals_parameters():
    """/graph.js takes graph_tag's parameters; the original's defaults fill the rest."""
    options = embed.graph_options(
        {"pk": '["Product","5"]', "dimension": "country", "metric": "dollars", "area": "true", "depth": "1"}
    )

    assert {
        "pk": '["Product","5"]',
        "dimensions": "country",
        "metrics": "dollars",
        "period": "thirty",
        "limit": "10",
        "depth": "1",
        "title": "Product / 5 [country]",
        "area": True,
        "live": True,
        "interval": 6000,
        "height": 300,
    } == options


def test_graph_js_never_passes_a_token_on():
    """A token in a /graph.js URL is not put in the script (the page would hold it); a grant is."""
    options = embed.graph_options({"pk": "p", "token": TOKEN, "grant": "hwg1.a.b"})

    assert (False, "hwg1.a.b") == (TOKEN in json.dumps(options), options["grant"])


@pytest.mark.parametrize(
    "given, expected",
    [
        ({"live": "false", "interval": "10", "height": "450px", "area": "percent", "title": "T"}, (False, 1000, 450)),
        ({"autoupdate": "0", "interval": "often", "height": "tall"}, (False, 6000, 300)),
        ({"interval": "3500"}, (True, 3500, 300)),
        ({"interval": "INF", "live": "INF"}, (True, 6000, 300)),
        ({"interval": "nan"}, (True, 6000, 300)),
        ({"interval": "1e300"}, (True, 86_400_000, 300)),
    ],
)
def test_graph_js_reads_flags_and_numbers_leniently(given, expected):
    """
    live/autoupdate false turns polling off (the original polled anyway); intervals are
    between a second and a day (a longer timer fires at once in browsers); no number is the default.
    """
    options = embed.graph_options({"pk": "p", **given})

    assert expected == (options["live"], options["interval"], options["height"])


@given(st.integers(-14 * 4, 14 * 4))
def test_float_hour_offsets_are_hours_east_of_utc(quarters):
    """The float-hours tzoffset the original's callers sent (-5.5) is the same offset as hhmm (-0530)."""
    hours = quarters / 4
    text = embed.hhmm(f"{hours:g}")

    assert hours * 3600 == periods.zone(tzoffset=text).utcoffset(None).total_seconds()


@pytest.mark.parametrize("given, expected", [("-5.5", "-0530"), ("8", "+0800"), ("-0700", "-0700"), ("+5.75", "+0545")])
def test_tzoffset_forms(given, expected):
    """hhmm stays hhmm; float hours become hhmm."""
    assert expected == embed.hhmm(given)


def test_the_graph_script_cannot_be_broken_out_of():
    """Options are embedded as JSON with <, > and & escaped, so no parameter can end the script or inject markup."""
    script = embed.graph_js(embed.graph_options({"pk": "</script><script>alert(1)</script>"}), "/hailwhale.js?v=1")

    assert ("</script>" in script, "\\u003c/script\\u003e" in script) == (False, True)
