"""Access control: tokens and origins (pure), the options, and what the HTTP API does with them."""

import json

import pytest
from treq.testing import StubTreq
from twisted.python import usage

from hailwhale.config import Config
from hailwhale.service import access_policy
from hailwhale.tap import Options
from hailwhale.testing import succeeded
from hailwhale.testing.processes import Daemon
from hailwhale.web import access
from tests.test_web import Api

READ, WRITE = "r3ad-t0ken", "wr1te-t0ken"
DASHBOARD = "https://dash.example"


# -- pure ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization, params, expected",
    [
        (b"Bearer abc", {}, "abc"),
        (b"bearer   abc  ", {}, "abc"),
        (None, {"token": "abc"}, "abc"),
        (b"Bearer abc", {"token": "xyz"}, "abc"),
        (b"Basic dXNlcjpwYXNz", {}, None),
        (b"Basic dXNlcjpwYXNz", {"token": "abc"}, "abc"),
        (b"Bearer ", {}, None),
        (None, {"token": ""}, None),
        (None, {}, None),
    ],
)
def test_the_token_a_request_presents(authorization, params, expected):
    """The Bearer credentials win over token=; another scheme or an empty value is no token."""
    assert expected == access.presented(authorization, params)


@pytest.mark.parametrize(
    "required, token, expected",
    [
        (None, None, None),
        (None, "anything", None),
        ("abc", None, access.MISSING),
        ("abc", "abd", access.WRONG),
        ("abc", "ab", access.WRONG),
        ("abc", "abcd", access.WRONG),
        ("abc", "äbc\udcff", access.WRONG),
        ("abc", "abc", None),
    ],
)
def test_check(required, token, expected):
    """No token required: open; otherwise the exact token, else missing or wrong (never an exception)."""
    assert expected == access.check(required, token)


@pytest.mark.parametrize(
    "text, expected",
    [("s3cret\n", "s3cret"), ("  s3cret  \nsecond line\n", "s3cret"), ("s3cret", "s3cret"), ("s3cret\r\n", "s3cret")],
)
def test_a_token_file_is_its_first_line_stripped(text, expected):
    """A token file holds the token on its first line; whitespace around it and later lines are no part of it."""
    assert expected == access.token_from_file_text(text)


@pytest.mark.parametrize("text", ["", "\n", "   \nsecond", "two words\n", "caf\u00e9\n"])
def test_an_unusable_token_file_is_refused(text):
    """An empty first line, or one a header cannot carry, is refused rather than silently protecting nothing."""
    with pytest.raises(access.TokenError):
        access.token_from_file_text(text)


def test_origins():
    """--cors-origin values are origins or comma lists, repeated ones once, a trailing slash dropped; * means any."""
    assert (("https://a.example", "https://b.example", "http://c.example:8080"), ()) == (
        access.origins(["https://a.example, https://b.example/", "http://c.example:8080", "https://a.example"]),
        access.origins(["https://a.example,*"]),
    )


@pytest.mark.parametrize(
    "allowed, origin, expected",
    [
        ((), b"https://evil.example", b"*"),
        ((), None, b"*"),
        ((DASHBOARD,), DASHBOARD.encode(), DASHBOARD.encode()),
        ((DASHBOARD,), b"https://evil.example", None),
        ((DASHBOARD,), b"https://dash.example.evil.example", None),
        ((DASHBOARD,), None, None),
    ],
)
def test_allowed_origin(allowed, origin, expected):
    """Any origin is *, a listed origin is named back, any other gets no header."""
    assert expected == access.allowed_origin(allowed, origin)


def test_a_policy_never_shows_its_tokens():
    """The tokens stay out of the policy's repr (and so out of logs)."""
    assert READ not in repr(access.Policy(READ, WRITE, (DASHBOARD,)))


