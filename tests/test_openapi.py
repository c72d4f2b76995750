"""The OpenAPI description: it covers every route the daemon has, and says which ones need a token."""

import re

import pytest

from hailwhale.web import openapi
from hailwhale.web.app import READ_PATHS, WRITE_PATHS, HailwhaleWeb


def routes() -> set[tuple[str, str]]:
    """(path, method) of every route (``<path:name>`` written ``{name}``), without preflights and HEAD."""
    return {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in HailwhaleWeb.app.url_map.iter_rules()
        for method in rule.methods
        if method not in ("OPTIONS", "HEAD")
    }


def test_every_route_is_described():
    """The description names exactly the routes and methods the daemon answers."""
    described = {(path, method) for path, methods in openapi.describe()["paths"].items() for method in methods}

    assert routes() == described


@pytest.mark.parametrize("read_token, write_token", [(False, False), (True, False), (False, True), (True, True)])
def test_security_follows_the_tokens(read_token, write_token):
    """Read endpoints need a token only with a read token, the counting API only with a write token; never the pixel."""
    paths = openapi.describe(read_token, write_token)["paths"]

    secured = {path for path, methods in paths.items() for operation in methods.values() if operation.get("security")}
    expected = ({p.decode() for p in READ_PATHS} if read_token else set()) | (
        {p.decode() for p in WRITE_PATHS} if write_token else set()
    )
    assert expected == secured


def test_every_parameter_reference_resolves():
    """Each $ref in the description names a component that exists."""
    document = openapi.describe(True, True)
    refs = set()

    def walk(node):
        if isinstance(node, dict):
            if "$ref" in node:
                refs.add(node["$ref"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(document["paths"])
    missing = {ref for ref in refs if ref.split("/")[-1] not in document["components"][ref.split("/")[2]]}
    assert set() == missing
