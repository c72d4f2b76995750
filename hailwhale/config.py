"""
Configuration: the ``twistd hailwhale`` options and the frozen :class:`Config` they make.

``postOptions`` validates and builds the Config; it does no IO.
"""

import attrs
from twisted.python import usage

from hailwhale import access
from hailwhale import schema as schema_module
from hailwhale.collectd import SecurityLevel
from hailwhale.fields import Limits
from hailwhale.schema import Schema


def _port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("a port is 0 to 65535")
    return value


_port.coerceDoc = "0 disables it."


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be more than 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be more than 0")
    return value


def _seconds(text: str) -> int:
    try:
        return schema_module.parse_duration(text)
    except schema_module.SchemaError as error:
        raise ValueError(str(error)) from None


_seconds.coerceDoc = "A duration: seconds, or 90s, 5m, 1h, 2d, 1w, 1mo, 3y."


def _schema(text: str) -> Schema:
    try:
        return schema_module.parse_schema(text)
    except schema_module.SchemaError as error:
        raise ValueError(str(error)) from None


_schema.coerceDoc = "Comma-separated interval:retention pairs; intervals divide a day."

def _security_level(text: str) -> SecurityLevel:
    try:
        return SecurityLevel[text.strip().upper()]
    except KeyError:
        raise ValueError("None, Sign or Encrypt") from None


_security_level.coerceDoc = "None, Sign or Encrypt; Sign and Encrypt need --collectd-auth-file."


def _token(text: str) -> str:
    try:
        return access.valid_token(text)
    except access.TokenError as error:
        raise ValueError(str(error)) from None


_token.coerceDoc = "Visible ASCII, no spaces; anyone who can run ps sees it: prefer the -file option."

DEFAULT_TYPESDB = "/usr/share/collectd/types.db"
DEFAULT_SCHEMA = schema_module.parse_schema(schema_module.DEFAULT)


