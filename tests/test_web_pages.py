"""
The dashboard, the widget's files, /graph.js, /pks and read grants over HTTP (StubTreq: real
requests, the real store, no sockets).
"""

import gzip
import hashlib
import json
import re
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote

import pytest
import treq
from treq.testing import RequestTraversalAgent
from twisted.web.http_headers import Headers

from hailwhale.testing import succeeded
from hailwhale.web import access, embed
from tests.test_web import NOW, Api

STATIC = Path(__file__).parent.parent / "hailwhale" / "web" / "static"
TOKEN = "read-0123456789"
# The vendored chart library, as `npm pack uplot@1.6.32` gives it: an accidental edit fails here.
UPLOT = {
    "uPlot.iife.min.js": "19c8d4c6ad88929a79f4ae49d6f7161566dfd0ba3d15cc495e974f787eb78f1f",
    "uPlot.min.css": "df630c6a8d6f8eeaff264b50f73ce5b114f646ffd9a0bb74f049b0a00135fa04",
}


@pytest.fixture
def api(store):
    return Api(store)


@pytest.fixture
def guarded(store):
    return Api(store, policy=access.Policy(read_token=TOKEN))


class Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.inline: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"
        if any(name.startswith("on") or name == "style" for name, _ in attrs):
            self.inline.append(f"<{tag} {attrs}>")

    def handle_endtag(self, tag):
        self._in_script = False

    def handle_data(self, data):
        if self._in_script and data.strip():
            self.inline.append(data)


def test_the_vendored_chart_library_is_upLot_1_6_32():
    """uPlot's files are byte for byte those of uPlot 1.6.32 (its version in its first line), with its licence."""
    found = {name: hashlib.sha256((STATIC / name).read_bytes()).hexdigest() for name in UPLOT}

    assert (UPLOT, True, True) == (
        found,
        (STATIC / "uPlot.iife.min.js").read_text().startswith("/*! https://github.com/leeoniya/uPlot (v1.6.32) */"),
        "Leon Sorokin" in (STATIC / "uPlot.LICENSE").read_text(),
    )


@pytest.mark.parametrize("path", ["/", "/dashboard"])
def test_the_dashboard_page_runs_no_inline_script_under_a_strict_policy(api, path):
    """/ and /dashboard: HTML with a Content-Security-Policy allowing only the daemon's own files, and none inline."""
    response = api.get(path)
    page = Tags()
    page.feed(api.content(response).decode())
    policy = response.headers.getRawHeaders("Content-Security-Policy")[0]

    assert (200, [], True, False, "text/html; charset=utf-8") == (
        response.code,
        page.inline,
        "script-src 'self'" in policy and "default-src 'none'" in policy,
        "unsafe" in policy,
        response.headers.getRawHeaders("Content-Type")[0],
    )


def test_every_file_the_page_names_is_served_versioned_and_cached_for_a_year(api):
    """Each script, style and icon of the page is a versioned URL answering 200, immutable for a year."""
    page = Tags()
    page.feed(api.content(api.get("/")).decode())
    urls = [attrs.get("src") or attrs.get("href") for tag, attrs in page.tags if tag in ("script", "link", "img")]
    answers = {url: api.get(url) for url in urls}

    assert dict.fromkeys(urls, (200, "public, max-age=31536000, immutable")) == {
        url: (answer.code, answer.headers.getRawHeaders("Cache-Control")[0]) for url, answer in answers.items()
    }
    assert {"/hailwhale.js", "/static/hw-dashboard.js", "/static/hailwhale.css", "/static/uPlot.min.css"} <= {
        url.split("?")[0] for url in urls
    }


