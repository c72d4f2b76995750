"""
The collectd receiver end to end, without sockets: datagram -> parse and verify -> events
-> ingest -> accumulator, with the self-stats it keeps.
"""

import os
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.logger import capturedLogs

from hailwhale.aggregate.accumulator import Accumulator
from hailwhale.aggregate.cardinality import Cardinality
from hailwhale.aggregate.ingest import Ingest
from hailwhale.aggregate.selfstats import SelfStats
from hailwhale.formats import typesdb
from hailwhale.formats.collectd import ABSOLUTE, COUNTER, DERIVE, GAUGE, SecurityLevel, parse_packet
from hailwhale.formats.collectd_events import ValueListEvents
from hailwhale.formats.cumulative import Cumulative
from hailwhale.model.fields import Limits
from hailwhale.model.schema import parse_schema
from hailwhale.receivers.collectd import AuthFile, CollectdReceiver
from hailwhale.testing.collectd import (
    collectd_encrypted,
    collectd_number,
    collectd_signed,
    collectd_string,
    collectd_value_list,
)
from tests.test_collectd import A, B, C, D

NOW = 1700000030.0
ADDR = ("127.0.0.1", 40000)


class Rig:
    """A receiver wired as makeService wires it, on a Clock."""

    def __init__(
        self,
        level=SecurityLevel.NONE,
        auth=None,
        limits=Limits(),
        max_series=1000,
        max_keys=1000,
        types=typesdb.BUILTIN,
    ):
        self.clock = task.Clock()
        self.clock.advance(NOW)
        self.stats = SelfStats()
        self.accumulator = Accumulator(60, max_keys)
        limits = limits.bounded_in_past(parse_schema("1m:2d,1h:35d,1d:3y").longest_retention())
        ingest = Ingest(
            self.accumulator, self.stats, Cardinality(1000, 100_000), limits, self.clock.seconds, lambda line, why: None
        )
        self.cumulative = Cumulative(max_series, self.stats.collectd.cumulative)
        to_events = ValueListEvents(types, limits, self.cumulative, self.stats.collectd.values_skipped)
        self.receiver = CollectdReceiver(ingest, to_events, level, auth, self.stats.collectd, self.clock.seconds)

    def send(self, *datagrams: bytes) -> "Rig":
        for datagram in datagrams:
            self.receiver.datagramReceived(datagram, ADDR)
        return self

    def totals(self) -> dict:
        """What was counted: (pk, dimension paths) -> metrics, over every pending bucket."""
        batch = self.accumulator.swap()
        found: dict = {}
        for (pk, dimensions, bucket), metrics in batch.entries.items() if batch else []:
            into = found.setdefault((pk, tuple(sorted(dimensions))), Counter())
            into.update(metrics)
            into.update({name: value for name, (_, value) in batch.levels.get((pk, dimensions, bucket), {}).items()})
        return {key: dict(metrics) for key, metrics in found.items()}

    @property
    def collectd(self) -> dict:
        return self.stats.collectd.snapshot()


def interface(at: float, rx: int, tx: int, instance: str = "eth0") -> bytes:
    return collectd_value_list("db1", "interface", "if_octets", [(DERIVE, rx), (DERIVE, tx)], at, instance)


def test_gauges_are_levels_named_by_data_source():
    """Packet A: pk collectd/host/plugin, the type as dimension, each GAUGE as `<name>.gauge`, hits 1."""
    assert {
        (("collectd", "web01", "load"), (("load",),)): {
            "hits": 1,
            "shortterm.gauge": 0.25,
            "midterm.gauge": 0.5,
            "longterm.gauge": 0.75,
        }
    } == Rig().send(A).totals()


def test_derives_count_their_increase_from_the_second_sample():
    """The first sample of a DERIVE series is a base (hits only); the next gives the increase per data source."""
    rig = Rig().send(interface(NOW - 20, 1000, 50), interface(NOW - 10, 1600, 80))

    assert (
        {(("collectd", "db1", "interface"), (("if_octets", "eth0"),)): {"hits": 2, "rx": 600, "tx": 30}},
        {"first_sample": 2},
    ) == (rig.totals(), rig.collectd["cumulative"])