@pytest.mark.parametrize(
    "url, expected",
    [
        ("redis://:s3cret@db.example:6379/0", "redis://:***@db.example:6379/0"),
        ("rediss://hw:s3cret@db.example/1", "rediss://hw:***@db.example/1"),
        ("redis://db.example:6379/0", "redis://db.example:6379/0"),
        ("unix:///run/valkey.sock", "unix:///run/valkey.sock"),
    ],
)
def test_store_urls_shown_without_their_password(url, expected):
    """/stats shows the store URL with its password masked."""
    assert expected == access.redacted_url(url)


# -- options ------------------------------------------------------------------------------


def test_options():
    """The token options and --cors-origin (repeatable, comma lists) end up in the Config."""
    options = Options()
    options.parseOptions(
        [
            "--read-token-file",
            "/run/read",
            "--write-token",
            WRITE,
            "--cors-origin",
            DASHBOARD,
            "--cors-origin",
            "https://a.example,https://b.example",
        ]
    )

    expected = Config(
        read_token_file="/run/read",
        write_token=WRITE,
        cors_origins=(DASHBOARD, "https://a.example", "https://b.example"),
    )
    assert expected == options["config"]


@pytest.mark.parametrize(
    "argv",
    [
        ["--read-token", READ, "--read-token-file", "/run/read"],
        ["--write-token", WRITE, "--write-token-file", "/run/write"],
        ["--read-token", "two words"],
        ["--write-token", ""],
    ],
)
def test_bad_token_options(argv):
    """A token and a token file of the same kind, or a token a header cannot carry, is a usage error."""
    with pytest.raises(usage.UsageError):
        Options().parseOptions(argv)


def test_the_policy_reads_the_token_files(tmp_path):
    """makeService reads each token file's first line; a file without a token stops the start."""
    (tmp_path / "read").write_text(READ + "\n")
    (tmp_path / "empty").write_text("\n")

    policy = access_policy(Config(read_token_file=str(tmp_path / "read"), write_token=WRITE, cors_origins=(DASHBOARD,)))

    assert access.Policy(READ, WRITE, (DASHBOARD,)) == policy
    with pytest.raises(access.TokenError, match="empty"):
        access_policy(Config(write_token_file=str(tmp_path / "empty")))


# -- over HTTP ----------------------------------------------------------------------------


@pytest.fixture
def api(store):
    return Api(store)


@pytest.fixture
def guarded(store):
    return Api(store, policy=access.Policy(READ, WRITE, (DASHBOARD,)))


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def answer(api, response) -> tuple:
    return response.code, api.json(response)["reason"]


@pytest.mark.parametrize(
    "path", ["/totals?pk=test", "/plotpoints?pk=test", "/rank?pk=test", "/dimensions?pk=test", "/stats", "/metrics"]
)
def test_read_endpoints_need_the_read_token(guarded, path):
    """With a read token, queries, /stats and /metrics answer 401 (with a reason and a Bearer challenge) without it."""
    missing = guarded.get(path)
    wrong = guarded.get(path, headers=bearer(WRITE))
    by_header = guarded.get(path, headers=bearer(READ))
    by_parameter = guarded.get(path + ("&" if "?" in path else "?") + "token=" + READ)

    assert ((401, "missing_token"), (401, "wrong_token"), 200, 200) == (
        answer(guarded, missing),
        answer(guarded, wrong),
        by_header.code,
        by_parameter.code,
    )
    assert (['Bearer realm="hailwhale"'], ['Bearer realm="hailwhale", error="invalid_token"']) == (
        missing.headers.getRawHeaders("WWW-Authenticate"),
        wrong.headers.getRawHeaders("WWW-Authenticate"),
    )


def test_health_and_the_description_stay_open(guarded):
    """/health (for load balancers) and /openapi.json need no token."""
    guarded.get("/count.gif?pk=test")
    guarded.flush()

    assert (200, 200) == (guarded.get("/health").code, guarded.get("/openapi.json").code)