def test_a_browser_that_has_the_file_gets_a_304(api):
    """The ETag is the content's version; If-None-Match with it answers 304 and no body."""
    first = api.get("/static/hw-core.js")
    etag = first.headers.getRawHeaders("ETag")[0]

    again = api.get("/static/hw-core.js", headers={"If-None-Match": etag})
    weak = api.get("/static/hw-core.js", headers={"If-None-Match": f'"other", W/{etag}'})
    changed = api.get("/static/hw-core.js", headers={"If-None-Match": '"other"'})

    assert (200, "no-cache", 304, b"", 304, 200) == (
        first.code,
        first.headers.getRawHeaders("Cache-Control")[0],
        again.code,
        api.content(again),
        weak.code,
        changed.code,
    )


def raw_get(api, path: str, headers: dict[bytes, list[bytes]]):
    """(status, headers, body) as sent: no client in between that would decode gzip (treq does)."""
    agent = RequestTraversalAgent(api.web.resource())
    response = succeeded(agent.request(b"GET", b"http://hw" + path.encode(), Headers(headers)))
    return response.code, response.headers, succeeded(treq.content(response))


def test_files_are_gzipped_for_browsers_that_take_it(api):
    """With Accept-Encoding: gzip the answer is gzip of the file; without, the file itself."""
    _, plain_headers, plain = raw_get(api, "/static/uPlot.iife.min.js", {})
    _, packed_headers, packed = raw_get(api, "/static/uPlot.iife.min.js", {b"Accept-Encoding": [b"gzip, br"]})

    assert ((STATIC / "uPlot.iife.min.js").read_bytes(), None, plain, [b"gzip"], True) == (
        plain,
        plain_headers.getRawHeaders(b"Content-Encoding"),
        gzip.decompress(packed),
        packed_headers.getRawHeaders(b"Content-Encoding"),
        len(packed) < len(plain) / 2,
    )


def test_the_widget_is_one_file_for_any_origin(api):
    """/hailwhale.js is uPlot, the core and the widget in that order, loadable from any origin."""
    response = api.get("/hailwhale.js")
    body = api.content(response)
    parts = [(STATIC / name).read_bytes() for name in ("uPlot.iife.min.js", "hw-core.js", "hw-graph.js")]

    assert ([True, True, True], True, ["cross-origin"], ["*"]) == (
        [part in body for part in parts],
        body.index(parts[0]) < body.index(parts[1]) < body.index(parts[2]),
        response.headers.getRawHeaders("Cross-Origin-Resource-Policy"),
        response.headers.getRawHeaders("Access-Control-Allow-Origin"),
    )


def test_an_unknown_file_is_a_json_404(api):
    """A name that is not a packaged file (or tries to climb out) is the usual JSON 404."""
    answers = [api.get(path) for path in ("/static/nope.js", "/static/../app.py", "/static/dashboard.html")]

    assert [(404, "not_found")] * 3 == [(answer.code, api.json(answer)["reason"]) for answer in answers]


def test_graph_js_draws_where_its_tag_stands(api):
    """/graph.js is a script holding the graph's options and the versioned URL of the widget."""
    response = api.get("/graph.js?pk=%5B%22Product%22%2C5%5D&dimension=country&metric=dollars&tzoffset=-5.5")
    script = api.content(response).decode()
    options = json.loads(re.search(r"var options = (\{.*?\});", script).group(1))

    assert (200, "application/javascript; charset=utf-8", True) == (
        response.code,
        response.headers.getRawHeaders("Content-Type")[0],
        re.search(r'"/hailwhale\.js\?v=[0-9a-f]{16}"', script) is not None,
    )
    assert {"pk": '["Product",5]', "dimensions": "country", "metrics": "dollars", "tzoffset": "-0530"} == {
        name: options[name] for name in ("pk", "dimensions", "metrics", "tzoffset")
    }


def test_pks_over_http(api):
    """/pks lists the top-level pks, and a pk's children and metric names."""
    api.post("/count", b'[{"pk": ["Product", "123"], "metrics": {"revenue": 5}}, {"pk": "signup"}]')
    api.flush()

    top, product = api.json(api.get("/pks")), api.json(api.get("/pks?pk=Product"))

    assert (["Product", "signup"], ["123"], ["hits", "revenue"]) == (
        [child["name"] for child in top["children"]],
        [child["name"] for child in product["children"]],
        product["metrics"],
    )