def test_dimension_path_is_type_then_instances():
    """Type, type instance, plugin instance, empty ones left out: cpu user of core 0 is ["cpu", "user", "0"]."""
    packet = collectd_value_list("h", "cpu", "cpu", [(ABSOLUTE, 3)], NOW, plugin_instance="0", type_instance="user")

    assert {(("collectd", "h", "cpu"), (("cpu", "user", "0"),)): {"hits": 1, "value": 3}} == Rig().send(packet).totals()


def test_several_value_lists_per_packet_with_carried_state():
    """Packet B's two value lists (if_errors carries host, time and plugin over) both count."""
    rig = Rig()

    assert (
        {
            (("collectd", "db1", "interface"), (("if_errors", "eth0"),)): {"hits": 1},
            (("collectd", "db1", "interface"), (("if_octets", "eth0"),)): {"hits": 1},
        },
        2,
        1,
    ) == (rig.send(B).totals(), rig.collectd["value_lists"], rig.collectd["packets_ok"])


def test_values_that_cannot_count_are_skipped_and_counted():
    """A NaN gauge (collectd's 'unknown') and a value beyond ±1e18 are left out, counted; the rest counts."""
    packet = collectd_value_list("h", "p", "t", [(GAUGE, float("nan")), (ABSOLUTE, 2**63), (GAUGE, 2.0)], NOW)
    rig = Rig().send(packet)

    assert (
        {(("collectd", "h", "p"), (("t",),)): {"hits": 1, "value2.gauge": 2.0}},
        {"not_finite": 1, "out_of_range": 1},
    ) == (rig.totals(), rig.collectd["values_skipped"])


def test_data_sources_named_like_hits_or_a_kind_are_renamed():
    """mysql_qcache's `hits` is stored as `ds_hits` (`hits` counts value lists); `gauge` or `unique` names of
    other types get `ds_` too, so they still add up."""
    types = {"mysql_qcache": ("hits", "inserts"), "odd": ("gauge", "unique")}
    rig = Rig(types=types).send(
        *(
            collectd_value_list("h", "mysql", "mysql_qcache", [(COUNTER, n), (COUNTER, n)], t)
            for n, t in ((10, NOW - 1), (15, NOW))
        ),
        collectd_value_list("h", "mysql", "odd", [(ABSOLUTE, 1), (ABSOLUTE, 2)], NOW),
    )

    assert {
        (("collectd", "h", "mysql"), (("mysql_qcache",),)): {"hits": 2, "ds_hits": 5, "inserts": 5},
        (("collectd", "h", "mysql"), (("odd",),)): {"hits": 1, "ds_gauge": 1, "ds_unique": 2},
    } == rig.totals()


def test_gauges_are_levels_in_the_event():
    """GAUGE values travel as levels (the last one wins in a bucket), increases and ABSOLUTEs as sums."""
    to_events = ValueListEvents(typesdb.BUILTIN, Limits(), Cumulative(10, Counter()), Counter())

    events = to_events.events(
        parse_packet(collectd_value_list("h", "p", "t", [(GAUGE, 1.5), (ABSOLUTE, 2)], NOW)).value_lists, NOW
    )

    assert [({"hits": 1, "value1": 2}, {"value0.gauge": 1.5})] == [(event.metrics, event.levels) for event in events]


def test_a_gauge_keeps_its_last_value_in_a_bucket():
    """Two load samples in one minute leave the later one."""
    rig = Rig().send(
        collectd_value_list("h", "load", "load", [(GAUGE, 1.0)] * 3, NOW - 5),
        collectd_value_list("h", "load", "load", [(GAUGE, 2.0)] * 3, NOW),
    )

    assert {
        (("collectd", "h", "load"), (("load",),)): {
            "hits": 2,
            "shortterm.gauge": 2.0,
            "midterm.gauge": 2.0,
            "longterm.gauge": 2.0,
        }
    } == rig.totals()