@pytest.mark.parametrize(
    "method, path, body",
    [
        ("GET", "/count?pk=test", b""),
        ("POST", "/count", b'[{"pk": "test"}, {"pk": "test"}]'),
        ("GET", "/count_now?pk=test", b""),
        ("POST", "/flush", b""),
    ],
)
def test_the_counting_api_needs_the_write_token(guarded, method, path, body):
    """With a write token, /count (batches too), /count_now and /flush answer 401 without it, counting nothing."""
    response = succeeded(
        guarded.client.request(method, "http://hw" + path, data=body, headers={"Content-Type": "application/json"})
    )
    read_token_instead = succeeded(
        guarded.client.request(
            method, "http://hw" + path, data=body, headers={"Content-Type": "application/json", **bearer(READ)}
        )
    )
    guarded.flush()

    assert ((401, "missing_token"), (401, "wrong_token")) == (
        answer(guarded, response),
        answer(guarded, read_token_instead),
    )
    assert 0 == guarded.stats.events_flushed


def test_counting_with_the_write_token(guarded):
    """The write token, as a header or token=, lets counting through (the token is no event field)."""
    ok = [
        guarded.get("/count?pk=test", headers=bearer(WRITE)).code,
        guarded.post("/count", b'[{"pk": "test"}, {"pk": "test"}]', headers=bearer(WRITE)).code,
        guarded.get(f"/count_now?pk=test&token={WRITE}").code,
    ]
    guarded.flush()

    totals = json.loads(guarded.content(guarded.get('/totals?pk=test&periods=["today"]', headers=bearer(READ))))
    assert ([200, 200, 200], 4.0) == (ok, totals["today"]["_"]["hits"])


def test_the_pixel_stays_open(guarded):
    """The pixel needs no token even when counting over HTTP does (an <img> tag cannot send one)."""
    response = guarded.get("/count.gif?pk=test")
    guarded.flush()

    assert (200, 1) == (response.code, guarded.stats.events_flushed)


def test_refusals_are_counted(guarded):
    """Each 401 is counted in /stats by its reason."""
    guarded.get("/totals?pk=test")
    guarded.get("/count?pk=test", headers=bearer("guess"))
    guarded.get("/stats")

    stats = guarded.json(guarded.get("/stats", headers=bearer(READ)))
    assert {"missing_token": 2, "wrong_token": 1} == stats["http_bad_requests"]


# -- CORS ---------------------------------------------------------------------------------


def origin_of(response) -> list | None:
    return response.headers.getRawHeaders("Access-Control-Allow-Origin")


@pytest.mark.parametrize(
    "path",
    [
        "/totals?pk=test",
        "/totals?pk=test&periods=fortnight",
        "/stats",
        "/metrics",
        "/totals",
        "//totals?pk=test",
        "///stats",
    ],
)
def test_cors_for_reads_names_only_allowed_origins(guarded, path):
    """With --cors-origin, a read answer (errors too) names an allowed origin back and gives others no header."""
    allowed = guarded.get(path, headers={"Origin": DASHBOARD, **bearer(READ)})
    other = guarded.get(path, headers={"Origin": "https://evil.example", **bearer(READ)})

    assert ([DASHBOARD], None, ["Origin"]) == (
        origin_of(allowed),
        origin_of(other),
        other.headers.getRawHeaders("Vary"),
    )


@pytest.mark.parametrize("path", ["/count?pk=test", "/count.gif?pk=test", "/health", "/openapi.json"])
def test_cors_for_counting_stays_open(guarded, path):
    """Counting answers, the pixel, /health and /openapi.json allow any origin, --cors-origin or not."""
    response = guarded.get(path, headers={"Origin": "https://shop.example", **bearer(WRITE)})

    assert ["*"] == origin_of(response)


