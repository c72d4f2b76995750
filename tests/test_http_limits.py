"""
A daemon facing the public internet stays open to everyone when a few clients misbehave:
on the real daemon process, started under ``ulimit -n 1024`` (the common default soft
limit) for the process alone, with crowds of connections held by a process of their own
(:class:`hailwhale.testing.processes.Crowd`).  The "other client" sends from another
loopback address (127.0.0.2).  Each test prints what it saw (``pytest -s``).
"""

import http.client
import json
import re
import resource
import time
from urllib.parse import quote

from hailwhale.testing import wait_for
from hailwhale.testing.processes import Crowd, Daemon
from hailwhale.web.connections import RESERVED_FILES

ULIMIT = (1024, 1024)
TOTAL = ULIMIT[0] - RESERVED_FILES  # the default caps under it
PER_ADDRESS = TOTAL // 4
CROWD = 1100
OTHER = "127.0.0.2"
HALF_A_REQUEST_LINE = b"GET /count.gif?pk=crow"


def other_client(daemon: Daemon, path: str) -> tuple[int, bytes]:
    """(status, body) of GET ``path`` from another address than the crowd's."""
    connection = http.client.HTTPConnection("127.0.0.1", daemon.http_port, source_address=(OTHER, 0), timeout=10)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def stats(daemon: Daemon) -> dict:
    status, body = other_client(daemon, "/stats")
    assert 200 == status
    return json.loads(body)


def hits(daemon: Daemon, pk: str) -> float:
    status, body = other_client(daemon, f"/totals?pk={quote(pk)}&periods=%5B%22today%22%5D")
    return json.loads(body)["today"]["_"]["hits"] if status == 200 else -1


def test_half_open_connections_from_one_address_leave_room_for_everyone(tmp_path):
    """1,100 connections from one address, each half a request line and then nothing, under ulimit -n 1024: that
    address gets a quarter of the connections (the rest answered 503 at once), another client's pixel and query
    are answered, and the held ones are answered 408 and closed at the request timeout."""
    daemon = Daemon(tmp_path, "--http-request-timeout", "5", "--flush-interval", "0.2", open_files=ULIMIT)
    refused = CROWD - PER_ADDRESS
    try:
        with Crowd(daemon.http_port, CROWD, HALF_A_REQUEST_LINE) as crowd:
            connected = crowd.status()["connected"]
            settled = wait_for(lambda: (found := crowd.status())["closed"] >= refused and found, 30, "refusals")
            held = stats(daemon)
            pixel = other_client(daemon, "/count.gif?pk=other")
            counted = wait_for(lambda: hits(daemon, "other") == 1, 30, "the other client's pixel in /totals")
            timed_out = wait_for(lambda: (found := crowd.status())["open"] == 0 and found, 30, "the timeout")
        after = stats(daemon)
        print(f"\nheld: {held['http_connections']} open; crowd: {settled} then {timed_out}")
    finally:
        daemon.kill()

    assert (
        (
            CROWD,
            {"503": refused},
            {"too_many_from_address": refused},
            PER_ADDRESS + 1,  # and the /stats request's own
            (200, b"GIF89a"),
            True,
            {"503": refused, "408": PER_ADDRESS},
            {"request": PER_ADDRESS},
            TOTAL,
        )
        == (
            connected,
            settled["answers"],
            held["http_connections_refused"],
            held["http_connections"],
            (pixel[0], pixel[1][:6]),
            counted,
            timed_out["answers"],
            after["http_timeouts"],
            after["http_connections_limit"],
        )
    )


def test_a_flood_of_slow_bodies_is_cut_at_the_request_timeout(tmp_path):
    """200 POSTs whose bodies come a byte every half second are answered 408 and closed at the request timeout
    (the bytes do not extend it), while another client is answered."""
    daemon = Daemon(tmp_path, "--http-request-timeout", "3", open_files=ULIMIT)
    first = b"POST /count HTTP/1.1\r\nHost: hw\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    try:
        wait_for(lambda: other_client(daemon, "/health")[0] == 200, 30, "the first check of the store")
        with Crowd(daemon.http_port, 200, first, trickle=b" ", interval=0.5) as crowd:
            during = other_client(daemon, "/health")
            timed_out = wait_for(lambda: (found := crowd.status())["open"] == 0 and found, 60, "the timeout")
        after = stats(daemon)
    finally:
        daemon.kill()

    assert (200, {"408": 200}, {"request": 200}, 0) == (
        during[0],
        timed_out["answers"],
        after["http_timeouts"],
        after["http_events_ok"],
    )


def test_out_of_files_anyway_it_keeps_counting_and_recovers(tmp_path):
    """With the caps set past what 1,024 files allow, 1,100 held connections run the process out of files: it
    keeps running and counting UDP, logs that at a bounded rate, and answers again once the connections close."""
    daemon = Daemon(
        tmp_path,
        "--http-max-connections",
        "5000",
        "--http-max-connections-per-address",
        "5000",
        "--flush-interval",
        "0.2",
        open_files=ULIMIT,
    )
    try:
        with Crowd(daemon.http_port, CROWD, HALF_A_REQUEST_LINE) as crowd:
            crowd.status()
            wait_for(lambda: "cannot accept HTTP connections (EMFILE" in daemon.log(), 30, "running out of files")
            out_at = time.monotonic()
            for _ in range(20):
                daemon.send_udp(b'{"pk":"while-out","metrics":{"v":1}}')
                time.sleep(0.1)
            time.sleep(3)
            running = daemon.process.poll() is None
            held_for = time.monotonic() - out_at
        answered = wait_for(lambda: daemon.health()[0] == 200, 30, "answers again")
        udp_counted = wait_for(lambda: hits(daemon, "while-out") == 20, 30, "the UDP events in /totals")
        after = stats(daemon)
        noted = len(re.findall("cannot accept HTTP connections", daemon.log()))
        print(f"\nout of files for {held_for:.1f} s: {after['http_accept_failures']}, {noted} log line(s)")
    finally:
        daemon.kill()

    assert (True, True, True, True, True) == (
        running,
        answered,
        udp_counted,
        after["http_accept_failures"].get("out_of_files", 0) > 0,
        noted <= 2 + held_for / 10,
    )


def test_the_open_files_limit_is_raised_to_the_hard_limit(tmp_path):
    """Started with a soft limit of 1,024 under a higher hard limit, the daemon raises it to the hard limit (and
    logs both); the default connection cap follows."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    expected = hard if hard != resource.RLIM_INFINITY else 1 << 20
    soft = min(1024, expected)
    line = (
        f"open files: soft limit raised from {soft} to the hard limit, {expected}"
        if soft < expected
        else f"open files: at most {expected}"
    )
    daemon = Daemon(tmp_path, open_files=(soft, hard))
    try:
        found = stats(daemon)
        log = daemon.log()
    finally:
        daemon.kill()

    assert (expected, min(10_000, expected - RESERVED_FILES), True) == (
        found["open_files_limit"],
        found["http_connections_limit"],
        line in log,
    )
