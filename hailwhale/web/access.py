"""
Access control for the HTTP API, pure: which token a request presents, whether it is the
one required, and which origin a CORS answer may name.

A token comes in ``Authorization: Bearer <token>`` or a ``token=`` query parameter (for
clients that cannot set headers); the header wins when both are there.  Tokens are
compared in constant time (:func:`hmac.compare_digest`), so the time an answer takes does
not tell how much of a guess was right.
"""

import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit, urlunsplit

import attrs

QUERY_PARAMETER = "token"
ANY_ORIGIN = "*"


class TokenError(ValueError):
    """A token (or token file) that cannot be used: empty, or with characters a header cannot carry."""


@attrs.frozen
class Denied:
    """Why a request is refused: ``reason`` is ``missing_token`` or ``wrong_token``."""

    reason: str
    message: str


@attrs.frozen
class Policy:
    """Who may do what over HTTP: the tokens required (None: open) and the origins allowed to read ((): any)."""

    read_token: str | None = attrs.field(default=None, repr=False)
    write_token: str | None = attrs.field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()


MISSING = Denied("missing_token", "this endpoint needs a token: 'Authorization: Bearer <token>' or token=<token>")
WRONG = Denied("wrong_token", "the token given is not the one this endpoint needs")


def valid_token(text: str) -> str:
    """``text`` as a token, or :class:`TokenError`: visible ASCII, no spaces, not empty."""
    if not text:
        raise TokenError("a token may not be empty")
    if not all("!" <= char <= "~" for char in text):
        raise TokenError("a token is visible ASCII characters without spaces")
    return text


def token_from_file_text(text: str) -> str:
    """The token a token file holds: its first line, stripped (a trailing newline is no part of it)."""
    lines = text.splitlines()
    return valid_token(lines[0].strip() if lines else "")


def presented(authorization: bytes | None, params: Mapping[str, str]) -> str | None:
    """
    The token a request presents: the Bearer credentials of its Authorization header,
    else its ``token`` query parameter, else None.  Another scheme (Basic, ...) is no token.
    """
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(b" ")
        if scheme.lower() == b"bearer" and credentials.strip():
            return credentials.strip().decode("latin-1")
    value = params.get(QUERY_PARAMETER)
    return value if value else None


def check(required: str | None, token: str | None) -> Denied | None:
    """None if the request may go on (no token required, or the right one given), else why not."""
    if required is None:
        return None
    if token is None:
        return MISSING
    # compare_digest takes bytes of any length; unequal lengths answer False without leaking where they differ
    if not hmac.compare_digest(token.encode("utf-8", "surrogateescape"), required.encode("utf-8")):
        return WRONG
    return None


def origins(values: Iterable[str]) -> tuple[str, ...]:
    """The allowed origins from ``--cors-origin`` values (each one origin or a comma list); () means any."""
    found = [origin.strip().rstrip("/") for value in values for origin in value.split(",")]
    found = [origin for origin in found if origin]
    return () if ANY_ORIGIN in found else tuple(dict.fromkeys(found))


def allowed_origin(allowed: tuple[str, ...], origin: bytes | None) -> bytes | None:
    """
    What ``Access-Control-Allow-Origin`` says to a request from ``origin``: ``*`` when any
    origin is allowed, the origin itself when it is one of ``allowed``, else None (no header:
    the browser keeps the answer from the page).
    """
    if not allowed:
        return ANY_ORIGIN.encode()
    if origin is not None and origin.decode("latin-1") in allowed:
        return origin
    return None


def redacted_url(url: str) -> str:
    """``url`` with its password (if any) replaced by ``***``: store URLs are shown in /stats and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
