import re
from pathlib import Path

import pytest
from twisted.python import usage

from hailwhale.config import Config, settings
from hailwhale.formats.collectd import SecurityLevel
from hailwhale.model.fields import Limits
from hailwhale.model.schema import parse_schema
from hailwhale.service import collectd_types, makeService
from hailwhale.tap import Options


def parse(*args):
    options = Options()
    options.parseOptions(list(args))
    return options["config"]


def test_defaults():
    """The defaults: UDP 8125, HTTP 8085 on loopback, 1 s flushes, the embedded store, the default schema."""
    assert Config() == parse()
    assert (8125, 8085, "127.0.0.1", 1.0, None, "1m:2d,1h:35d,1d:3y") == (
        Config().udp_port,
        Config().http_port,
        Config().interface,
        Config().flush_interval,
        Config().redis_url,
        str(Config().schema),
    )


def test_options_make_a_config():
    """Every option lands in the Config, coerced."""
    config = parse(
        "--udp-port",
        "0",
        "--http-port",
        "9000",
        "--flush-interval",
        "0.5",
        "--redis",
        "redis://h:1/2",
        "--schema",
        "10s:1h,1h:2d",
        "--max-line-bytes",
        "1000",
    )

    assert (0, 9000, 0.5, "redis://h:1/2", parse_schema("10s:1h,1h:2d"), 1000) == (
        config.udp_port,
        config.http_port,
        config.flush_interval,
        config.redis_url,
        config.schema,
        config.limits.max_line_bytes,
    )


def test_limits_are_options():
    """Every bound on what one event may carry, and on distinct dimension names, is an option."""
    config = parse(
        "--max-pk-depth",
        "3",
        "--max-dimension-nodes",
        "5",
        "--max-metrics",
        "4",
        "--max-name-length",
        "20",
        "--max-future",
        "10m",
        "--max-past",
        "2d",
        "--max-children",
        "50",
        "--max-tracked-children",
        "900",
        "--store-timeout",
        "2.5",
    )

    assert (
        Limits(
            max_pk_depth=3,
            max_dimension_nodes=5,
            max_metrics=4,
            max_name_length=20,
            max_future_seconds=600,
            max_past_seconds=2 * 86400,
        ),
        50,
        900,
        2.5,
    ) == (config.limits, config.max_children, config.max_tracked_children, config.store_timeout)


def test_the_past_is_bounded_by_the_longest_retention_by_default():
    """Without --max-past, events older than the longest retention are refused: no bucket would keep them."""
    assert (3 * 365 * 86400, 35 * 86400) == (
        parse().event_limits.max_past_seconds,
        parse("--schema", "1m:1d,1h:35d").event_limits.max_past_seconds,
    )


@pytest.mark.parametrize(
    "args",
    [
        ["--schema", "7m:1d"],
        ["--flush-interval", "0"],
        ["--udp-port", "70000"],
        ["--redis-cluster"],
        ["--no-such-option", "1"],
        ["--collectd-security-level", "Paranoid"],
        ["--collectd-security-level", "Sign"],
        ["--collectd-max-series", "0"],
        ["--max-past", "4y"],
        ["--max-future", "soon"],
        ["--max-children", "0"],
    ],
)
def test_bad_options(args):
    """Bad or unknown options are usage errors, not surprises at run time."""
    with pytest.raises(usage.UsageError):
        parse(*args)


def test_collectd_options():
    """collectd listens on 25826 at level None by default; level names are read in any case."""
    config = parse(
        "--collectd-port",
        "0",
        "--collectd-security-level",
        "encrypt",
        "--collectd-auth-file",
        "/a",
        "--collectd-typesdb",
        "/t",
        "--collectd-max-series",
        "7",
    )

    assert ((25826, SecurityLevel.NONE, None), (0, SecurityLevel.ENCRYPT, "/a", "/t", 7)) == (
        (Config().collectd_port, Config().collectd_security_level, Config().collectd_auth_file),
        (
            config.collectd_port,
            config.collectd_security_level,
            config.collectd_auth_file,
            config.collectd_typesdb,
            config.collectd_max_series,
        ),
    )


def test_collectd_auth_file_must_be_readable_at_start(tmp_path):
    """A missing auth file stops the daemon from starting, rather than rejecting every packet later."""
    with pytest.raises(FileNotFoundError):
        makeService(
            parse(
                "--collectd-security-level",
                "Sign",
                "--collectd-auth-file",
                str(tmp_path / "missing"),
                "--redis",
                "redis://127.0.0.1:1/0",
            )
        )


def test_service_tree(tmp_path):
    """
    makeService builds the embedded store, thread pools (flush, fold, query), flusher, ingest gate, UDP, collectd
    and HTTP services, in start order.
    """
    service = makeService(parse("--data-dir", str(tmp_path)))

    assert [
        "EmbeddedStoreService",
        "ThreadPoolService",
        "ThreadPoolService",
        "ThreadPoolService",
        "flush",
        "IngestGate",
        "udp",
        "collectd",
        "http",
    ] == [child.name or type(child).__name__ for child in service]


def test_disabled_ports_and_external_store():
    """Port 0 disables a listener; --redis replaces the embedded store."""
    service = makeService(parse("--udp-port", "0", "--collectd-port", "0", "--redis", "redis://127.0.0.1:1/0"))

    assert ["ThreadPoolService", "ThreadPoolService", "ThreadPoolService", "flush", "IngestGate", "http"] == [
        child.name or type(child).__name__ for child in service
    ]


def test_tac_file_builds_the_service(monkeypatch):
    """hailwhale.tac builds the same service tree from HAILWHALE_OPTIONS."""
    from pathlib import Path

    from twisted.application.service import IServiceCollection

    monkeypatch.setenv("HAILWHALE_OPTIONS", "--udp-port 0 --collectd-port 0 --redis redis://127.0.0.1:1/0")
    namespace = {}
    exec(compile((Path(__file__).parent.parent / "hailwhale.tac").read_text(), "hailwhale.tac", "exec"), namespace)

    (root,) = list(IServiceCollection(namespace["application"]))
    assert ["ThreadPoolService", "ThreadPoolService", "ThreadPoolService", "flush", "IngestGate", "http"] == [
        child.name or type(child).__name__ for child in root
    ]


def test_collectd_types_come_from_the_builtin_table_and_types_db(tmp_path):
    """Built-in types, then collectd's installed types.db by default, or --collectd-typesdb's file over them."""
    typesdb_file = tmp_path / "my_types.db"
    typesdb_file.write_text("load  one:GAUGE:0:U\nmy_type  a:DERIVE:0:U, b:DERIVE:0:U\n")

    default, own = collectd_types(None), collectd_types(str(typesdb_file))

    assert (("shortterm", "midterm", "longterm"), ("seconds",), ("one",), ("a", "b"), None) == (
        default["load"],
        default["duration"],
        own["load"],
        own["my_type"],
        own.get("duration"),
    )
    with pytest.raises(FileNotFoundError):
        collectd_types(str(tmp_path / "missing"))


def test_the_readme_lists_every_option():
    """The README's Configuration table names every option of the settings table, and no other."""
    section = (Path(__file__).parent.parent / "README.md").read_text().split("\n## Configuration\n", 1)[1]
    table = section.split("\n## ", 1)[0]
    listed = {
        name
        for line in table.splitlines()
        if line.startswith("| `--")
        for name in re.findall(r"`--([\w-]+)`", line.split("|")[1])
    }

    assert {item.option for item in settings()} == listed
