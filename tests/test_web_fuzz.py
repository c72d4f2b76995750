"""Hypothesis against the HTTP API: no request makes it answer 5xx, and a rejected count changes nothing."""

from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.test_web import Api

PATHS = ["/count", "/count.gif", "/totals", "/plotpoints", "/rank", "/dimensions"]
NAMES = [
    "pk",
    "dimensions",
    "dimension",
    "metrics",
    "metric",
    "period",
    "periods",
    "at",
    "depth",
    "sort",
    "limit",
    "tz",
    "tzoffset",
    "recursive",
]
VALUES = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "test",
            '["a","b"]',
            "{'a': 1}",
            "{",
            "[",
            "today",
            "thirty",
            "1m:1h",
            "1d:5y",
            "-x/y",
            "a/b/c",
            "2026-11-01..2026-11-03",
            "13/45/2026-1/1/2026",
            "America/Los_Angeles",
            "-0700",
            "9999",
            "-1",
            "1e400",
            "nan",
            '{"x": 1e400}',
            '{"a": {"b": {"c": "d"}}}',
            "__proto__",
            "\x00",
            "%ff",
        ]
    ),
)


@pytest.fixture(scope="module")
def api(valkey_server):
    import redis

    from hailwhale import testing
    from hailwhale.store import Store

    url = testing.valkey_url(valkey_server)
    redis.Redis.from_url(url).flushall()
    return Api(Store.connect(url))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(PATHS), st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=6))
def test_no_request_is_a_server_error(api, path, params):
    """Whatever the parameters, the API answers 2xx or 4xx, and a 4xx count leaves the store as it was."""
    query = "&".join(f"{quote(name)}={quote(value, safe='')}" for name, value in params.items())
    before = api.stats.snapshot()["http_events_ok"]

    response = api.get(f"{path}?{query}")

    assert response.code < 500, (path, params, api.content(response))
    if path.startswith("/count") and response.code >= 400:
        assert before == api.stats.snapshot()["http_events_ok"]
