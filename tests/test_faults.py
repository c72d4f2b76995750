"""
What the daemon promises when things go wrong, on the real daemon process and a real
store: a store outage, a SIGTERM under load, a reply lost after a write.  Each test
prints the figures it measured (``pytest -s`` shows them).
"""

import hashlib
import http.client
import json
import os
import signal
import threading
import time
from urllib.parse import quote

import attrs
import pytest
import redis

from hailwhale import testing
from hailwhale.store import client as store_client
from hailwhale.testing import wait_for
from hailwhale.testing.processes import CuttingProxy, Daemon
from hailwhale.whale import Whale

# The outage the issue asks for lasts 30 s; a hung server is held for less (every flush
# attempt against it already waits out the store timeout).  HAILWHALE_OUTAGE_SECONDS sets both.
OUTAGE_SECONDS = {"killed": 30.0, "hung": 10.0}


@attrs.define
class Tally:
    events: int = 0
    v: int = 0

    def add(self, events: int, v: int) -> None:
        self.events += events
        self.v += v


class Load:
    """
    Steady events from two threads: UDP datagrams of 10 lines to ``<prefix>-udp`` and
    HTTP ``/count`` requests on a kept-alive connection to ``<prefix>-http``.  Each event
    carries a distinct ``v``, so a batch counted twice or lost shows in the sum of ``v``.
    HTTP outcomes are tallied apart: answered OK (taken in), refused (503 or connection
    refused: not taken in), or cut before the answer (unknown).
    """

    LINES_PER_DATAGRAM = 10

    def __init__(
        self, daemon: Daemon, prefix: str, datagrams_per_second: float = 100, requests_per_second: float = 100
    ):
        self._daemon = daemon
        self._prefix = prefix
        self._udp_pause = 1 / datagrams_per_second
        self._http_pause = 1 / requests_per_second
        self._running = threading.Event()
        self._next_v = iter(range(1, 1 << 62))
        self._v_lock = threading.Lock()
        self.udp = Tally()
        self.http_ok, self.http_refused, self.http_unknown = Tally(), Tally(), Tally()
        self._threads = [threading.Thread(target=self._send_udp), threading.Thread(target=self._send_http)]

    def __enter__(self) -> "Load":
        self._running.set()
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self) -> None:
        self._running.clear()
        for thread in self._threads:
            if thread.is_alive():
                thread.join()

    def _v(self) -> int:
        with self._v_lock:
            return next(self._next_v)

    def _send_udp(self) -> None:
        pk = json.dumps(f"{self._prefix}-udp")
        while self._running.is_set():
            values = [self._v() for _ in range(self.LINES_PER_DATAGRAM)]
            self._daemon.send_udp(
                b"\n".join(
                    b'{"pk":%s,"dimensions":{"via":"udp"},"metrics":{"v":%d}}' % (pk.encode(), v) for v in values
                )
            )
            self.udp.add(len(values), sum(values))
            time.sleep(self._udp_pause)

    def _send_http(self) -> None:
        connection = None
        while self._running.is_set():
            v = self._v()
            path = f"/count?pk={self._prefix}-http&dimensions=%7B%22via%22%3A%22http%22%7D&metrics=%7B%22v%22%3A{v}%7D"
            try:
                if connection is None:
                    connection = http.client.HTTPConnection("127.0.0.1", self._daemon.http_port, timeout=30)
                    connection.connect()
            except ConnectionRefusedError:
                connection = None
                self.http_refused.add(1, v)
                time.sleep(self._http_pause)
                continue
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = None
                self.http_unknown.add(1, v)
            else:
                (self.http_ok if response.status == 200 else self.http_refused).add(1, v)
            time.sleep(self._http_pause)
        if connection is not None:
            connection.close()


def totals(daemon: Daemon, pk: str) -> dict:
    answer = daemon.get(f"/totals?pk={quote(pk)}&metrics={quote(json.dumps(['hits', 'v']))}&periods=%5B%22day%22%5D")
    return answer["day"]["_"]


def stored_totals(store_url: str, pk: str) -> dict:
    """What the store holds for ``pk`` today, read without a daemon."""
    Whale.configure(store_url)
    return Whale.totals(pk, metrics=["hits", "v"], periods=["day"])["day"]["_"]


