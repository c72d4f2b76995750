"""
The collectd binary network protocol: one datagram in, its value lists out.

A packet is a sequence of parts (``uint16 type, uint16 length`` big-endian, the length
counting the 4-byte header).  Host, time, interval, plugin, plugin instance, type and type
instance carry over from one VALUES part to the next within a packet (or within a signed
or encrypted payload).  Security follows collectd's network plugin: a SIGN_SHA256 part
signs everything after it with HMAC-SHA-256 keyed by the user's password; an ENCR_AES256
part holds ``SHA-1(payload) || payload`` under AES-256-OFB keyed by SHA-256(password).

Unlike collectd, which skips a part it cannot use and dispatches the rest, a packet here is
taken whole or not at all: any malformed, unsigned (at level Sign), unencrypted (at level
Encrypt), forged or undecryptable part rejects the packet with a :class:`PacketError`
naming the reason.  Notifications (MESSAGE, SEVERITY) are checked and counted, not kept.
"""

import enum
import hashlib
import hmac
import struct
from collections.abc import Mapping

import attrs
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # cryptography >= 48 moved OFB here (and 49 removes the old name)
    from cryptography.hazmat.decrepit.ciphers.modes import OFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import OFB

HOST = 0x0000
TIME = 0x0001
PLUGIN = 0x0002
PLUGIN_INSTANCE = 0x0003
TYPE = 0x0004
TYPE_INSTANCE = 0x0005
VALUES = 0x0006
INTERVAL = 0x0007
TIME_HR = 0x0008
INTERVAL_HR = 0x0009
MESSAGE = 0x0100
SEVERITY = 0x0101
SIGN_SHA256 = 0x0200
ENCR_AES256 = 0x0210

COUNTER = 0
GAUGE = 1
DERIVE = 2
ABSOLUTE = 3

HR_UNITS_PER_SECOND = 1 << 30  # cdtime_t: 2^-30 s
MAX_NAME_BYTES = 127  # DATA_MAX_NAME_LEN (128) less the NUL
MAX_MESSAGE_BYTES = 255  # NOTIF_MAX_MSG_LEN (256) less the NUL
SIGNATURE_HEADER = 36  # type, length, HMAC-SHA-256
ENCRYPTION_HEADER = 42  # type, length, username length, IV, SHA-1

_HEADER = struct.Struct(">HH")
_COUNT = struct.Struct(">H")
_UNSIGNED = struct.Struct(">Q")
_SIGNED = struct.Struct(">q")
_DOUBLE = struct.Struct("<d")  # collectd's "network" double is x86 byte order
_STRING_FIELDS = {
    HOST: "host",
    PLUGIN: "plugin",
    PLUGIN_INSTANCE: "plugin_instance",
    TYPE: "type",
    TYPE_INSTANCE: "type_instance",
}


class SecurityLevel(enum.IntEnum):
    """What a packet must prove; a payload's protection must be at least the level."""

    NONE = 0
    SIGN = 1
    ENCRYPT = 2

    def __str__(self) -> str:
        return self.name.title()  # as collectd's configuration spells it


_SIGNED_PAYLOAD = SecurityLevel.SIGN
_ENCRYPTED_PAYLOAD = SecurityLevel.ENCRYPT


@attrs.frozen
class Security:
    """
    The level packets must meet, and the users (name -> password, as bytes) of the auth
    file; ``users`` is None without an auth file, in which case (at level None, as in
    collectd) a signed packet is taken unchecked and an encrypted one cannot be read.
    """

    level: SecurityLevel = SecurityLevel.NONE
    users: Mapping[bytes, bytes] | None = None


class PacketError(ValueError):
    """A packet that is rejected whole; ``reason`` is a short code for self-stats."""

    def __init__(self, reason: str, message: str):
        super().__init__(f"{reason}: {message}")
        self.reason = reason


@attrs.frozen
class ValueList:
    """One VALUES part with the identifier and times in force where it stood."""

    host: str
    plugin: str
    plugin_instance: str
    type: str
    type_instance: str
    time: float  # epoch seconds
    interval: float  # seconds; 0 if the packet gave none
    values: tuple[tuple[int, int | float], ...]  # (data-source type, value) in data-source order