# -- read grants ------------------------------------------------------------------------------


def grant(**scope):
    return embed.grant(TOKEN, now=NOW, **scope)


def test_a_grant_opens_the_read_endpoints_within_its_scope(guarded):
    """With a read token set, a grant (in grant= or as the Bearer credentials) answers what it covers."""
    guarded.post("/count", b'{"pk": ["shop", "web"], "dimensions": {"country": "US"}, "metrics": {"revenue": 5}}')
    guarded.flush()
    text = grant(pk="shop", metrics=["revenue/hits"], period="thirty")
    query = f"pk=shop&metrics={quote(json.dumps(['revenue', 'revenue/hits']))}&period=seven"
    paths = [
        f"/totals?{query}&grant={text}",
        f"/plotpoints?{query}&depth=1&dimension=country&grant={text}",
        f"/rank?pk=shop&metric=revenue/hits&dimension=country&period=seven&grant={text}",
        f"/dimensions?pk=shop&grant={text}",
        f"/pks?pk=shop&grant={text}",
    ]

    answers = [guarded.get(path) for path in paths]
    bearer = guarded.get(f"/totals?{query}", headers={"Authorization": f"Bearer {text}"})

    assert [200] * 6 == [answer.code for answer in [*answers, bearer]]
    assert {"seven": {"_": {"revenue": 5.0, "revenue/hits": 5.0}}} == guarded.json(answers[0])


@pytest.mark.parametrize(
    "path, status, reason",
    [
        ("/totals?pk=shop&metrics=revenue&period=seven", 401, "missing_token"),
        ("/totals?pk=other&metrics=revenue&period=seven&grant=GRANT", 403, "outside_grant"),
        ("/totals?pk=shop&metrics=visitors&period=seven&grant=GRANT", 403, "outside_grant"),
        ("/totals?pk=shop&metrics=revenue&sort=-visitors&depth=1&period=seven&grant=GRANT", 403, "outside_grant"),
        ("/totals?pk=shop&metrics=revenue&period=year&grant=GRANT", 403, "outside_grant"),
        ("/totals?pk=shop&metrics=revenue&grant=GRANT", 403, "outside_grant"),
        ("/pks?grant=GRANT", 403, "outside_grant"),
        ("/stats?grant=GRANT", 403, "grant_not_accepted"),
        ("/decide?pk=shop&options=a,b&grant=GRANT", 403, "grant_not_accepted"),
        ("/totals?pk=shop&metrics=revenue&period=seven&grant=GRANTx", 401, "bad_grant"),
        ("/totals?pk=shop&metrics=revenue&period=seven&grant=EXPIRED", 401, "expired_grant"),
    ],
)
def test_a_grant_opens_nothing_outside_its_scope(guarded, path, status, reason):
    """Other pks, metrics (sort included), longer periods, other endpoints, changed or expired grants: refused."""
    text = grant(pk="shop", metrics=["revenue"], period="thirty")
    expired = embed.grant(TOKEN, "shop", ["revenue"], "thirty", expires_in=60, now=NOW - 61)

    response = guarded.get(path.replace("GRANTx", text + "x").replace("GRANT", text).replace("EXPIRED", expired))

    assert (status, reason) == (response.code, guarded.json(response)["reason"])
    assert 1 == guarded.stats.http_bad_requests[reason]


def test_the_token_still_works_beside_a_grant(guarded):
    """The read token opens everything, with or without a grant next to it."""
    text = grant(pk="shop")

    answer = guarded.get(f"/stats?grant={text}", headers={"Authorization": f"Bearer {TOKEN}"})

    assert 200 == answer.code


def test_without_a_read_token_a_grant_is_not_needed(api):
    """A daemon without a read token answers queries with or without a grant (a grant adds nothing to open data)."""
    assert [200, 200] == [api.get(p).code for p in ("/totals?pk=shop", "/totals?pk=shop&grant=nonsense")]
