"""types.db: the names of each type's data sources."""

from pathlib import Path

from hailwhale.formats import typesdb

SYSTEM_TYPESDB = Path("/usr/share/collectd/types.db")  # installed with collectd-core (.ci/run installs it)


def test_parse_reads_types_db_syntax():
    """Names in order, commas or blanks between data sources, comments and blank lines skipped, bad lines reported."""
    text = (
        "# comment\n\nload  shortterm:GAUGE:0:5000, midterm:GAUGE:0:5000,longterm:GAUGE:0:5000\n"
        "if_octets\trx:DERIVE:0:U tx:DERIVE:0:U\nbroken value:SOMETHING:0:U\nnothing\nslash a/b:GAUGE:U:U\n"
    )

    assert ({"load": ("shortterm", "midterm", "longterm"), "if_octets": ("rx", "tx")}, [5, 6, 7]) == typesdb.parse(text)


def test_builtin_table_agrees_with_collectds_own_types_db():
    """Every built-in type names its data sources as collectd's installed types.db does."""
    installed, bad = typesdb.parse(SYSTEM_TYPESDB.read_text())

    assert ([], {name: installed.get(name) for name in typesdb.BUILTIN}) == (bad, dict(typesdb.BUILTIN))


def test_names_of_unknown_types():
    """A known type names its values; otherwise one value is `value` and several `value0`, `value1`...; so is a
    known type sent with another number of values."""
    assert (("rx", "tx"), ("value",), ("value0", "value1", "value2"), ("value0", "value1")) == (
        typesdb.data_source_names(typesdb.BUILTIN, "if_octets", 2),
        typesdb.data_source_names(typesdb.BUILTIN, "my_type", 1),
        typesdb.data_source_names(typesdb.BUILTIN, "my_type", 3),
        typesdb.data_source_names({"t": ("a", "b", "c")}, "t", 2),
    )