@attrs.frozen
class Packet:
    value_lists: tuple[ValueList, ...]
    notifications: int


def parse_packet(data: bytes, security: Security = Security()) -> Packet:
    """The value lists of one datagram, or :class:`PacketError` if any part of it is bad."""
    found = _Found()
    _parse(data, security, SecurityLevel.NONE, found)
    if not found.value_lists and not found.notifications:
        raise PacketError("empty", "no value list and no notification")
    return Packet(tuple(found.value_lists), found.notifications)


@attrs.define
class _Found:
    value_lists: list[ValueList] = attrs.Factory(list)
    notifications: int = 0


def _parse(data: bytes, security: Security, protection: SecurityLevel, found: _Found) -> None:
    """Parse ``data`` (a packet or a verified payload) with fresh state, into ``found``."""
    state = {"host": "", "plugin": "", "plugin_instance": "", "type": "", "type_instance": ""}
    time = interval = 0.0
    offset, end = 0, len(data)
    while offset < end:
        if end - offset < 4:
            raise PacketError("truncated", f"{end - offset} stray bytes at the end")
        kind, length = _HEADER.unpack_from(data, offset)
        if length < 4 or length > end - offset:
            raise PacketError("bad_part_length", f"part 0x{kind:04x} claims {length} bytes, {end - offset} left")
        part_end = offset + length
        if kind == ENCR_AES256:
            _refuse_nesting(protection)
            _parse(_decrypt(data[offset:part_end], security.users), security, _ENCRYPTED_PAYLOAD, found)
        elif kind == SIGN_SHA256:
            _refuse_nesting(protection)
            if security.level == SecurityLevel.ENCRYPT:
                raise PacketError("unencrypted", "a signed packet, but the level is Encrypt")
            if length <= SIGNATURE_HEADER:
                raise PacketError("bad_signature_part", f"a signature part of {length} bytes")
            if security.users is not None or security.level == SecurityLevel.SIGN:
                _verify(data[offset:part_end], data[part_end:], security.users or {})
                _parse(data[part_end:], security, _SIGNED_PAYLOAD, found)
                return
            # level None and no auth file: collectd takes a signed packet unchecked
        elif protection < security.level:
            raise PacketError(
                "unsigned" if security.level == SecurityLevel.SIGN else "unencrypted",
                f"a plain part 0x{kind:04x}, but the level is {security.level}",
            )
        elif kind == VALUES:
            if not (time and state["host"] and state["plugin"] and state["type"]):
                raise PacketError("incomplete_value_list", "values without a time, host, plugin or type")
            found.value_lists.append(
                ValueList(time=time, interval=interval, values=_values(data, offset, length), **state)
            )
        elif kind in _STRING_FIELDS:
            state[_STRING_FIELDS[kind]] = _string(data, offset, length, MAX_NAME_BYTES)
        elif kind == TIME_HR:
            time = _number(data, offset, length) / HR_UNITS_PER_SECOND
        elif kind == TIME:
            time = float(_number(data, offset, length))
        elif kind == INTERVAL_HR:
            interval = _number(data, offset, length) / HR_UNITS_PER_SECOND
        elif kind == INTERVAL:
            interval = float(_number(data, offset, length))
        elif kind == MESSAGE:
            _string(data, offset, length, MAX_MESSAGE_BYTES)
            found.notifications += 1
        elif kind == SEVERITY:
            _number(data, offset, length)
        offset = part_end  # unknown part types are skipped


def _refuse_nesting(protection: SecurityLevel) -> None:
    if protection:
        raise PacketError("nested_security", "a signature or encryption part inside a protected payload")


def _string(data: bytes, offset: int, length: int, longest: int) -> str:
    raw = data[offset + 4 : offset + length]
    if not raw or raw[-1] != 0:
        raise PacketError("bad_string", "a string part without its trailing NUL")
    if len(raw) - 1 > longest or 0 in raw[:-1]:
        raise PacketError("bad_string", f"a string part longer than {longest} bytes or holding a NUL")
    try:
        return raw[:-1].decode("utf-8")
    except UnicodeDecodeError:
        raise PacketError("bad_string", "a string part that is not UTF-8") from None