def test_value_lists_beyond_limits_reject_the_packet():
    """A value list from the future, with too many values or too long a name rejects its packet, counted by reason."""
    rig = Rig(limits=Limits(max_metrics=4, max_name_length=20))
    rig.send(
        A + collectd_value_list("h", "p", "t", [(GAUGE, 1.0)], NOW + 2 * 86400),
        collectd_value_list("h", "p", "t", [(GAUGE, 1.0)] * 4, NOW),
        A + collectd_value_list("h" * 21, "p", "t", [(GAUGE, 1.0)], NOW),
    )

    assert ({}, {"too_new": 1, "too_many_metrics": 1, "too_long": 1}, 0) == (
        rig.totals(),
        rig.collectd["packets_bad"],
        rig.collectd["value_lists"],
    )


def test_a_rejected_packet_leaves_no_counter_state():
    """Value lists before a bad one in the same packet do not become a counter base either."""
    rig = Rig().send(interface(NOW - 10, 1000, 50) + collectd_value_list("h", "p", "t", [(GAUGE, 1.0)], NOW + 9e5))

    assert (0, {}) == (len(rig.cumulative), rig.collectd["cumulative"])


def test_too_old_value_lists_reject_the_packet():
    """A value list older than the time window (by default, every retention) rejects its packet whole, counted."""
    rig = Rig().send(collectd_value_list("h", "p", "t", [(GAUGE, 1.0)], 1000.0) + interface(NOW, 1, 1))

    assert ({}, {"too_old": 1}, 0, 0) == (
        rig.totals(),
        rig.collectd["packets_bad"],
        rig.collectd["value_lists"],
        rig.collectd["packets_ok"],
    )


def test_notifications_are_counted():
    """Notifications are counted in the stats and make no event."""
    rig = Rig().send(collectd_number(0x0101, 1) + collectd_string(0x0100, "it broke"))

    assert ({}, 1, 1) == (rig.totals(), rig.collectd["notifications"], rig.collectd["packets_ok"])


def auth_file(tmp_path, text: str) -> AuthFile:
    path = tmp_path / "auth"
    path.write_text(text)
    return AuthFile(str(path))


def test_sign_level_takes_signed_and_encrypted_packets_only(tmp_path):
    """At level Sign, A is rejected as unsigned; C and D count."""
    rig = Rig(SecurityLevel.SIGN, auth_file(tmp_path, "alice: secret\n")).send(A, C, D)

    assert ({"unsigned": 1}, 2) == (rig.collectd["packets_bad"], rig.collectd["value_lists"])


def test_encrypt_level_takes_encrypted_packets_only(tmp_path):
    """At level Encrypt only D counts; a packet encrypted with another password is rejected."""
    wrong = collectd_encrypted(A, b"alice", b"guess")
    rig = Rig(SecurityLevel.ENCRYPT, auth_file(tmp_path, "alice: secret\n")).send(A, C, D, wrong)

    assert ({"unencrypted": 2, "bad_checksum": 1}, 1) == (rig.collectd["packets_bad"], rig.collectd["value_lists"])


def test_auth_file_is_read_again_when_it_changes(tmp_path):
    """A changed auth file is in force once checked; an unreadable one keeps the users last read."""
    auth = auth_file(tmp_path, "alice: secret\n")
    rig = Rig(SecurityLevel.SIGN, auth).send(C)
    path = tmp_path / "auth"
    path.write_text("alice: changed\n")
    os.utime(path, ns=(os.stat(path).st_mtime_ns + 10**9,) * 2)
    auth.current()
    rig.send(C, collectd_signed(A, b"alice", b"changed"))
    path.unlink()
    auth.current()
    rig.send(collectd_signed(A, b"alice", b"changed"))

    assert ({"bad_signature": 1}, 3) == (rig.collectd["packets_bad"], rig.collectd["value_lists"])


