"""The collectd binary protocol: framing, values, carried-over state, security (protocols.md B.5 vectors)."""

import hashlib
import math
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from hailwhale.formats.collectd import (
    ABSOLUTE,
    COUNTER,
    DERIVE,
    GAUGE,
    HOST,
    INTERVAL,
    MESSAGE,
    PLUGIN,
    SEVERITY,
    TIME,
    TIME_HR,
    TYPE,
    Packet,
    PacketError,
    Security,
    SecurityLevel,
    ValueList,
    aes256_ofb,
    parse_auth_file,
    parse_packet,
    signature,
)
from hailwhale.testing.collectd import (
    collectd_encrypted,
    collectd_number,
    collectd_part,
    collectd_signed,
    collectd_string,
    collectd_value_list,
    collectd_values,
)

DATA = Path(__file__).parent / "data"
A = bytes.fromhex(
    "0000000a7765623031000008000c1954fc40000000000009000c0000000280000000000200096c6f616400000400096c6f6164000006"
    "00210003010101000000000000d03f000000000000e03f000000000000e83f"
)
B = bytes.fromhex(
    "00000008646231000001000c000000006553f1000007000c000000000000000a0002000e696e74657266616365000003000965746830"
    "000004000e69665f6f637465747300000600180002020200000000499602d2000000003ade68b10004000e69665f6572726f72730000"
    "0600180002020200000000000000000000000000000003"
)
C = bytes.fromhex("020000292d2bc7e08ed2a27e9104efd3eb632014410d15c413e7648985e723c79714708f616c696365") + A
D = bytes.fromhex(
    "021000840005616c696365000102030405060708090a0b0c0d0e0f23a28a4ad842f1be5992a137afd8e562bb72de59805ac9391c6255"
    "67c87e872f9002fa99508eea0af2e98bae4070aae2b4a4fc1f1ac25bc1cfb6461ac69dd42231e23be3ce59d6f29cf4ae5d11700c0020"
    "8ccf798d5912b1988be4f2ae72c068504c14948967062cd9"
)
ALICE = {b"alice": b"secret"}
LOAD = ValueList(
    host="web01",
    plugin="load",
    plugin_instance="",
    type="load",
    type_instance="",
    time=1700000000.0,
    interval=10.0,
    values=((GAUGE, 0.25), (GAUGE, 0.5), (GAUGE, 0.75)),
)


def outcome(packet: bytes, security: Security = Security()):
    """The value lists of ``packet``, or the reason it was rejected."""
    try:
        return parse_packet(packet, security).value_lists
    except PacketError as error:
        return error.reason


def test_packet_a_high_resolution_time_and_three_gauges():
    """Packet A: TIME_HR and INTERVAL_HR in 2^-30 s, three little-endian GAUGE values."""
    assert Packet(value_lists=(LOAD,), notifications=0) == parse_packet(A)


def test_packet_b_legacy_time_and_carried_over_state():
    """Packet B: second-resolution TIME; the second value list keeps host, time, plugin and instance."""
    common = dict(
        host="db1", plugin="interface", plugin_instance="eth0", type_instance="", time=1700000000.0, interval=10.0
    )

    assert (
        ValueList(type="if_octets", values=((DERIVE, 1234567890), (DERIVE, 987654321)), **common),
        ValueList(type="if_errors", values=((DERIVE, 0), (DERIVE, 3)), **common),
    ) == parse_packet(B).value_lists


def test_packets_c_and_d_carry_packet_a():
    """C (A signed by alice) and D (A encrypted for alice) give A's value list once verified."""
    assert ((LOAD,), (LOAD,)) == (outcome(C, Security(users=ALICE)), outcome(D, Security(users=ALICE)))


@pytest.mark.parametrize(
    "level, expected",
    [
        (SecurityLevel.NONE, (1, 2, 1, 1)),
        (SecurityLevel.SIGN, ("unsigned", "unsigned", 1, 1)),
        (SecurityLevel.ENCRYPT, ("unencrypted", "unencrypted", "unencrypted", 1)),
    ],
)
def test_security_levels(level, expected):
    """Sign drops A and B and keeps C and D; Encrypt keeps only D; None keeps all four (as collectd's parser)."""
    found = [outcome(packet, Security(level, ALICE)) for packet in (A, B, C, D)]

    assert expected == tuple(result if isinstance(result, str) else len(result) for result in found)


