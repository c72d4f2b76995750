"""
schemathesis against a running daemon, from the OpenAPI description the daemon serves: no
request is a 5xx, every rejection is a 4xx with a reason, answers match the description,
and a rejected count leaves the store as it was.
"""

import hashlib
import json
import os
import urllib.request

import pytest
import redis
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from hailwhale.testing import processes
from hailwhale.web import openapi

pytestmark = pytest.mark.slow

READ_TOKEN, WRITE_TOKEN = "read-0123456789", "write-0123456789"
READ_PATHS = {"/totals", "/plotpoints", "/rank", "/dimensions", "/pks", "/decide", "/stats", "/metrics"}
EXAMPLES = int(os.environ.get("HAILWHALE_SCHEMATHESIS_EXAMPLES", 30))  # more for a longer hunt
COUNTING = {"/count", "/count_now", "/count.gif", "/count_decision", "/count_decided_now"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
DESCRIPTION = openapi.describe(read_token=True, write_token=True)
# (schemathesis's own pytest plugin does not run under pytest 9: one test per operation, driven by Hypothesis)
SCHEMA = schemathesis.openapi.from_dict(DESCRIPTION)
FINEST = b"60"  # the default schema's finest bucket size, in seconds
OPERATIONS = [(path, method) for path, methods in DESCRIPTION["paths"].items() for method in methods]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    directory = tmp_path_factory.mktemp("schemathesis")
    (directory / "read.token").write_text(READ_TOKEN + "\n")
    (directory / "write.token").write_text(WRITE_TOKEN + "\n")
    daemon = processes.Daemon(
        directory, "--collectd-port", "0", "--read-token-file", "read.token", "--write-token-file", "write.token"
    )
    daemon.store = redis.Redis(unix_socket_path=str(directory / "hailwhale-data" / "valkey.sock"))
    yield daemon
    daemon.store.close()
    daemon.stop()


def authorization(path: str) -> dict:
    return {"Authorization": f"Bearer {READ_TOKEN if path in READ_PATHS else WRITE_TOKEN}"}


def flush(daemon) -> None:
    request = urllib.request.Request(daemon.base + "/flush", method="POST", headers=authorization("/flush"))
    urllib.request.urlopen(request, timeout=30).close()


def folding_touches(key: bytes) -> bool:
    """
    Whether the daemon's folding of closed minutes (on its own timer, at any moment) may
    change ``key``: the coarser buckets, the notes of unfolded minutes and the fold marks.
    A count writes its finest buckets and its batch token, which folding never touches.
    """
    if key.endswith((b":dirty", b":folded")):
        return True
    after_tag = key.partition(b"}:")[2].split(b":")
    return len(after_tag) > 2 and after_tag[0] in (b"z", b"u", b"d") and after_tag[1] != FINEST


def digest(store: redis.Redis) -> str:
    """A digest of every key of the store that folding leaves alone, its value and its expiry time."""
    found = hashlib.sha256()
    for key in sorted(key for key in store.scan_iter(count=1000) if not folding_touches(key)):
        found.update(key + b"\0" + (store.dump(key) or b"") + b"\0" + str(store.pexpiretime(key)).encode() + b"\n")
    return found.hexdigest()


def events_accepted(daemon) -> int:
    return daemon.get("/stats", headers=authorization("/stats"))["events_accepted"]


def test_the_daemon_serves_the_description(daemon):
    """/openapi.json is the description these tests fuzz against (with both tokens set)."""
    assert DESCRIPTION == daemon.get("/openapi.json")


@pytest.mark.parametrize("path, method", OPERATIONS)
def test_the_api_as_described(daemon, path, method):
    """Every answer is as described and never a 5xx; a rejection is a 4xx with a reason and changes nothing."""
    operation = SCHEMA[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(cases)
    def answers_as_described(case):
        call_and_check(daemon, case)

    answers_as_described()


def call_and_check(daemon, case) -> None:
    counting = case.path in COUNTING
    if counting:
        flush(daemon)
        before = (digest(daemon.store), events_accepted(daemon))

    response = case.call(base_url=daemon.base, headers=authorization(case.path), timeout=30)

    case.validate_response(response, checks=CHECKS)
    assert response.status_code < 500 or (case.path, response.status_code) == ("/flush", 503), response.content[:300]
    if 400 <= response.status_code < 500:
        if case.path == "/count.gif":
            reason = response.headers.get("x-hailwhale-reason", [None])[0]
        else:
            reason = json.loads(response.content).get("reason")
        assert reason, (case.path, response.status_code, response.headers, response.content[:300])
        if counting:
            flush(daemon)
            assert before == (digest(daemon.store), events_accepted(daemon)), (case.path, response.content[:300])
