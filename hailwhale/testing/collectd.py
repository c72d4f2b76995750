"""Builders of collectd network packets, part by part, plain, signed or encrypted."""

import hashlib
import struct

from hailwhale.formats.collectd import aes256_ofb, signature


# hailwhale.formats.collectd names the part and value types
def collectd_part(kind: int, body: bytes) -> bytes:
    return struct.pack(">HH", kind, 4 + len(body)) + body


def collectd_string(kind: int, text: str) -> bytes:
    return collectd_part(kind, text.encode() + b"\0")


def collectd_number(kind: int, value: int) -> bytes:
    return collectd_part(kind, struct.pack(">Q", value))


def collectd_values(*values: tuple[int, int | float]) -> bytes:
    """A VALUES part: (data-source type, value) pairs, GAUGE little-endian, the others big-endian."""
    encoded = b"".join(
        struct.pack("<d", value) if kind == 1 else struct.pack(">q" if kind == 2 else ">Q", value)
        for kind, value in values
    )
    return collectd_part(6, struct.pack(">H", len(values)) + bytes(kind for kind, _ in values) + encoded)


def collectd_value_list(
    host: str, plugin: str, type_: str, values, at: float, plugin_instance: str = "", type_instance: str = ""
) -> bytes:
    """Every part of one value list (nothing carried over), with a TIME_HR time."""
    return (
        collectd_string(0, host)
        + collectd_number(8, round(at * 2**30))
        + collectd_string(2, plugin)
        + collectd_string(3, plugin_instance)
        + collectd_string(4, type_)
        + collectd_string(5, type_instance)
        + collectd_values(*values)
    )


def collectd_signed(payload: bytes, user: bytes, password: bytes) -> bytes:
    """``payload`` behind a SIGN_SHA256 part, as collectd's Sign level sends it."""
    return collectd_part(0x0200, signature(user, password, payload) + user) + payload


def collectd_encrypted(payload: bytes, user: bytes, password: bytes, iv: bytes = bytes(range(16))) -> bytes:
    """``payload`` in an ENCR_AES256 part, as collectd's Encrypt level sends it."""
    secret = aes256_ofb(password, iv, hashlib.sha1(payload).digest() + payload)
    return collectd_part(0x0210, struct.pack(">H", len(user)) + user + iv + secret)