def _number(data: bytes, offset: int, length: int) -> int:
    if length != 12:
        raise PacketError("bad_number", f"a number part of {length} bytes (not 12)")
    return _UNSIGNED.unpack_from(data, offset + 4)[0]


def _values(data: bytes, offset: int, length: int) -> tuple[tuple[int, int | float], ...]:
    count = _COUNT.unpack_from(data, offset + 4)[0] if length >= 6 else 0
    if count == 0 or length != 6 + 9 * count:
        raise PacketError("bad_values", f"a values part of {length} bytes for {count} values")
    codes = data[offset + 6 : offset + 6 + count]
    at = offset + 6 + count
    values = []
    for code in codes:
        if code == GAUGE:
            value = _DOUBLE.unpack_from(data, at)[0]
        elif code == DERIVE:
            value = _SIGNED.unpack_from(data, at)[0]
        elif code == COUNTER or code == ABSOLUTE:
            value = _UNSIGNED.unpack_from(data, at)[0]
        else:
            raise PacketError("bad_values", f"unknown data-source type {code}")
        values.append((code, value))
        at += 8
    return tuple(values)


def _password(users: Mapping[bytes, bytes] | None, username: bytes) -> bytes:
    if users is None:
        raise PacketError("no_auth_file", "an encrypted packet, but there is no auth file to decrypt it")
    password = users.get(username)
    if password is None:
        raise PacketError("unknown_user", f"user {username[:64]!r} is not in the auth file")
    return password


def signature(username: bytes, password: bytes, payload: bytes) -> bytes:
    """The HMAC-SHA-256 a SIGN_SHA256 part carries for ``payload``."""
    return hmac.digest(password, username + payload, "sha256")


def _verify(part: bytes, payload: bytes, users: Mapping[bytes, bytes]) -> None:
    username = part[SIGNATURE_HEADER:]
    expected = signature(username, _password(users, username), payload)
    if not hmac.compare_digest(expected, part[4:SIGNATURE_HEADER]):
        raise PacketError("bad_signature", f"the signature of user {username[:64]!r} does not match")


def aes256_ofb(password: bytes, iv: bytes, data: bytes) -> bytes:
    """AES-256-OFB with the key collectd derives (SHA-256 of the password); its own inverse."""
    cipher = Cipher(algorithms.AES(hashlib.sha256(password).digest()), OFB(iv)).decryptor()
    return cipher.update(data) + cipher.finalize()


def _decrypt(part: bytes, users: Mapping[bytes, bytes] | None) -> bytes:
    length = len(part)
    username_length = _COUNT.unpack_from(part, 4)[0] if length >= 6 else 0
    if length <= ENCRYPTION_HEADER or not 0 < username_length <= length - ENCRYPTION_HEADER - 1:
        raise PacketError(
            "bad_encryption_part", f"an encryption part of {length} bytes, user name of {username_length}"
        )
    username = part[6 : 6 + username_length]
    iv = part[6 + username_length : 22 + username_length]
    plain = aes256_ofb(_password(users, username), iv, part[22 + username_length :])
    checksum, payload = plain[:20], plain[20:]
    if not hmac.compare_digest(checksum, hashlib.sha1(payload).digest()):
        raise PacketError("bad_checksum", f"the payload of user {username[:64]!r} does not decrypt (checksum)")
    return payload


def parse_auth_file(text: bytes) -> dict[bytes, bytes]:
    """
    The users of a collectd AuthFile: ``user: password`` lines, read as collectd reads them
    (the user name from the first non-blank to the first colon, the password from the next
    non-blank to the end of the line; ``#`` comments and lines without a password are
    skipped; the first line for a user wins).
    """
    users: dict[bytes, bytes] = {}
    for line in text.splitlines():
        line = line.lstrip()
        if not line or line.startswith(b"#") or b":" not in line:
            continue
        user, password = line.split(b":", 1)
        password = password.lstrip()
        if password:
            users.setdefault(user, password)
    return users
