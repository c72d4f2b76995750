"""
Configuration: one table, :class:`Config`'s fields.

Each field is a setting with its default, its help and how its text is read
(:func:`setting`); the command line options of ``twistd hailwhale`` are made from this
table (:mod:`hailwhale.tap`), and :meth:`Config.__attrs_post_init__` checks what one
setting says about another.  The bounds on one event are :class:`Limits`'s, whose
defaults the limit settings take.  Pure: no IO, no Twisted.
"""

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from hailwhale.formats.collectd import SecurityLevel
from hailwhale.model import schema as schema_module
from hailwhale.model.fields import Limits
from hailwhale.model.schema import Schema
from hailwhale.web import access

DEFAULT_TYPESDB = "/usr/share/collectd/types.db"
DEFAULT_SCHEMA = schema_module.parse_schema(schema_module.DEFAULT)
LIMITS = Limits()


class ConfigError(ValueError):
    """Settings that do not go together."""


def parse_port(text: str) -> int:
    value = int(text)
    if not 0 <= value <= 65535:
        raise ValueError("a port is 0 to 65535")
    return value


parse_port.coerceDoc = "0 disables it."  # type: ignore[attr-defined]


def parse_positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be more than 0")
    return value


def parse_positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be more than 0")
    return value


def parse_seconds(text: str) -> int:
    try:
        return schema_module.parse_duration(text)
    except schema_module.SchemaError as error:
        raise ValueError(str(error)) from None


parse_seconds.coerceDoc = "A duration: seconds, or 90s, 5m, 1h, 2d, 1w, 1mo, 3y."  # type: ignore[attr-defined]


def parse_schema_text(text: str) -> Schema:
    try:
        return schema_module.parse_schema(text)
    except schema_module.SchemaError as error:
        raise ValueError(str(error)) from None


parse_schema_text.coerceDoc = "Comma-separated interval:retention pairs; intervals divide a day."  # type: ignore[attr-defined]


def parse_security_level(text: str) -> SecurityLevel:
    try:
        return SecurityLevel[text.strip().upper()]
    except KeyError:
        raise ValueError("None, Sign or Encrypt") from None


parse_security_level.coerceDoc = "None, Sign or Encrypt; Sign and Encrypt need --collectd-auth-file."  # type: ignore[attr-defined]


def parse_token(text: str) -> str:
    try:
        return access.valid_token(text)
    except access.TokenError as error:
        raise ValueError(str(error)) from None


parse_token.coerceDoc = "Visible ASCII, no spaces; anyone who can run ps sees it: prefer the -file option."  # type: ignore[attr-defined]


MAX_WORKERS = 64


