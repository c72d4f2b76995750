"""
The files of the widget and the dashboard (``hailwhale/web/static``), held in memory and
served with versioned URLs.

Each file's version is the start of its sha256, so ``/static/<name>?v=<version>`` names
one content for ever and is cached for a year; every answer carries the version as its
ETag, so a browser that has it gets a 304.  ``/hailwhale.js`` is the widget in one file
(uPlot, ``hw-core.js``, ``hw-graph.js``), ``/`` the dashboard page made from
``dashboard.html`` with the versioned URLs filled in.
"""

import gzip
import hashlib
import importlib.resources
import re
from collections.abc import Mapping

import attrs

BUNDLE = "hailwhale.js"
BUNDLE_PARTS = ("uPlot.iife.min.js", "hw-core.js", "hw-graph.js")
WIDGET_CSS = ("uPlot.min.css", "hailwhale.css")
PAGE = "dashboard.html"
TYPES = {
    ".js": "application/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".html": "text/html; charset=utf-8",
}
PLAIN = "text/plain; charset=utf-8"
YEAR = 365 * 86400
_PLACEHOLDER = re.compile(r"\{\{([\w.-]+)\}\}")


@attrs.frozen
class Asset:
    name: str
    body: bytes = attrs.field(repr=False)
    content_type: str
    version: str  # the first 16 hex digits of the body's sha256
    gzipped: bytes | None = attrs.field(repr=False)  # None when gzip would not make it smaller

    @property
    def etag(self) -> bytes:
        return f'"{self.version}"'.encode("ascii")


def make_asset(name: str, body: bytes) -> Asset:
    suffix = name[name.rfind(".") :] if "." in name else ""
    content_type = TYPES.get(suffix, PLAIN)
    packed = gzip.compress(body, 9, mtime=0) if content_type != "image/png" else None
    return Asset(
        name=name,
        body=body,
        content_type=content_type,
        version=hashlib.sha256(body).hexdigest()[:16],
        gzipped=packed if packed is not None and len(packed) < len(body) else None,
    )


class Assets:
    """The static files by name, the widget bundle and the dashboard page."""

    def __init__(self, files: Mapping[str, bytes]):
        self._files = {name: make_asset(name, body) for name, body in files.items() if name != PAGE}
        css = ", ".join(f'"{self.url(name)}"' for name in WIDGET_CSS)
        header = (
            "/* hailwhale widget: uPlot 1.6.32 (MIT, see /static/uPlot.LICENSE), hw-core.js, hw-graph.js */\n"
            f"window.HailwhaleAssets = {{css: [{css}]}};\n"
        )
        self.bundle = make_asset(BUNDLE, header.encode() + b"\n".join(files[name] for name in BUNDLE_PARTS))
        template = files[PAGE].decode("utf-8")
        self.page = make_asset(PAGE, _PLACEHOLDER.sub(lambda match: self.url(match.group(1)), template).encode())

    @classmethod
    def packaged(cls) -> "Assets":
        """The files the package ships in ``hailwhale/web/static``."""
        folder = importlib.resources.files("hailwhale.web").joinpath("static")
        return cls({entry.name: entry.read_bytes() for entry in folder.iterdir() if entry.is_file()})

    def get(self, name: str) -> Asset | None:
        return self._files.get(name)

    def names(self) -> list[str]:
        return sorted(self._files)

    def url(self, name: str) -> str:
        """The versioned URL of a file (or of the bundle, ``hailwhale.js``)."""
        if name == BUNDLE:
            return f"/{BUNDLE}?v={self.bundle.version}"
        return f"/static/{name}?v={self._files[name].version}"


def not_modified(asset: Asset, if_none_match: bytes | None) -> bool:
    """Whether the browser's ``If-None-Match`` names this asset's version (weak or strong, or ``*``)."""
    if not if_none_match:
        return False
    tags = {tag.strip().removeprefix(b"W/") for tag in if_none_match.split(b",")}
    return asset.etag in tags or b"*" in tags


def cache_control(asset: Asset, version: str | None) -> bytes:
    """A year, immutable, for the versioned URL of this content; otherwise ask again every time (a 304 is cheap)."""
    if version == asset.version:
        return f"public, max-age={YEAR}, immutable".encode("ascii")
    return b"no-cache"


def accepts_gzip(accept_encoding: bytes | None) -> bool:
    if not accept_encoding:
        return False
    for part in accept_encoding.lower().split(b","):
        coding, _, params = part.strip().partition(b";")
        if coding.strip() in (b"gzip", b"*"):
            quality = params.strip().removeprefix(b"q=")
            try:
                return not params.strip() or float(quality) > 0
            except ValueError:
                return True
    return False