def test_packets_never_look_at_the_auth_file(tmp_path, monkeypatch):
    """Packets take the users last read; only the timer's check looks at the file (no system call per packet)."""
    auth = auth_file(tmp_path, "alice: secret\n")
    rig = Rig(SecurityLevel.SIGN, auth)
    path = tmp_path / "auth"
    path.write_text("bob: other\n")
    os.utime(path, ns=(os.stat(path).st_mtime_ns + 10**9,) * 2)
    looked, stat = [], os.stat
    monkeypatch.setattr(
        os,
        "stat",
        lambda name, *args, **kwargs: (
            (looked.append(name) if str(name) == str(path) else None) or stat(name, *args, **kwargs)
        ),
    )

    rig.send(*[collectd_signed(A, b"bob", b"other")] * 100)
    before_the_check = (len(looked), rig.collectd["value_lists"])
    auth.current()
    rig.send(collectd_signed(A, b"bob", b"other"))

    assert ((0, 0), 1, 1) == (before_the_check, len(looked), rig.collectd["value_lists"])


def test_rejections_are_logged_once_a_minute_per_reason():
    """A flood of bad packets logs one line per reason per minute (they are all counted)."""
    rig = Rig()
    with capturedLogs() as logged:
        rig.send(*[b"\0"] * 5, *[b""] * 5)
        rig.clock.advance(61)
        rig.send(b"\0")

    assert (3, {"truncated": 6, "empty": 5}) == (len(logged), rig.collectd["packets_bad"])


names = st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=6)
values = st.one_of(
    st.tuples(st.just(GAUGE), st.floats(-1e6, 1e6)),
    st.tuples(st.sampled_from([COUNTER, ABSOLUTE]), st.integers(0, 2**64 - 1)),
    st.tuples(st.just(DERIVE), st.integers(-(2**63), 2**63 - 1)),
)
value_lists = st.builds(
    collectd_value_list,
    names,
    names,
    names,
    st.lists(values, min_size=1, max_size=4),
    st.floats(NOW - 3600, NOW),
    names | st.just(""),
    names | st.just(""),
)


def values_parts(packet: bytes) -> int:
    """How many VALUES parts a plain packet's framing holds (walked independently of the parser)."""
    count = offset = 0
    while offset + 4 <= len(packet):
        kind, length = (
            int.from_bytes(packet[offset : offset + 2], "big"),
            int.from_bytes(packet[offset + 2 : offset + 4], "big"),
        )
        if length < 4:
            break
        count += kind == 6
        offset += length
    return count


@pytest.fixture(scope="module")
def alice(tmp_path_factory) -> AuthFile:
    path = tmp_path_factory.mktemp("auth") / "auth"
    path.write_text("alice: secret\n")
    return AuthFile(str(path))


@settings(max_examples=300)
@given(st.lists(value_lists, min_size=1, max_size=5), st.data())
def test_a_packet_counts_whole_or_not_at_all(alice, lists, data):
    """Whatever a packet became on the way, either every one of its value lists counts or none does."""
    packet = bytearray(b"".join(lists))
    for _ in range(data.draw(st.integers(0, 3))):
        index = data.draw(st.integers(0, len(packet) - 1))
        packet[index] = data.draw(st.integers(0, 255))
    encrypt = data.draw(st.booleans())
    rig = Rig(auth=alice, max_keys=10**6)

    rig.send(collectd_encrypted(bytes(packet), b"alice", b"secret") if encrypt else bytes(packet))

    ok, bad = rig.collectd["packets_ok"], sum(rig.collectd["packets_bad"].values())
    counted, dropped = rig.accumulator.pending_events, sum(rig.stats.events_dropped.values())
    assert (1, counted, values_parts(bytes(packet)) if ok else 0, True) == (
        ok + bad,
        rig.collectd["value_lists"],
        counted + dropped,
        counted == 0 or dropped == 0,
    )
    if bad:
        assert 0 == len(rig.cumulative)