def test_cors_without_the_option_allows_any_origin(api):
    """Without --cors-origin, query answers allow any origin, as before."""
    response = api.get("/totals?pk=test", headers={"Origin": "https://shop.example"})

    assert ["*"] == origin_of(response)


def preflight(api, path, origin, method="GET"):
    return succeeded(
        api.client.request(
            "OPTIONS",
            "http://hw" + path,
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": "authorization",
            },
        )
    )


def test_read_preflight(guarded):
    """A preflight for a query allows the Authorization header, for allowed origins only."""
    allowed = preflight(guarded, "/totals", DASHBOARD)
    other = preflight(guarded, "/totals", "https://evil.example")

    assert (204, [DASHBOARD], ["Authorization"], ["GET, OPTIONS"], None) == (
        allowed.code,
        origin_of(allowed),
        allowed.headers.getRawHeaders("Access-Control-Allow-Headers"),
        allowed.headers.getRawHeaders("Access-Control-Allow-Methods"),
        origin_of(other),
    )


def test_read_preflight_without_the_option(api):
    """Without --cors-origin, a query's preflight allows any origin."""
    assert ["*"] == origin_of(preflight(api, "/plotpoints", "https://shop.example"))


@pytest.mark.parametrize("path", ["/count", "/count_now", "/flush", "/count.gif"])
def test_counting_preflight_allows_the_write_token(guarded, path):
    """A counting preflight from any page allows Authorization (for the write token) and Content-Type."""
    response = preflight(guarded, path, "https://shop.example", "POST")

    assert (204, ["https://shop.example"], ["Authorization, Content-Type"]) == (
        response.code,
        origin_of(response),
        response.headers.getRawHeaders("Access-Control-Allow-Headers"),
    )


# -- unknown paths and methods ------------------------------------------------------------


def test_unknown_paths_and_methods_are_json(api):
    """An unknown path is a JSON 404, a method the path does not take a JSON 405 listing the methods it does."""
    missing = api.get("/nowhere")
    wrong_method = api.post("/totals")

    assert (
        (404, "not_found"),
        (405, "method_not_allowed"),
        "GET" in wrong_method.headers.getRawHeaders("Allow")[0],
    ) == (answer(api, missing), answer(api, wrong_method), True)


def test_a_bug_is_a_json_500(store):
    """A handler that fails unexpectedly answers a JSON 500 with a reason (and logs it), not an HTML page."""

    class Broken:
        def answer(self, plan):
            raise ZeroDivisionError("a bug")

    api = Api(store)
    api.client = StubTreq(_web_with_reader(api, Broken()).resource())

    response = api.get("/totals?pk=test")

    assert (500, "internal_error") == answer(api, response)


def _web_with_reader(api, reader):
    from hailwhale.web.app import HailwhaleWeb
    from tests.test_web import SCHEMA

    return HailwhaleWeb(api.ingest, api.flusher, reader, api.stats.snapshot, api.clock, SCHEMA)


# -- where it listens ---------------------------------------------------------------------


def listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses with a TCP socket listening on ``port`` (from /proc/net/tcp)."""
    found = set()
    with open("/proc/net/tcp") as table:
        for line in list(table)[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0)))
    return found


@pytest.mark.slow
def test_http_binds_to_loopback_unless_told_otherwise(tmp_path):
    """Without --interface the HTTP port listens on 127.0.0.1 only; --interface 0.0.0.0 opens it to every address."""
    assert "127.0.0.1" == Config().interface
    for name in ("default", "all"):
        (tmp_path / name).mkdir()
    daemons = [
        Daemon(tmp_path / "default", "--collectd-port", "0"),
        Daemon(tmp_path / "all", "--collectd-port", "0", "--interface", "0.0.0.0"),
    ]
    try:
        addresses = [listening_addresses(daemon.http_port) for daemon in daemons]
    finally:
        for daemon in daemons:
            daemon.kill()

    assert [{"127.0.0.1"}, {"0.0.0.0"}] == addresses