def drained(daemon: Daemon):
    """The daemon's /stats once everything it took in is written, else None."""
    stats = daemon.get("/stats")
    if stats["events_flushed"] == stats["events_accepted"] and not stats["backlog_events"]:
        return stats
    return None


def outage_seconds(failure: str) -> float:
    return float(os.environ.get("HAILWHALE_OUTAGE_SECONDS", OUTAGE_SECONDS[failure]))


@pytest.fixture
def own_valkey(tmp_path):
    """A Valkey server of this test's own, persisting every write before answering, so it can be killed."""
    server = testing.start_valkey(
        port=testing.free_port(), data_dir=tmp_path / "valkey", persist=True, appendonly="yes", appendfsync="always"
    )
    yield server
    if server.is_running():
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("failure", ["killed", "hung"])
def test_store_outage_under_load_counts_every_event_once(tmp_path, own_valkey, failure):
    """
    Under steady UDP and HTTP load the store goes away (killed, then restarted on its data;
    or hung with SIGSTOP, then resumed): meanwhile /stats says the store is unreachable and
    shows the backlog, /health answers 503, the pending keys stay few; afterwards every event taken in is counted
    exactly once.
    """
    url = testing.valkey_url(own_valkey)
    pid = redis.Redis.from_url(url).info("server")["process_id"]
    daemon = Daemon(tmp_path, "--redis", url, "--store-timeout", "1", "--flush-interval", "0.5")
    samples = []
    try:
        with Load(daemon, "outage") as load:
            time.sleep(3)
            if failure == "killed":
                own_valkey.terminate()
            else:
                os.kill(pid, signal.SIGSTOP)
            ends = time.monotonic() + outage_seconds(failure)
            while time.monotonic() < ends:
                samples.append({**daemon.get("/stats"), "rss_kib": daemon.memory_kib()[0], "health": daemon.health()})
                time.sleep(1)
            if failure == "killed":
                own_valkey.start()
            else:
                os.kill(pid, signal.SIGCONT)
            time.sleep(3)
        stats = wait_for(lambda: drained(daemon), 60, "the backlog to be written")
        health_after = daemon.health()
        counted = [totals(daemon, "outage-udp"), totals(daemon, "outage-http")]
        peak_kib = daemon.memory_kib()[1]
    finally:
        daemon.kill()

    late = samples[len(samples) // 2 :]
    print(
        f"\n{failure} store, {outage_seconds(failure):.0f} s: sent UDP {load.udp.events}, HTTP OK "
        f"{load.http_ok.events} (refused {load.http_refused.events}, unknown {load.http_unknown.events}); "
        f"taken in {stats['events_accepted']}, counted {sum(c['hits'] for c in counted):.0f}; most backlog "
        f"{max(s['backlog_events'] for s in samples)} + pending {max(s['pending_events'] for s in samples)} "
        f"events in at most {max(s['pending_keys'] for s in samples)} keys; RSS during the outage "
        f"{min(s['rss_kib'] for s in samples) // 1024}-{max(s['rss_kib'] for s in samples) // 1024} MiB, "
        f"peak {peak_kib // 1024} MiB; failed flushes {stats['flushes_failed']}"
    )
    assert {"down": True, "backlog": True, "health": True} == {
        "down": all(s["store_reachable"] is False and s["store_unreachable_since"] for s in late),
        "backlog": all(s["backlog_events"] > 0 for s in late),
        "health": all((s["health"][0], s["health"][1]["reason"]) == (503, "store_unreachable") for s in late),
    }
    assert (200, {"status": "ok"}) == health_after
    assert max(s["pending_keys"] for s in samples) <= 6
    assert (0, 0) == (load.http_refused.events, load.http_unknown.events)
    assert load.udp.events + load.http_ok.events == stats["events_accepted"]
    assert [{"hits": load.udp.events, "v": load.udp.v}, {"hits": load.http_ok.events, "v": load.http_ok.v}] == counted
    assert (True, None) == (stats["store_reachable"], stats["store_unreachable_since"])


@pytest.mark.slow
def test_sigterm_under_load_flushes_everything_taken_in(tmp_path, store_url):
    """
    SIGTERM under UDP and HTTP load: the daemon stops taking events in, writes everything it
    took in, logs how many, and exits 0; a daemon started again on the store adds to that.
    """
    daemon = Daemon(tmp_path, "--redis", store_url)
    try:
        with Load(daemon, "sigterm") as load:
            time.sleep(3)
            status = daemon.stop()
            time.sleep(0.5)
    finally:
        daemon.kill()
    accepted, written, unwritten = daemon.stopped_figures()
    before = [stored_totals(store_url, "sigterm-udp"), stored_totals(store_url, "sigterm-http")]

    again = Daemon(tmp_path, "--redis", store_url)
    try:
        again.send_udp(b'{"pk":"sigterm-udp","metrics":{"v":1}}\n{"pk":"sigterm-udp","metrics":{"v":2}}')
        wait_for(lambda: again.get("/stats")["lines_ok"] == 2, 10, "the daemon to read the datagram")
        restarted_status = again.stop()
    finally:
        again.kill()
    after = stored_totals(store_url, "sigterm-udp")

    counted = sum(total["hits"] for total in before)
    print(
        f"\nSIGTERM under load: sent UDP {load.udp.events}, HTTP OK {load.http_ok.events} (refused "
        f"{load.http_refused.events}, unknown {load.http_unknown.events}); the daemon took in {accepted}, wrote "
        f"{written}, left {unwritten}; counted {counted:.0f}; after a restart and 2 more: {after['hits']:.0f}"
    )
    # twistd shuts down cleanly, then re-raises the signal so that the exit status tells it came
    assert (-signal.SIGTERM, -signal.SIGTERM, accepted, 0) == (status, restarted_status, written, unwritten)
    assert accepted == counted
    assert load.http_ok.events <= before[1]["hits"] <= load.http_ok.events + load.http_unknown.events
    assert load.udp.events >= before[0]["hits"]
    assert {"hits": before[0]["hits"] + 2, "v": before[0]["v"] + 3} == after


def test_a_reply_lost_after_the_write_is_not_counted_twice(tmp_path, valkey_server, store_url):
    """
    The connection to the store is cut after the store applied a flush but before the
    daemon saw the reply, five times over: the daemon retries each batch, the store's
    batch tokens skip what it already applied, and every event is counted once.
    """
    # only the flush's apply calls are cut (a fold or a query is a script call too, and repeats nothing)
    apply_sha = hashlib.sha1(store_client.lua("apply").encode("utf-8")).hexdigest().encode("ascii")
    proxy = CuttingProxy(valkey_server.port, marker=b"EVALSHA\r\n$40\r\n" + apply_sha)
    daemon = Daemon(tmp_path, "--redis", f"redis://127.0.0.1:{proxy.port}/0", "--flush-interval", "0.2")
    sent = Tally()
    try:
        for round_ in range(5):
            proxy.cut_next_write()
            values = range(round_ * 100 + 1, round_ * 100 + 101)
            daemon.send_udp(
                b"\n".join(b'{"pk":"cut","dimensions":{"round":%d},"metrics":{"v":%d}}' % (round_, v) for v in values)
            )
            sent.add(len(values), sum(values))
            wait_for(
                lambda round_=round_: proxy.cuts == round_ + 1 and drained(daemon), 30, "the cut batch to be written"
            )
        stats = daemon.get("/stats")
        counted = totals(daemon, "cut")
    finally:
        daemon.kill()
        proxy.close()

    print(
        f"\nlost replies: {proxy.cuts} cuts, {stats['writes_repeated']} script calls found already applied, "
        f"{stats['flushes_failed']} failed flushes; sent {sent.events}, counted {counted['hits']:.0f}"
    )
    assert (5, True) == (proxy.cuts, stats["writes_repeated"] >= 5)
    assert {"hits": sent.events, "v": sent.v} == counted


def flood(daemon: Daemon, lines, per_datagram: int = 1000, in_flight: int = 20) -> int:
    """
    Send ``lines`` in datagrams of ``per_datagram``, never more than ``in_flight`` datagrams
    ahead of what the daemon has read, so the kernel drops none; the datagrams sent.
    """
    read_before = daemon.get("/stats")["datagrams"]
    sent = 0
    batch: list[bytes] = []

    def read() -> int:
        return daemon.get("/stats")["datagrams"] - read_before

    for line in lines:
        batch.append(line)
        if len(batch) == per_datagram:
            while sent - read() >= in_flight:
                time.sleep(0.01)
            daemon.send_udp(b"\n".join(batch))
            sent, batch = sent + 1, []
    if batch:
        daemon.send_udp(b"\n".join(batch))
        sent += 1
    wait_for(lambda: read() == sent, 60, "the daemon to read every datagram")
    return sent


@pytest.mark.slow
def test_a_million_invented_dimension_values_stay_bounded(tmp_path, store_url, raw):
    """
    One sender invents 1,000,000 values of one dimension: the first 10,000 (the default
    --max-children) are kept, the rest are counted under ``_other``; no sorted set or
    children set of the pk in the store grows past 10,001 members, the guard remembers
    10,001 names, and every event is still counted.
    """
    values = 1_000_000
    memory_before = raw.info("memory")["used_memory"]
    daemon = Daemon(tmp_path, "--redis", store_url)
    try:
        flood(daemon, (b'{"pk":"card","dimensions":{"user":"u%d"}}' % i for i in range(values)))
        stats = wait_for(lambda: drained(daemon), 60, "everything to be written")
        root = totals(daemon, "card")
        other = daemon.get(
            "/totals?pk=card&dimensions=%5B%22user%22%2C%22_other%22%5D&metrics=hits&periods=%5B%22day%22%5D"
        )["day"]['["user", "_other"]']
        rss_kib, peak_kib = daemon.memory_kib()
    finally:
        daemon.kill()
    largest = {}
    for key in raw.scan_iter("hw:{card}:*", count=1000):
        kind = raw.type(key)
        if kind in ("zset", "set"):
            largest[kind] = max(largest.get(kind, 0), raw.zcard(key) if kind == "zset" else raw.scard(key))
    memory_after = raw.info("memory")["used_memory"]

    print(
        f"\n{values} invented values: {stats['lines_ok']} taken in, {stats['dimension_names_folded']} folded, "
        f"{stats['dimension_names_tracked']} names remembered; largest sorted set {largest['zset']}, children set "
        f"{largest['set']}; store memory grew {(memory_after - memory_before) / 2**20:.1f} MiB; daemon RSS "
        f"{rss_kib // 1024} MiB, peak {peak_kib // 1024} MiB"
    )
    assert (values, {"max_children": values - 10_000}, 10_001) == (
        stats["lines_ok"],
        stats["dimension_names_folded"],
        stats["dimension_names_tracked"],
    )
    assert {"zset": 10_001, "set": 10_001} == largest
    assert ({"hits": values, "v": 0.0}, values - 10_000) == (root, other["hits"])


@pytest.mark.slow
def test_a_flood_the_store_cannot_take_is_shed_by_counting(tmp_path, own_valkey):
    """
    While the store hangs, two waves of 25,000 distinct keys each meet --max-pending-keys
    5,000: the first fills the accumulator and is swapped out as the batch waiting for the
    store, the second fills the accumulator again; nothing more is held, every other
    event is dropped and counted, and once the store is back what was kept is counted.
    """
    wave, bound = 25_000, 5_000
    url = testing.valkey_url(own_valkey)
    pid = redis.Redis.from_url(url).info("server")["process_id"]
    daemon = Daemon(
        tmp_path, "--redis", url, "--store-timeout", "1", "--flush-interval", "0.5", "--max-pending-keys", str(bound)
    )
    try:
        os.kill(pid, signal.SIGSTOP)
        try:
            flood(daemon, (b'{"pk":["flood","a%d"]}' % i for i in range(wave)))
            wait_for(lambda: daemon.get("/stats")["backlog_events"], 10, "a flush to take the first wave")
            flood(daemon, (b'{"pk":["flood","b%d"]}' % i for i in range(wave)))
            held = daemon.get("/stats")
            rss_kib = daemon.memory_kib()[0]
        finally:
            os.kill(pid, signal.SIGCONT)
        stats = wait_for(lambda: drained(daemon), 60, "the kept events to be written")
        counted = totals(daemon, "flood")
    finally:
        daemon.kill()

    dropped = held["events_dropped"]["too_many_pending_keys"]
    print(
        f"\nflood of {2 * wave} keys against a hung store, bound {bound}: held {held['pending_keys']} keys + a "
        f"batch of {held['backlog_events']} events waiting, dropped {dropped}; RSS {rss_kib // 1024} MiB; counted "
        f"{counted['hits']:.0f} of {stats['events_accepted']} taken in"
    )
    assert (bound, bound, 2 * wave - 2 * bound) == (held["pending_keys"], held["backlog_events"], dropped)
    assert (2 * bound, 2 * bound) == (stats["events_accepted"], counted["hits"])
