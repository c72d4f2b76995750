"""
The plugin ships and is found: the wheel holds the dropin, and after a plain
``pip install`` into a fresh venv, ``twistd --help`` lists hailwhale.
"""

import json
import os
import shutil
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins

ROOT = Path(__file__).parent.parent


def real_clock_environment() -> dict[str, str]:
    """
    This environment without faketime's clock (``./test --shifted``): pip fetches from PyPI,
    whose TLS certificates are valid by the world's calendar, not by a shifted one.
    """
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("FAKETIME") and not (name == "LD_PRELOAD" and "faketime" in value)
    }


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    """The wheel built from a copy of the source tree: a build/ folder left by an earlier build cannot leak into it."""
    out = tmp_path_factory.mktemp("dist")
    source = tmp_path_factory.mktemp("source") / "hailwhale"
    shutil.copytree(
        ROOT,
        source,
        ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "*.egg-info", "node_modules", "__pycache__", ".*_cache", ".hypothesis", "dist"
        ),
    )
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(out), str(source)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("hailwhale-*.whl")
    return built


def test_wheel_contents(wheel):
    """The wheel has the dropin and no __init__.py under twisted/ that would hide Twisted's own plugins."""
    names = zipfile.ZipFile(wheel).namelist()

    assert ("twisted/plugins/hailwhale_plugin.py" in names, [], "hailwhale/tap.py" in names) == (
        True,
        [n for n in names if n.startswith("twisted/") and n.endswith("__init__.py")],
        True,
    )


def test_wheel_holds_every_module_and_script(wheel):
    """Every module of every subpackage and every Lua script of the source tree is in the wheel."""
    names = set(zipfile.ZipFile(wheel).namelist())
    source = {
        str(path.relative_to(ROOT)) for pattern in ("*.py", "*.lua") for path in (ROOT / "hailwhale").rglob(pattern)
    }

    assert (set(), True) == (source - names, "hailwhale/store/lua/apply.lua" in source)


def test_wheel_holds_every_static_file(wheel):
    """Every file of the widget and the dashboard (hailwhale/web/static) is in the wheel, byte for byte."""
    archive = zipfile.ZipFile(wheel)
    static = ROOT / "hailwhale" / "web" / "static"
    source = {str(path.relative_to(ROOT)): path.read_bytes() for path in static.iterdir() if path.is_file()}

    assert (source, True) == (
        {name: archive.read(name) for name in source if name in archive.namelist()},
        {"uPlot.iife.min.js", "hw-graph.js", "dashboard.html"} <= {path.rsplit("/", 1)[-1] for path in source},
    )


def test_plugin_is_discovered():
    """Twisted's plugin system finds the hailwhale ServiceMaker."""
    assert "hailwhale" in {maker.tapname for maker in getPlugins(IServiceMaker)}


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed by a plain pip install."""
    env_dir = tmp_path_factory.mktemp("installed") / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    subprocess.run(
        [env_dir / "bin" / "pip", "install", "-q", str(wheel)],
        check=True,
        capture_output=True,
        cwd=env_dir.parent,
        env=real_clock_environment(),
    )
    return env_dir


@pytest.mark.slow
def test_twistd_lists_hailwhale_after_pip_install(installed, tmp_path):
    """In a fresh venv, `pip install <wheel>` is enough for `twistd --help` to list hailwhale, and for its options."""
    listing = subprocess.run(
        [installed / "bin" / "twistd", "--help"], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout

    own_help = subprocess.run(
        [installed / "bin" / "twistd", "hailwhale", "--help"], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout

    assert (["hailwhale"], True) == (
        [line.split()[0] for line in listing.splitlines() if "hailwhale" in line],
        "--max-pending-keys" in own_help,
    )


@pytest.mark.slow
def test_the_installed_package_serves_every_static_file(installed, tmp_path):
    """Installed from the wheel, the daemon finds every file of web/static and makes its pages from them."""
    code = (
        "import json; from hailwhale.web.assets import Assets; a = Assets.packaged(); "
        "print(json.dumps([a.names(), b'hw-dashboard.js' in a.page.body, len(a.bundle.body)]))"
    )
    found = subprocess.run(
        [installed / "bin" / "python", "-c", code], check=True, capture_output=True, text=True, cwd=tmp_path
    ).stdout
    static = ROOT / "hailwhale" / "web" / "static"

    assert [sorted(p.name for p in static.iterdir() if p.is_file() and p.name != "dashboard.html"), True, True] == [
        *json.loads(found)[:2],
        json.loads(found)[2] > 50_000,
    ]
