"""
The dashboard and the widget in a real browser (headless Chromium, Selenium) against a real
daemon process on its embedded store: what the pages show is what the API answers.

Screenshots go to the test's temporary folder (and to ``$HAILWHALE_SCREENSHOTS`` if set).
"""

import json
import os
import random
import shutil
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from hailwhale.testing.browser import Browser, OtherOrigin
from hailwhale.testing.processes import Daemon
from hailwhale.web import embed

pytestmark = pytest.mark.slow

ROOT = Path(__file__).parent.parent
JQUERY = ROOT / "tests" / "node" / "node_modules" / "jquery" / "dist" / "jquery.min.js"
TOKEN = "read-token-0123456789"
COUNTRIES = {"US": (40, 2.0), "UK": (25, 2.5), "DE": (15, 1.5), "EE": (6, 9.0), "FR": (10, 2.2), "BR": (4, 1.0)}


def shop_events(now: float) -> list[dict]:
    """Known events over the last 30 days: visitors and revenue by country and device, under shop/web and shop/app."""
    rng = random.Random(13)
    found = []
    for day in range(30):
        for country, (visitors, spend) in COUNTRIES.items():
            for _ in range(max(1, visitors // 4 + rng.randint(-2, 2))):
                count = rng.randint(1, 3)
                found.append(
                    {
                        "pk": ["shop", rng.choice(["web", "web", "app"])],
                        "dimensions": {"country": country, "device": rng.choice(["mac", "pc", "phone"])},
                        "metrics": {"visitors": count, "revenue": round(count * spend * rng.uniform(0.6, 1.4), 2)},
                        "at": now - day * 86400 - rng.randint(0, 6 * 3600),
                    }
                )
    found.append({"pk": ["Product", "123"], "dimensions": {"color": "red"}, "metrics": {"sales": 2}})
    found.append({"pk": ["Product", "9"], "metrics": {"sales": 1}})
    return found


def post(base: str, path: str, body: object) -> bytes:
    request = urllib.request.Request(
        base + path, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read()


def get_json(base: str, path_and_query: str, token: str | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    url = path_and_query if path_and_query.startswith("http") else base + path_and_query
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def start_daemon(directory: Path, *args: str) -> Daemon:
    daemon = Daemon(directory, "--collectd-port", "0", "--flush-interval", "0.2", *args)
    return daemon


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    daemon = start_daemon(tmp_path_factory.mktemp("daemon"))
    try:
        assert b"OK" == post(daemon.base, "/count_now", shop_events(time.time()))
        yield daemon
    finally:
        daemon.kill()


@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    """A daemon with a read token."""
    directory = tmp_path_factory.mktemp("guarded")
    (directory / "read.token").write_text(TOKEN + "\n")
    daemon = start_daemon(directory, "--read-token-file", "read.token")
    try:
        assert b"OK" == post(daemon.base, "/count_now", shop_events(time.time()))
        yield daemon
    finally:
        daemon.kill()


@pytest.fixture(scope="module")
def browser():
    browser = Browser()
    yield browser
    browser.quit()


@pytest.fixture
def page(browser):
    """The browser, its console emptied before the test; the test checks what the pages logged."""
    browser.console()
    browser.resize(1400, 1000)
    return browser


@pytest.fixture(scope="module")
def other_origin(tmp_path_factory):
    directory = tmp_path_factory.mktemp("other-origin")
    shutil.copy(JQUERY, directory / "jquery.min.js")
    server = OtherOrigin(directory)
    yield server
    server.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("screenshots")
    extra = os.environ.get("HAILWHALE_SCREENSHOTS")

    def save(browser: Browser, name: str, whole: bool = False) -> Path:
        if whole:  # the whole page, as tall as it is
            chrome = browser.js("return window.outerHeight - window.innerHeight")
            browser.resize(1400, browser.js("return document.documentElement.scrollHeight") + chrome)
            time.sleep(0.3)
        path = browser.screenshot(folder / f"{name}.png")
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    return save


# -- reading what the page shows ---------------------------------------------------------------


def drawn(browser: Browser, selector: str):
    """The graph in ``selector`` once drawn: {src, data, creates, updates, note} (None while loading)."""
    return browser.js(
        """
        const element = document.querySelector(arguments[0]);
        if (!element || element.getAttribute('data-hw-state') !== 'drawn' || !element.hailwhale) return null;
        const graph = element.hailwhale;
        return {src: graph.src, data: graph.chart.data, creates: graph.creates, updates: graph.updates,
                note: graph.note.hidden ? null : graph.note.textContent, labels: graph.plan.series.map(s => s.label),
                raw: [graph.chart.data[0], ...graph.plan.series.map(s => s.raw)]};
        """,
        selector,
    )


def failed(browser: Browser, selector: str):
    """The graph's note once it failed (None until then)."""
    return browser.js(
        """
        const element = document.querySelector(arguments[0]);
        if (!element || element.getAttribute('data-hw-state') !== 'error') return null;
        return element.hailwhale.note.textContent;
        """,
        selector,
    )


def table(browser: Browser):
    """The dashboard's table once drawn: {src, rows: [[dimension, [values]]], columns}."""
    return browser.js(
        """
        const table = document.getElementById('hw-table');
        if (table.getAttribute('data-hw-state') !== 'drawn') return null;
        return {
          src: table.getAttribute('data-hw-src'),
          columns: [...table.querySelectorAll('th[data-metric]')].map(th => th.getAttribute('data-metric')),
          rows: [...table.querySelectorAll('tbody tr')].map(tr => [
            tr.getAttribute('data-dimension'),
            [...tr.querySelectorAll('td[data-value]')].map(td => JSON.parse(td.getAttribute('data-value')))])
        };
        """
    )


def params(url: str) -> dict[str, str]:
    return {name: values[0] for name, values in parse_qs(urlsplit(url).query).items()}


def expected_chart_data(answer: dict) -> list[list[float]]:
    """What a lines chart draws from a /plotpoints answer: the times in seconds, then each row's values."""
    rows = answer["rows"] if "rows" in answer else [{"metrics": by_metric} for by_metric in answer.values()]
    metric = next(iter(rows[0]["metrics"]))
    times = [t / 1000 for t, _ in rows[0]["metrics"][metric]]
    return [times] + [[v for _, v in row["metrics"][metric]] for row in rows]


def stacked(data: list[list[float]]) -> list[list[float]]:
    """A stacked chart's data: the times, the root as it is, each child on top of the ones before it."""
    times, root, *children = data
    sums: list[list[float]] = []
    for values in children:
        sums.append([v + (sums[-1][i] if sums else 0) for i, v in enumerate(values)])
    return [times, root, *sums]


def javascript_errors(browser: Browser) -> list[dict]:
    """Console errors other than the network's own lines for answers the test asked to be refused."""
    return [entry for entry in browser.errors() if entry.get("source") != "network"]


def wait_drawn(browser: Browser, selector: str, src_has: dict | None = None):
    def ready(b):
        found = drawn(b, selector)
        if found and src_has and any(params(found["src"]).get(k) != v for k, v in src_has.items()):
            return None
        return found

    return browser.wait(ready, what=f"the graph in {selector}")


def wait_table(browser: Browser, src_has: dict | None = None):
    def ready(b):
        found = table(b)
        if found and src_has and any(params(found["src"]).get(k) != v for k, v in src_has.items()):
            return None
        return found

    return browser.wait(ready, what="the table")


def select(browser: Browser, element_id: str, value: str) -> None:
    browser.js(
        "const s = document.getElementById(arguments[0]); s.value = arguments[1];"
        "s.dispatchEvent(new Event('change', {bubbles: true}));",
        element_id,
        value,
    )


# -- the dashboard ---------------------------------------------------------------------------------


SHOP = "/?" + urlencode(
    {
        "pk": "shop",
        "dimension": "country",
        "metrics": json.dumps(["revenue", "visitors", "revenue/visitors"]),
        "sort": "-revenue/visitors",
    }
)


def test_the_dashboards_chart_and_table_are_what_the_api_answers(daemon, page, screenshots):
    """The chart draws /plotpoints' series; the table's rows and their order are /totals?depth=1&sort=... ."""
    page.get(daemon.base + SHOP)
    chart = wait_drawn(page, "#hw-chart")
    shown = wait_table(page)
    page.wait(lambda b: b.js("return document.querySelectorAll('#hw-rank li').length"), what="the rank")
    page.wait(lambda b: "/s" in b.js("return document.getElementById('hw-stats').textContent"), what="the rates")
    screenshots(page, "dashboard", whole=True)

    _, plotpoints = get_json(daemon.base, chart["src"])
    query = urlencode(
        {
            "pk": '["shop"]',
            "dimensions": "country",
            "metrics": json.dumps(["revenue", "visitors", "revenue/visitors"]),
            "period": "thirty",
            "depth": 1,
            "sort": "-revenue/visitors",
            "limit": 10,
        }
    )
    _, totals = get_json(daemon.base, f"/totals?{query}")
    rows = totals["thirty"]["rows"]
    assert {"pk": '["shop"]', "dimensions": "country", "metrics": '["revenue"]', "period": "thirty"} == {
        name: params(chart["src"])[name] for name in ("pk", "dimensions", "metrics", "period")
    }
    assert expected_chart_data(plotpoints) == chart["data"]
    assert [row["dimension"] for row in rows] == [dimension for dimension, _ in shown["rows"]]
    assert [[row["metrics"][m] for m in ("revenue", "visitors", "revenue/visitors")] for row in rows] == [
        values for _, values in shown["rows"]
    ]
    assert [] == page.errors()


def test_switching_metric_and_period_updates_chart_and_table(daemon, page):
    """Choosing another chart metric, then another period, redraws the chart and the table from the API."""
    page.get(daemon.base + SHOP)
    wait_drawn(page, "#hw-chart")
    wait_table(page)

    select(page, "hw-chart-metric", "revenue/visitors")
    by_ratio = wait_drawn(page, "#hw-chart", {"metrics": '["revenue/visitors"]'})
    select(page, "hw-period", "seven")
    week = wait_drawn(page, "#hw-chart", {"metrics": '["revenue/visitors"]', "period": "seven"})
    week_table = wait_table(page, {"period": "seven"})

    _, ratio_points = get_json(daemon.base, by_ratio["src"])
    _, week_points = get_json(daemon.base, week["src"])
    _, week_totals = get_json(daemon.base, week_table["src"])
    assert (expected_chart_data(ratio_points), expected_chart_data(week_points), 7) == (
        by_ratio["data"],
        week["data"],
        len(week["data"][0]),
    )
    assert [row["dimension"] for row in week_totals["seven"]["rows"]] == [row[0] for row in week_table["rows"]]
    assert {"period": "seven", "chart": "revenue/visitors"}.items() <= params(page.driver.current_url).items()
    assert [] == page.errors()


def test_switching_off_the_charted_metric_updates_chart_and_table(daemon, page):
    """Turning off the charted metric's chip charts the next metric and drops its column; both follow the API."""
    page.get(daemon.base + SHOP)
    wait_drawn(page, "#hw-chart", {"metrics": '["revenue"]'})
    wait_table(page)

    page.js("document.querySelector('.hw-chip[data-metric=\"revenue\"]').click()")
    chart = wait_drawn(page, "#hw-chart", {"metrics": '["visitors"]'})
    fewer = wait_table(page, {"metrics": json.dumps(["visitors", "revenue/visitors"], separators=(",", ":"))})

    _, plotpoints = get_json(daemon.base, chart["src"])
    _, totals = get_json(daemon.base, fewer["src"])
    expected = [[row["metrics"][m] for m in ("visitors", "revenue/visitors")] for row in totals["thirty"]["rows"]]
    assert (["visitors", "revenue/visitors"], expected) == (fewer["columns"], [values for _, values in fewer["rows"]])
    assert expected_chart_data(plotpoints) == chart["data"]
    assert [] == page.errors()


def test_the_url_holds_the_state(daemon, page):
    """The page's URL after changes opens the same view elsewhere (a shareable link)."""
    page.get(daemon.base + SHOP)
    wait_drawn(page, "#hw-chart")
    select(page, "hw-mode", "stacked")
    select(page, "hw-period", "seven")
    wait_drawn(page, "#hw-chart", {"period": "seven"})
    link = page.driver.current_url

    page.get(daemon.base + "/")
    page.get(link)
    again = wait_drawn(page, "#hw-chart", {"period": "seven"})

    assert ("stacked", "seven", "-revenue/visitors") == (
        page.js("return document.getElementById('hw-mode').value"),
        page.js("return document.getElementById('hw-period').value"),
        params(again["src"])["sort"],
    )
    assert [] == page.errors()


def test_the_pk_tree_opens_down_to_a_child_pk(daemon, page, screenshots):
    """The sidebar lists the top-level pks; Product opens to 123, which the page then shows."""
    page.get(daemon.base + "/?pk=shop")
    page.wait(lambda b: b.js("return document.querySelectorAll('#hw-pks > li').length") == 2, what="the pks")

    page.js("document.querySelector('li[data-pk=\\'[\"Product\"]\\'] .hw-tree-name').click()")
    page.wait(lambda b: b.js("return !!document.querySelector('li[data-pk=\\'[\"Product\",\"123\"]\\']')"))
    page.js("document.querySelector('li[data-pk=\\'[\"Product\",\"123\"]\\'] .hw-tree-name').click()")
    chart = wait_drawn(page, "#hw-chart", {"pk": '["Product","123"]'})
    screenshots(page, "product")

    assert (["Product", "shop"], "Product / 123  ›  color", '["Product","123"]', '["sales"]', "color") == (
        page.js("return [...document.querySelectorAll('#hw-pks > li')].map(li => JSON.parse(li.dataset.pk)[0])"),
        page.js("return document.getElementById('hw-title').textContent"),
        params(chart["src"])["pk"],
        params(chart["src"])["metrics"],
        params(page.driver.current_url)["dimension"],
    )
    assert [] == page.errors()


def test_what_matters_and_the_daemon(daemon, page):
    """The rank panel lists /rank's important sub-dimensions; the daemon's health and counters are shown."""
    page.get(daemon.base + SHOP)
    wait_table(page)
    page.wait(lambda b: b.js("return document.querySelectorAll('#hw-rank li').length") > 0, what="the rank")
    page.wait(lambda b: "healthy" in b.js("return document.getElementById('hw-health').textContent"), what="health")

    src = page.js("return document.getElementById('hw-rank').getAttribute('data-hw-src')")
    _, ranked = get_json(daemon.base, src)
    important = [key for key, entry in ranked.items() if entry["important"] and key != "country"][:8]
    assert important == page.js(
        "return [...document.querySelectorAll('#hw-rank li[data-dimension]')].map(li => li.dataset.dimension)"
    )
    assert "accepted since start" in page.js("return document.getElementById('hw-stats').textContent")
    assert [] == page.errors()


# -- bad input ------------------------------------------------------------------------------------------


def test_an_unknown_pk_draws_an_empty_chart_with_a_note(daemon, page):
    """A graph of a pk with no counts is drawn empty, with a note saying so."""
    page.get(daemon.base + "/?pk=nothing-here&metrics=" + json.dumps(["hits"]))
    chart = wait_drawn(page, "#hw-chart")

    assert (True, "No counts for") == (all(v == 0 for series in chart["data"][1:] for v in series), chart["note"][:13])
    assert [] == page.errors()


@pytest.mark.parametrize(
    "change, reason",
    [({"metrics": json.dumps(["revenue/"])}, "bad_formula"), ({"period": "fortnight"}, "bad_period")],
)
def test_a_bad_formula_or_period_shows_the_apis_reason(daemon, page, screenshots, change, reason):
    """The chart and the table show the 400's reason in the page; no script error in the console."""
    query = {"pk": "shop", "dimension": "country", "metrics": json.dumps(["revenue"]), **change}
    page.get(daemon.base + "/?" + urlencode(query))
    note = page.wait(lambda b: failed(b, "#hw-chart"), what="the chart's error")
    cell = page.wait(lambda b: b.js("return document.querySelector('.hw-table-error')?.textContent"), what="table")
    screenshots(page, f"error-{reason}")

    src = page.js("return document.getElementById('hw-chart').hailwhale.url()")
    status, answer = get_json(daemon.base, src)
    assert (400, f"hailwhale: {answer['error']} ({reason})", f"hailwhale: {answer['error']} ({reason})") == (
        status,
        note,
        cell,
    )
    assert [] == javascript_errors(page)


# -- the read token --------------------------------------------------------------------------------------


def test_the_dashboard_asks_for_the_read_token_once(guarded, page):
    """With a read token the page asks for it, then draws; a reload in the same tab does not ask again."""
    page.get(guarded.base + SHOP)
    page.wait(lambda b: b.js("return !document.getElementById('hw-token').hidden"), what="the token form")
    page.js(
        "document.getElementById('hw-token-input').value = arguments[0];"
        "document.getElementById('hw-token-form').requestSubmit();",
        TOKEN,
    )
    chart = wait_drawn(page, "#hw-chart")
    page.driver.refresh()
    again = wait_drawn(page, "#hw-chart")

    _, plotpoints = get_json(guarded.base, chart["src"], token=TOKEN)
    assert (expected_chart_data(plotpoints), True) == (
        again["data"],
        page.js("return document.getElementById('hw-token').hidden"),
    )
    # the refusals before the token was given are the only console errors
    assert [] == javascript_errors(page)


# -- embedding --------------------------------------------------------------------------------------------


def test_graph_js_draws_on_a_page_of_another_origin(daemon, page, other_origin, screenshots):
    """A page elsewhere with the original's script tag (several graphs, markup, jQuery) draws them all."""
    tag = embed.graph_tag("shop", "country", "revenue", host=daemon.base)
    tag_lines = embed.graph_tag(["shop", "web"], None, "visitors", {"area": "", "period": "seven"}, host=daemon.base)
    url = other_origin.page(
        "embed.html",
        f"""
        <h1>Our shop</h1>
        <div style="width: 640px">{tag}</div>
        <div style="width: 640px">{tag_lines}</div>
        <div id="markup" style="width: 640px" data-hailwhale-graph data-pk='["shop","app"]' data-metrics='revenue'
             data-dimensions="device" data-depth="1" data-host="{daemon.base}"></div>
        <script src="jquery.min.js"></script>
        <div id="jq" style="width: 640px"></div>
        <script src="{daemon.base}/hailwhale.js"></script>
        <script src="jq.js"></script>
        """,
    )
    (other_origin.directory / "jq.js").write_text(
        f"$.hailwhale('{daemon.base}/').add_graph('jq', {{category: 'shop', dimension: 'device', metric: 'visitors', "
        "depth: '1', area: 'percent', autoupdate: 'false', title: 'Visitors by device'});"
    )
    page.resize(760, 1900)
    page.get(url)
    embeds = [wait_drawn(page, f"body > div:nth-of-type({i}) > .hailwhale-embed") for i in (1, 2)]
    markup = wait_drawn(page, "#markup")
    jq = wait_drawn(page, "#jq")
    screenshots(page, "embedded")

    graphs = [*embeds, markup]
    answers = [get_json(daemon.base, graph["src"])[1] for graph in graphs]
    assert [expected_chart_data(answer) for answer in answers] == [graph["raw"] for graph in graphs]
    assert stacked(expected_chart_data(answers[0])) == embeds[0]["data"]
    assert (True, "1", "seven", "1", "device", False) == (
        all(graph["src"].startswith(daemon.base + "/plotpoints?") for graph in (*graphs, jq)),
        params(embeds[0]["src"])["depth"],
        params(embeds[1]["src"])["period"],
        params(markup["src"])["depth"],
        params(jq["src"])["dimensions"],
        page.js("return document.getElementById('jq').hailwhale.options.live"),
    )
    assert [] == page.errors()


def test_with_a_read_token_an_embed_needs_a_grant(guarded, page, other_origin, screenshots):
    """On another origin the token-less graph shows the 401's reason; the graph tag minted with the token draws."""
    open_tag = embed.graph_tag("shop", "country", "revenue", host=guarded.base)
    granted_tag = embed.graph_tag("shop", "country", "revenue", host=guarded.base, read_token=TOKEN)
    url = other_origin.page(
        "granted.html",
        f'<div id="a" style="width:640px">{open_tag}</div><div id="b" style="width:640px">{granted_tag}</div>',
    )
    page.get(url)
    note = page.wait(lambda b: failed(b, "#a > .hailwhale-embed"), what="the refused graph")
    chart = wait_drawn(page, "#b > .hailwhale-embed")
    screenshots(page, "granted")

    status, answer = get_json(guarded.base, chart["src"])
    assert ("missing_token", False, 200) == (
        note.rsplit("(", 1)[1].rstrip(")"),
        TOKEN in page.driver.page_source,
        status,
    )
    assert expected_chart_data(answer) == chart["raw"]
    assert [] == javascript_errors(page)


def test_a_live_graph_takes_new_counts_in_place(daemon, page, other_origin):
    """A live graph polls; new counts change its data without making a new chart."""
    url = other_origin.page(
        "live.html",
        f'<div id="live" style="width:640px" data-hailwhale-graph data-pk="live" data-metrics="hits" '
        f'data-period="hour" data-interval="1000" data-host="{daemon.base}"></div>'
        f'<script src="{daemon.base}/hailwhale.js"></script>',
    )
    post(daemon.base, "/count_now", [{"pk": "live"}])
    page.get(url)
    first = wait_drawn(page, "#live")

    post(daemon.base, "/count_now", [{"pk": "live"}, {"pk": "live"}])
    later = page.wait(
        lambda b: (found := drawn(b, "#live")) and sum(found["data"][1]) == 3 and found,
        what="the new counts",
    )

    assert (1.0, 1, 1, True) == (sum(first["data"][1]), later["creates"], first["creates"], later["updates"] >= 1)
    assert [] == page.errors()