@attrs.frozen
class Config:
    udp_port: int = 8125
    http_port: int = 8085
    interface: str = "127.0.0.1"
    flush_interval: float = 1.0
    redis_url: str | None = None
    redis_cluster: bool = False
    data_dir: str = "hailwhale-data"
    schema: Schema = DEFAULT_SCHEMA
    udp_receive_buffer: int = 32 * 1024 * 1024
    max_pending_keys: int = 200_000
    max_body_bytes: int = 1024 * 1024
    max_children: int = 10_000
    max_tracked_children: int = 1_000_000
    count_now_timeout: float = 10.0
    stop_timeout: float = 10.0
    store_timeout: float = 5.0
    limits: Limits = Limits()
    collectd_port: int = 25826
    collectd_security_level: SecurityLevel = SecurityLevel.NONE
    collectd_auth_file: str | None = None
    collectd_typesdb: str | None = None
    collectd_max_series: int = 100_000
    read_token: str | None = None
    read_token_file: str | None = None
    write_token: str | None = None
    write_token_file: str | None = None
    cors_origins: tuple[str, ...] = ()  # () means any origin

    @property
    def event_limits(self) -> Limits:
        """The limits, the past bounded by the longest retention unless ``limits`` bounds it."""
        return self.limits.bounded_in_past(self.schema.longest_retention())


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Real-time counting of rolled-up, multi-dimensional metrics. Events come in over UDP "
        "and HTTP, add up in memory and are flushed to Redis; with no --redis the daemon runs "
        "its own embedded Valkey server with its data in --data-dir."
    )
    optFlags = [
        ["redis-cluster", None, "Treat --redis as a Redis Cluster node."],
    ]
    optParameters = [
        ["udp-port", None, 8125, "UDP port for event lines.", _port],
        ["http-port", None, 8085, "HTTP port for counting and queries.", _port],
        ["interface", None, "127.0.0.1", "Address to listen on (UDP and HTTP)."],
        ["flush-interval", None, 1.0, "Seconds between flushes to the store.", _positive_float],
        ["redis", None, None, "Store URL (redis://host:port/db, rediss://..., unix:///path.sock); "
                              "default: an embedded Valkey server in --data-dir."],
        ["data-dir", None, "hailwhale-data", "Data directory of the embedded store."],
        ["schema", None, DEFAULT_SCHEMA, "Bucket intervals and their retention.", _schema],
        ["udp-receive-buffer", None, 32 * 1024 * 1024, "Bytes of UDP receive buffer to ask for.", _positive_int],
        ["max-pending-keys", None, 200_000, "Most distinct aggregation keys held between flushes (besides one "
                                            "batch waiting for the store).", _positive_int],
        ["max-line-bytes", None, 8192, "Longest UDP line accepted.", _positive_int],
        ["max-body-bytes", None, 1024 * 1024, "Largest HTTP body accepted.", _positive_int],
        ["max-pk-depth", None, 8, "Most names in a pk.", _positive_int],
        ["max-dimension-nodes", None, 64, "Most dimension nodes one event counts under.", _positive_int],
        ["max-metrics", None, 32, "Most metrics in one event (hits included).", _positive_int],
        ["max-name-length", None, 256, "Longest pk or dimension name, in characters.", _positive_int],
        ["max-future", None, 86400, "How far ahead of the daemon's clock an event's time may be.", _seconds],
        ["max-past", None, None, "How far back an event's time may be; default: the longest retention.", _seconds],
        ["max-children", None, 10_000, "Most distinct children of a dimension under one pk; more are counted "
                                       "as _other.", _positive_int],
        ["max-tracked-children", None, 1_000_000, "Most dimension names remembered for --max-children, over "
                                                  "every pk and dimension; past it new names count as _other.",
         _positive_int],
        ["count-now-timeout", None, 10.0, "Seconds /count_now waits for the store.", _positive_float],
        ["stop-timeout", None, 10.0, "Seconds a stopping daemon keeps retrying its last flush.", _positive_float],
        ["collectd-port", None, 25826, "UDP port for collectd's network protocol.", _port],
        ["collectd-security-level", None, SecurityLevel.NONE, "What collectd packets must be.", _security_level],
        ["collectd-auth-file", None, None, "collectd AuthFile: 'user: password' lines, read again when it changes."],
        ["collectd-typesdb", None, None, "A types.db file naming the values of each collectd type (on top of a "
                                         f"built-in table of the common types); default: {DEFAULT_TYPESDB} if present."],
        ["collectd-max-series", None, 100_000, "Most collectd COUNTER/DERIVE series remembered to compute increases.",
         _positive_int],
        ["store-timeout", None, 5.0, "Seconds to wait for the store to connect or answer before a call fails.",
         _positive_float],
        ["read-token", None, None, "Token the query endpoints (and /stats, /metrics) require", _token],
        ["read-token-file", None, None, "File whose first line is the read token (better than --read-token)."],
        ["write-token", None, None, "Token the HTTP counting API (/count, /count_now, /flush) requires; the "
                                    "pixel and UDP stay open", _token],
        ["write-token-file", None, None, "File whose first line is the write token (better than --write-token)."],
    ]

    def __init__(self):
        super().__init__()
        self["cors-origin"] = []

    def opt_cors_origin(self, value: str) -> None:
        """Origin allowed to read query answers in a browser (repeatable, or a comma list); default: any."""
        self["cors-origin"].append(value)

    def postOptions(self) -> None:
        self["config"] = Config(
            udp_port=self["udp-port"],
            http_port=self["http-port"],
            interface=self["interface"],
            flush_interval=self["flush-interval"],
            redis_url=self["redis"],
            redis_cluster=bool(self["redis-cluster"]),
            data_dir=self["data-dir"],
            schema=self["schema"],
            udp_receive_buffer=self["udp-receive-buffer"],
            max_pending_keys=self["max-pending-keys"],
            max_body_bytes=self["max-body-bytes"],
            max_children=self["max-children"],
            max_tracked_children=self["max-tracked-children"],
            count_now_timeout=self["count-now-timeout"],
            stop_timeout=self["stop-timeout"],
            store_timeout=self["store-timeout"],
            limits=Limits(
                max_line_bytes=self["max-line-bytes"],
                max_pk_depth=self["max-pk-depth"],
                max_dimension_nodes=self["max-dimension-nodes"],
                max_metrics=self["max-metrics"],
                max_name_length=self["max-name-length"],
                max_future_seconds=self["max-future"],
                max_past_seconds=self["max-past"],
            ),
            collectd_port=self["collectd-port"],
            collectd_security_level=self["collectd-security-level"],
            collectd_auth_file=self["collectd-auth-file"],
            collectd_typesdb=self["collectd-typesdb"],
            collectd_max_series=self["collectd-max-series"],
            read_token=self["read-token"],
            read_token_file=self["read-token-file"],
            write_token=self["write-token"],
            write_token_file=self["write-token-file"],
            cors_origins=access.origins(self["cors-origin"]),
        )
        for kind in ("read", "write"):
            if self[f"{kind}-token"] is not None and self[f"{kind}-token-file"] is not None:
                raise usage.UsageError(f"--{kind}-token and --{kind}-token-file: give one of them")
        if self["collectd-security-level"] != SecurityLevel.NONE and not self["collectd-auth-file"]:
            raise usage.UsageError("--collectd-security-level Sign or Encrypt needs --collectd-auth-file")
        if self["redis-cluster"] and not self["redis"]:
            raise usage.UsageError("--redis-cluster needs --redis")
        longest = self["schema"].longest_retention()
        if self["max-past"] is not None and self["max-past"] > longest:
            raise usage.UsageError(f"--max-past is longer than the longest retention ({longest} s): such events "
                                   "would land in no bucket")