@pytest.mark.parametrize("packet", [C, D], ids=["C", "D"])
def test_any_flipped_bit_rejects_a_protected_packet(packet):
    """Flipping any one bit of C or D makes it rejected at level Sign: no forged packet gets through."""
    accepted = []
    for index in range(len(packet) * 8):
        forged = bytearray(packet)
        forged[index // 8] ^= 1 << index % 8
        if not isinstance(outcome(bytes(forged), Security(SecurityLevel.SIGN, ALICE)), str):
            accepted.append(index)

    assert [] == accepted


@pytest.mark.parametrize(
    "packet, users, reason",
    [
        (C[:4] + bytes(32) + C[36:], ALICE, "bad_signature"),
        (C, {b"alice": b"wrong"}, "bad_signature"),
        (C, {b"bob": b"secret"}, "unknown_user"),
        (D, {b"alice": b"wrong"}, "bad_checksum"),
        (D, {b"bob": b"secret"}, "unknown_user"),
        (D, None, "no_auth_file"),
    ],
    ids=["forged", "wrong password", "unknown signer", "wrong key", "unknown encrypter", "no auth file"],
)
def test_forged_or_undecryptable(packet, users, reason):
    """A forged signature, a wrong password, an unknown user or a missing auth file rejects the packet."""
    assert reason == outcome(packet, Security(SecurityLevel.NONE, users))


def test_signed_packet_without_auth_file_is_taken_unchecked_at_level_none():
    """As in collectd, at level None with no auth file a signed packet is read without checking it."""
    assert (LOAD,) == outcome(C[:4] + bytes(32) + C[36:])


def test_signed_level_needs_the_user():
    """At level Sign with no users known, a signed packet is rejected (never taken unchecked)."""
    assert "unknown_user" == outcome(C, Security(SecurityLevel.SIGN, None))


def test_upstream_vectors():
    """libcollectdclient's own vectors: verify_sha256, decrypt_aes256, parse_values and a TIME_HR."""
    decrypted = aes256_ofb(
        b"admin",
        bytes.fromhex("4cbe2a747c9f9dcfa0e66f0c2fa74875"),
        bytes.fromhex("8f023b0b15178f8428da1221a5f653e840f065db4aff032c22e5a3df"),
    )
    values = collectd_part(6, bytes.fromhex("000301020100000000000045400000000000007a69000000000000f87f"))
    (value_list,) = parse_packet(
        collectd_string(HOST, "h")
        + collectd_number(TIME_HR, 1546167635576736987)
        + collectd_string(PLUGIN, "p")
        + collectd_string(TYPE, "t")
        + values
    ).value_lists

    assert (
        "cda59a37b081c231242a6dbdfb44dbd7412af42983dea51196d2e93021aec545",
        (hashlib.sha1(b"collectd").digest(), b"collectd"),
        ((GAUGE, 42.0), (DERIVE, 31337)),
        True,
        1439980823.152453627,
    ) == (
        signature(b"admin", b"admin", b"collectd").hex(),
        (decrypted[:20], decrypted[20:]),
        value_list.values[:2],
        math.isnan(value_list.values[2][1]),
        value_list.time,
    )


@pytest.mark.parametrize("level", ["none", "sign", "encrypt"])
def test_real_collectd_packets(level):
    """Datagrams captured from collectd 5.12 (plain, signed, encrypted by alice/secret) all read the same."""
    security = Security(SecurityLevel[level.upper()], ALICE)
    first, second = (parse_packet((DATA / f"collectd_{level}_{n}.bin").read_bytes(), security) for n in (1, 2))
    plain = parse_packet((DATA / "collectd_none_1.bin").read_bytes())

    assert (first, 26, 28, {"hw-capture"}, {"load", "memory", "interface", "cpu"}, 1.0) == (
        plain,
        len(first.value_lists),
        len(second.value_lists),
        {vl.host for vl in first.value_lists + second.value_lists},
        {vl.plugin for vl in first.value_lists + second.value_lists},
        first.value_lists[0].interval,
    )


def test_every_value_type_and_unknown_parts():
    """COUNTER and ABSOLUTE are unsigned, DERIVE signed; unknown parts are skipped; legacy INTERVAL is seconds."""
    packet = (
        collectd_string(HOST, "h")
        + collectd_number(TIME, 1700000000)
        + collectd_number(INTERVAL, 10)
        + collectd_part(0x7777, b"whatever")
        + collectd_string(PLUGIN, "p")
        + collectd_string(TYPE, "t")
        + collectd_values((COUNTER, 2**64 - 1), (DERIVE, -5), (ABSOLUTE, 7), (GAUGE, -1.5))
    )

    (value_list,) = parse_packet(packet).value_lists

    assert (((COUNTER, 2**64 - 1), (DERIVE, -5), (ABSOLUTE, 7), (GAUGE, -1.5)), 10.0) == (
        value_list.values,
        value_list.interval,
    )


def test_notifications_are_counted_not_kept():
    """MESSAGE and SEVERITY parts are read and counted; they make no value list."""
    notification = collectd_number(SEVERITY, 2) + collectd_string(MESSAGE, "disk almost full")

    assert Packet(value_lists=(LOAD,), notifications=1) == parse_packet(A + notification)


def test_state_is_fresh_in_each_protected_payload():
    """A signed or encrypted payload starts with no host, time or type of its own."""
    bare_values = collectd_values((GAUGE, 1.0))

    assert ("incomplete_value_list", "incomplete_value_list") == (
        outcome(A + collectd_encrypted(bare_values, b"alice", b"secret"), Security(users=ALICE)),
        outcome(A[:-33] + collectd_signed(bare_values, b"alice", b"secret"), Security(users=ALICE)),
    )


def test_several_encrypted_parts_in_one_packet():
    """Encrypted parts may follow one another; each is a packet of its own."""
    packet = collectd_encrypted(A, b"alice", b"secret") + collectd_encrypted(B, b"alice", b"secret", bytes(16))

    assert 3 == len(outcome(packet, Security(SecurityLevel.ENCRYPT, ALICE)))


VALID_NAME = collectd_string(HOST, "h") + collectd_number(TIME_HR, 1 << 40) + collectd_string(PLUGIN, "p")


MALFORMED = [
    (b"", "empty"),
    (VALID_NAME, "empty"),
    (A + b"\0\0", "truncated"),
    (A[:-1], "bad_part_length"),
    (A[:2] + b"\x00\x03" + A[4:], "bad_part_length"),
    (collectd_part(HOST, b"web01"), "bad_string"),
    (collectd_part(HOST, b"we\0b01\0"), "bad_string"),
    (collectd_part(HOST, b"\xff\0"), "bad_string"),
    (collectd_string(HOST, "h" * 128), "bad_string"),
    (collectd_part(TIME_HR, bytes(7)), "bad_number"),
    (VALID_NAME + collectd_string(TYPE, "t") + collectd_part(6, b"\0\0"), "bad_values"),
    (VALID_NAME + collectd_string(TYPE, "t") + collectd_part(6, b"\0\1\1" + bytes(7)), "bad_values"),
    (VALID_NAME + collectd_string(TYPE, "t") + collectd_part(6, b"\0\1\4" + bytes(8)), "bad_values"),
    (VALID_NAME + collectd_values((GAUGE, 1.0)), "incomplete_value_list"),
    (
        collectd_string(HOST, "h")
        + collectd_string(PLUGIN, "p")
        + collectd_string(TYPE, "t")
        + collectd_values((GAUGE, 1.0)),
        "incomplete_value_list",
    ),
    (collectd_part(0x0200, bytes(32)), "bad_signature_part"),
    (collectd_part(0x0210, b"\0\5alice" + bytes(36)), "bad_encryption_part"),
    (collectd_part(0x0210, b"\0\0" + bytes(40)), "bad_encryption_part"),
    (collectd_encrypted(C, b"alice", b"secret"), "nested_security"),
]


@pytest.mark.parametrize("packet, reason", MALFORMED, ids=[f"{reason}-{i}" for i, (_, reason) in enumerate(MALFORMED)])
def test_malformed_packets(packet, reason):
    """Each kind of malformed packet is rejected whole, with its reason."""
    assert reason == outcome(packet, Security(users=ALICE))


def test_a_bad_part_after_good_ones_rejects_the_packet():
    """One bad value list rejects the packet, even after good ones: never half a packet."""
    assert "bad_values" == outcome(B + collectd_part(6, b"\x00\x01\x09" + bytes(8)))


@given(st.binary(max_size=300))
@example(b"\x02\x00\x00\x25" + bytes(33))
@example(b"\x02\x10\x00\x30\x00\x01a" + bytes(41))
def test_arbitrary_bytes_raise_only_packet_errors(data):
    """Whatever the bytes, parsing gives a packet or a PacketError, at every level."""
    for level in SecurityLevel:
        try:
            parse_packet(data, Security(level, ALICE))
        except PacketError:
            pass


@given(st.data())
def test_mutated_packets_raise_only_packet_errors(data):
    """Real packets with bytes changed, cut or inserted give a packet or a PacketError, never another error."""
    packet = bytearray(
        data.draw(
            st.sampled_from(
                [
                    A,
                    B,
                    C,
                    D,
                    (DATA / "collectd_encrypt_1.bin").read_bytes(),
                    (DATA / "collectd_none_2.bin").read_bytes(),
                ]
            )
        )
    )
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(packet)))
        action = data.draw(st.sampled_from(["set", "cut", "insert"]))
        if action == "set" and index < len(packet):
            packet[index] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del packet[index : index + data.draw(st.integers(1, 16))]
        else:
            packet[index:index] = data.draw(st.binary(min_size=1, max_size=16))
    for level in SecurityLevel:
        try:
            parse_packet(bytes(packet), Security(level, ALICE))
        except PacketError:
            pass


def test_auth_file_is_read_as_collectd_reads_it():
    """`user: password` lines; blanks before the user and the password dropped, comments skipped, first wins."""
    text = b"# users\n  alice: secret\nbob:pass word \r\n\ncarol:\ndave\nalice: other\n"

    assert {b"alice": b"secret", b"bob": b"pass word "} == parse_auth_file(text)


def test_value_lists_round_trip():
    """What the test builder writes is what the parser reads."""
    packet = collectd_value_list("h", "cpu", "cpu", [(DERIVE, 42)], 1700000000.5, "0", "user")

    assert (
        ValueList(
            host="h",
            plugin="cpu",
            plugin_instance="0",
            type="cpu",
            type_instance="user",
            time=1700000000.5,
            interval=0.0,
            values=((DERIVE, 42),),
        ),
    ) == parse_packet(packet).value_lists
