"""
The one setting, ``HAILWHALE = {...}``, read and checked (pure: a dict in, settings or
error messages out; :mod:`hailwhale.contrib.django.checks` reports the messages at start).
"""

import urllib.parse
from collections.abc import Mapping

import attrs

from hailwhale.client import DEFAULT_URL
from hailwhale.web import access

BACKENDS = ("client", "memory", "null")
KEYS = {
    "URL": "the daemon's URL, as this server reaches it (default http://127.0.0.1:8085)",
    "PUBLIC_URL": "the daemon's URL as browsers reach it, for pixels, beacons and graphs (default: URL)",
    "UDP": "host:port of the daemon's UDP input (default: URL's host, port 8125)",
    "READ_TOKEN": "the daemon's read token: queries, and the grants graph tags carry (never sent to pages)",
    "WRITE_TOKEN": "the daemon's write token, for count_now",
    "TIMEOUT": "seconds per HTTP request (default 10)",
    "BACKEND": "client (the daemon), memory (tests: remembers what was counted) or null (counts nothing)",
    "REQUEST_PK": "the pk the request middleware counts under (default django)",
    "MAX_DATAGRAM": "the largest UDP datagram a batch sends",
    "GRANT_SECONDS": "how long a graph tag's read grant lasts (default a day)",
}


@attrs.frozen
class Settings:
    url: str = DEFAULT_URL
    public_url: str = DEFAULT_URL
    udp: str | None = None
    read_token: str | None = None
    write_token: str | None = None
    timeout: float = 10.0
    backend: str = "client"
    request_pk: object = "django"
    max_datagram: int | None = None
    grant_seconds: float = 86400.0


def problems(value: object) -> list[str]:
    """What is wrong with a ``HAILWHALE`` setting (an empty list: nothing)."""
    if value is None:
        return []
    if not isinstance(value, Mapping):
        return [f"HAILWHALE must be a dict, not {type(value).__name__}"]
    found = [f"HAILWHALE has no key {key!r}; the keys are {', '.join(KEYS)}" for key in value if key not in KEYS]
    for key in ("URL", "PUBLIC_URL"):
        if key in value:
            parts = urllib.parse.urlsplit(str(value[key]))
            if parts.scheme not in ("http", "https") or not parts.hostname:
                found.append(f"HAILWHALE[{key!r}] = {value[key]!r} is not an http(s) URL")
    if "UDP" in value:
        host, _, port = str(value["UDP"]).rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            found.append(f"HAILWHALE['UDP'] = {value['UDP']!r} is not host:port")
    for key in ("READ_TOKEN", "WRITE_TOKEN"):
        if value.get(key) is not None:
            try:
                access.valid_token(str(value[key]))
            except ValueError as error:
                found.append(f"HAILWHALE[{key!r}]: {error}")
    for key in ("TIMEOUT", "GRANT_SECONDS", "MAX_DATAGRAM"):
        if key in value and (
            isinstance(value[key], bool) or not isinstance(value[key], (int, float)) or value[key] <= 0
        ):
            found.append(f"HAILWHALE[{key!r}] = {value[key]!r} is not a positive number")
    if "BACKEND" in value and value["BACKEND"] not in BACKENDS:
        found.append(f"HAILWHALE['BACKEND'] = {value['BACKEND']!r}: one of {', '.join(BACKENDS)}")
    return found


def read(value: object) -> Settings:
    """The settings of a valid ``HAILWHALE`` (None: the defaults); an invalid one raises ValueError."""
    found = problems(value)
    if found:
        raise ValueError("; ".join(found))
    given: Mapping = value or {}  # type: ignore[assignment]
    url = given.get("URL", DEFAULT_URL)
    return Settings(
        url=url,
        public_url=given.get("PUBLIC_URL", url),
        udp=given.get("UDP"),
        read_token=given.get("READ_TOKEN"),
        write_token=given.get("WRITE_TOKEN"),
        timeout=float(given.get("TIMEOUT", 10.0)),
        backend=given.get("BACKEND", "client"),
        request_pk=given.get("REQUEST_PK", "django"),
        max_datagram=given.get("MAX_DATAGRAM"),
        grant_seconds=float(given.get("GRANT_SECONDS", 86400.0)),
    )