def parse_workers(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_WORKERS:
        raise ValueError(f"--workers is 1 to {MAX_WORKERS} (about one per core is what helps)")
    return value


parse_workers.coerceDoc = f"1 to {MAX_WORKERS}."  # type: ignore[attr-defined]


@attrs.frozen
class WorkerRole:
    """What a ``--workers`` parent tells each worker process: its group (the parent), its index, its start count."""

    group: str
    index: int
    starts: int
    parent_pid: int

    def __str__(self) -> str:
        return f"{self.group}:{self.index}:{self.starts}:{self.parent_pid}"


def parse_worker_role(text: str) -> WorkerRole:
    group, index, starts, parent_pid = text.rsplit(":", 3)
    role = WorkerRole(group, int(index), int(starts), int(parent_pid))
    if not group or role.index < 0 or role.starts < 1 or role.parent_pid < 1:
        raise ValueError("GROUP:INDEX:STARTS:PARENT_PID, set by a --workers parent")
    return role


parse_worker_role.coerceDoc = "Set by a --workers parent; not for use by hand."  # type: ignore[attr-defined]


def as_text(value: str) -> str:
    return value


def parse_amqp_urls(values) -> tuple[str, ...]:
    """``--amqp`` values: amqp:// URLs (TLS is left to a proxy in front of the broker)."""
    urls = tuple(value.strip() for value in values if value.strip())
    for url in urls:
        if not url.startswith("amqp://"):
            raise ValueError(f"{access.redacted_url(url)}: not an amqp:// URL (for TLS, put a proxy before the broker)")
    return urls


def parse_non_negative_seconds(text: str) -> int | None:
    seconds = parse_seconds(text) if text.strip() not in ("0", "") else 0
    return seconds or None


parse_non_negative_seconds.coerceDoc = "A duration (7d, 12h, ...); 0 keeps everything."  # type: ignore[attr-defined]


def setting(
    default: object,
    help: str,
    coerce: Callable = as_text,
    *,
    option: str | None = None,
    flag: bool = False,
    repeatable: bool = False,
):
    """
    A field of :class:`Config` that is also a command line option: ``--<field name with
    dashes>`` unless ``option`` names it, read by ``coerce`` from its text.  A ``flag``
    takes no value; a ``repeatable`` option may be given many times, ``coerce`` reading
    the list of its values.
    """
    return attrs.field(
        default=default,
        metadata={"help": help, "coerce": coerce, "option": option, "flag": flag, "repeatable": repeatable},
    )


@attrs.frozen
class Setting:
    """One command line option, as :mod:`hailwhale.tap` offers it."""

    field: str
    option: str
    default: object
    help: str
    coerce: Callable
    flag: bool
    repeatable: bool


@attrs.frozen
class Config:
    udp_port: int = setting(8125, "UDP port for event lines.", parse_port)
    http_port: int = setting(8085, "HTTP port for counting and queries.", parse_port)
    interface: str = setting("127.0.0.1", "Address to listen on (UDP and HTTP).")
    http_listen: str | None = setting(
        None,
        "Where HTTP listens, as a Twisted endpoint (unix:/run/hailwhale.sock, "
        "tcp6:8085:interface=\\:\\:1); default: --http-port on --interface.",
    )
    http_request_timeout: float = setting(
        10.0,
        "Seconds an HTTP request may take to arrive whole (request line, headers and body), from its first byte.",
        parse_positive_float,
    )
    http_idle_timeout: float = setting(
        15.0,
        "Seconds an HTTP connection may wait, open, for its next request (or its first).",
        parse_positive_float,
    )
    http_max_connections: int | None = setting(
        None,
        "Most HTTP connections open at once; default: 10000, or what the open-files limit leaves room for.",
        parse_positive_int,
    )
    http_max_connections_per_address: int | None = setting(
        None,
        "Most HTTP connections open at once from one client address (an IPv6 /64); "
        "default: a quarter of --http-max-connections.",
        parse_positive_int,
    )
    workers: int = setting(
        1,
        "Worker processes sharing the UDP, collectd and HTTP ports (SO_REUSEPORT), each flushing on its own; "
        "the parent runs the embedded store.",
        parse_workers,
    )
    worker: WorkerRole | None = setting(None, "Internal: set by a --workers parent for its workers.", parse_worker_role)
    flush_interval: float = setting(1.0, "Seconds between flushes to the store.", parse_positive_float)
    redis_url: str | None = setting(
        None,
        "Store URL (redis://host:port/db, rediss://..., unix:///path.sock); "
        "default: an embedded Valkey server in --data-dir.",
        option="redis",
    )
    redis_cluster: bool = setting(False, "Treat --redis as a Redis Cluster node.", flag=True)
    data_dir: str = setting("hailwhale-data", "Data directory of the embedded store.")
    schema: Schema = setting(DEFAULT_SCHEMA, "Bucket intervals and their retention.", parse_schema_text)
    udp_receive_buffer: int = setting(32 * 1024 * 1024, "Bytes of UDP receive buffer to ask for.", parse_positive_int)
    max_pending_keys: int = setting(
        200_000,
        "Most distinct aggregation keys held between flushes (besides one batch waiting for the store).",
        parse_positive_int,
    )
    max_line_bytes: int = setting(LIMITS.max_line_bytes, "Longest UDP line accepted.", parse_positive_int)
    max_body_bytes: int = setting(1024 * 1024, "Largest HTTP body accepted.", parse_positive_int)
    max_pk_depth: int = setting(LIMITS.max_pk_depth, "Most names in a pk.", parse_positive_int)
    max_dimension_nodes: int = setting(
        LIMITS.max_dimension_nodes, "Most dimension nodes one event counts under.", parse_positive_int
    )
    max_metrics: int = setting(LIMITS.max_metrics, "Most metrics in one event (hits included).", parse_positive_int)
    max_name_length: int = setting(
        LIMITS.max_name_length, "Longest pk or dimension name, in characters.", parse_positive_int
    )
    max_future_seconds: int = setting(
        LIMITS.max_future_seconds,
        "How far ahead of the daemon's clock an event's time may be.",
        parse_seconds,
        option="max-future",
    )
    max_past_seconds: int | None = setting(
        LIMITS.max_past_seconds,
        "How far back an event's time may be; default: the longest retention.",
        parse_seconds,
        option="max-past",
    )
    max_children: int = setting(
        10_000, "Most distinct children of a dimension under one pk; more are counted as _other.", parse_positive_int
    )
    max_tracked_children: int = setting(
        1_000_000,
        "Most dimension names remembered for --max-children, over every "
        "pk and dimension; past it new names count as _other.",
        parse_positive_int,
    )
    count_now_timeout: float = setting(10.0, "Seconds /count_now waits for the store.", parse_positive_float)
    stop_timeout: float = setting(
        10.0, "Seconds a stopping daemon keeps retrying its last flush.", parse_positive_float
    )
    store_timeout: float = setting(
        5.0, "Seconds to wait for the store to connect or answer before a call fails.", parse_positive_float
    )
    collectd_port: int = setting(25826, "UDP port for collectd's network protocol.", parse_port)
    collectd_security_level: SecurityLevel = setting(
        SecurityLevel.NONE, "What collectd packets must be.", parse_security_level
    )
    collectd_auth_file: str | None = setting(
        None, "collectd AuthFile: 'user: password' lines, read again when it changes."
    )
    collectd_typesdb: str | None = setting(
        None,
        "A types.db file naming the values of each collectd type (on top "
        "of a built-in table of the common types); default: "
        f"{DEFAULT_TYPESDB} if present.",
    )
    collectd_max_series: int = setting(
        100_000, "Most collectd COUNTER/DERIVE series remembered to compute increases.", parse_positive_int
    )
    read_token: str | None = setting(None, "Token the query endpoints (and /stats, /metrics) require", parse_token)
    read_token_file: str | None = setting(None, "File whose first line is the read token (better than --read-token).")
    write_token: str | None = setting(
        None,
        "Token the HTTP counting API (/count, /count_now, /flush) requires; the pixel and UDP stay open",
        parse_token,
    )
    write_token_file: str | None = setting(
        None, "File whose first line is the write token (better than --write-token)."
    )
    amqp_urls: tuple[str, ...] = setting(
        (),
        "RabbitMQ broker to read events from (amqp://user:pass@host:5672/vhost); repeat it for the nodes "
        "of one cluster, tried in turn. Off without it.",
        parse_amqp_urls,
        option="amqp",
        repeatable=True,
    )
    amqp_password_file: str | None = setting(
        None, "File whose first line is the broker password (used instead of the one in --amqp URLs)."
    )
    amqp_queue: str = setting("hailwhale", "The RabbitMQ stream to read (declared as a stream if missing).")
    amqp_exchange: str | None = setting(
        None, "Exchange the stream is bound to (it must exist), so that producers keep publishing there."
    )
    amqp_binding_key: str = setting("#", "Binding key of the stream on --amqp-exchange.")
    amqp_prefetch: int = setting(
        2000, "Messages the broker may send ahead of acknowledgements (basic.qos).", parse_positive_int
    )
    amqp_max_age: int | None = setting(
        7 * 86400,
        "Retention of a stream the daemon declares (x-max-age): how long a message can wait for a daemon.",
        parse_non_negative_seconds,
    )
    cors_origins: tuple[str, ...] = setting(
        (),
        "Origin allowed to read query answers in a browser (repeatable, or a comma list); default: any.",
        access.origins,
        option="cors-origin",
        repeatable=True,
    )

    def __attrs_post_init__(self) -> None:
        for kind in ("read", "write"):
            if getattr(self, f"{kind}_token") is not None and getattr(self, f"{kind}_token_file") is not None:
                raise ConfigError(f"--{kind}-token and --{kind}-token-file: give one of them")
        if self.collectd_security_level != SecurityLevel.NONE and not self.collectd_auth_file:
            raise ConfigError("--collectd-security-level Sign or Encrypt needs --collectd-auth-file")
        if self.workers > 1 and self.http_listen:
            raise ConfigError(
                "--http-listen and --workers: several workers share a TCP port (--http-port), not an endpoint"
            )
        if self.redis_cluster and not self.redis_url:
            raise ConfigError("--redis-cluster needs --redis")
        longest = self.schema.longest_retention()
        if self.max_past_seconds is not None and self.max_past_seconds > longest:
            raise ConfigError(
                f"--max-past is longer than the longest retention ({longest} s): such events would land in no bucket"
            )

    @property
    def limits(self) -> Limits:
        """The bounds on one event, as set."""
        return attrs.evolve(LIMITS, **{name: getattr(self, name) for name in _LIMIT_FIELDS})

    @property
    def event_limits(self) -> Limits:
        """The limits, the past bounded by the longest retention unless ``--max-past`` bounds it."""
        return self.limits.bounded_in_past(self.schema.longest_retention())


_LIMIT_FIELDS = tuple(field.name for field in attrs.fields(Limits) if field.name in attrs.fields_dict(Config))


def settings() -> tuple[Setting, ...]:
    """The command line options, one per field of :class:`Config`, in its order."""
    return tuple(
        Setting(
            field.name,
            field.metadata["option"] or field.name.replace("_", "-"),
            field.default,
            field.metadata["help"],
            field.metadata["coerce"],
            field.metadata["flag"],
            field.metadata["repeatable"],
        )
        for field in attrs.fields(Config)
    )


def from_options(values: Mapping[str, object]) -> Config:
    """The Config of parsed option values (by option name); raises :class:`ConfigError`."""
    fields: dict[str, Any] = {
        item.field: item.coerce(values[item.option]) if item.repeatable else values[item.option] for item in settings()
    }
    return Config(**fields)
