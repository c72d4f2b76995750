"""
Access control for the HTTP API, pure: which token a request presents, whether it is the
one required, and which origin a CORS answer may name.

A token comes in ``Authorization: Bearer <token>`` or a ``token=`` query parameter (for
clients that cannot set headers); the header wins when both are there.  Tokens are
compared in constant time (:func:`hmac.compare_digest`), so the time an answer takes does
not tell how much of a guess was right.

A **read grant** stands in for the read token on a page that must not hold it (a graph
embedded on another site): ``hwg1.<payload>.<signature>``, where the payload is the
base64url of a compact JSON scope (``{"pk": [prefix names] or null, "m": [metric names]
or null, "p": longest period in seconds or null, "exp": epoch seconds}``) and the
signature the base64url of its HMAC-SHA256 keyed by the read token.  It is checked in
constant time, then its expiry, then whether the request stays within its scope
(:func:`within`).  Changing the read token revokes every grant.
"""

import base64
import hashlib
import hmac
import json
from collections.abc import Iterable, Mapping, Sequence
from urllib.parse import urlsplit, urlunsplit

import attrs

QUERY_PARAMETER = "token"
GRANT_PARAMETER = "grant"
GRANT_PREFIX = "hwg1"
MAX_GRANT_LENGTH = 4096
DAYLIGHT_SAVING_SLACK = 3600  # a calendar day may be 25 hours long
ANY_ORIGIN = "*"


class TokenError(ValueError):
    """A token (or token file) that cannot be used: empty, or with characters a header cannot carry."""


@attrs.frozen
class Denied:
    """
    Why a request is refused: ``reason`` is ``missing_token``, ``wrong_token``, ``bad_grant``,
    ``expired_grant`` (401) or ``outside_grant`` (403: a valid grant that does not cover it).
    """

    reason: str
    message: str
    status: int = 401


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


# -- read grants ------------------------------------------------------------------------


@attrs.frozen
class Scope:
    """What a read grant allows: pks under ``pk`` (None: any), these stored metrics (None: any),
    periods up to ``longest`` seconds long (None: any), until ``expires`` (epoch seconds)."""

    expires: int
    pk: tuple[str, ...] | None = None
    metrics: frozenset[str] | None = None
    longest: int | None = None


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _signature(read_token: str, signed: str) -> bytes:
    return hmac.new(read_token.encode("utf-8"), signed.encode("ascii"), hashlib.sha256).digest()


def sign_grant(read_token: str, scope: Scope) -> str:
    """The grant text for ``scope``, signed with ``read_token`` (see the module's description)."""
    payload = {
        "pk": list(scope.pk) if scope.pk is not None else None,
        "m": sorted(scope.metrics) if scope.metrics is not None else None,
        "p": scope.longest,
        "exp": int(scope.expires),
    }
    signed = f"{GRANT_PREFIX}.{_b64(json.dumps(payload, separators=(',', ':'), sort_keys=True).encode())}"
    text = f"{signed}.{_b64(_signature(valid_token(read_token), signed))}"
    if len(text) > MAX_GRANT_LENGTH:
        raise ValueError(f"a grant is at most {MAX_GRANT_LENGTH} characters; this scope names too much")
    return text


def is_grant(text: str | None) -> bool:
    """Whether ``text`` is written as a grant (not whether it is a valid one)."""
    return text is not None and text.startswith(GRANT_PREFIX + ".")


BAD_GRANT = Denied("bad_grant", "the grant is not one this daemon signed (or the read token has changed)")


def verify_grant(read_token: str, text: str, now: float) -> Scope | Denied:
    """The scope of grant ``text`` if the read token signed it and it has not expired, else why not."""
    parts = text.split(".")
    if len(text) > MAX_GRANT_LENGTH or not text.isascii() or len(parts) != 3 or parts[0] != GRANT_PREFIX:
        return BAD_GRANT
    try:
        given = _unb64(parts[2])
    except ValueError:
        return BAD_GRANT
    if not hmac.compare_digest(given, _signature(read_token, f"{parts[0]}.{parts[1]}")):
        return BAD_GRANT
    try:
        payload = json.loads(_unb64(parts[1]))
        scope = Scope(
            expires=_whole(payload["exp"]),
            pk=_names(payload.get("pk")),
            metrics=None if payload.get("m") is None else frozenset(_names(payload["m"]) or ()),
            longest=None if payload.get("p") is None else _whole(payload["p"]),
        )
    except (ValueError, KeyError, TypeError):
        return BAD_GRANT
    if now >= scope.expires:
        return Denied("expired_grant", "the grant has expired; the page that holds it needs a new one")
    return scope


def _whole(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValueError(value)
    return value


def _names(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise ValueError(value)
    return tuple(value)


def within(scope: Scope, pk: Sequence[str] | None, metrics: Iterable[str] = (), longest: int = 0) -> Denied | None:
    """
    None if a request for ``pk`` (None: the root of the pk tree) reading the stored
    ``metrics`` over periods up to ``longest`` seconds stays within ``scope``, else why not
    (a 403 naming what is outside).
    """
    if scope.pk is not None and (pk is None or tuple(pk[: len(scope.pk)]) != scope.pk):
        return Denied("outside_grant", f"the grant covers only pks under {list(scope.pk)}", 403)
    outside = sorted(set(metrics) - scope.metrics) if scope.metrics is not None else []
    if outside:
        return Denied("outside_grant", f"the grant does not cover the metrics {outside}", 403)
    if scope.longest is not None and longest > scope.longest + DAYLIGHT_SAVING_SLACK:
        return Denied("outside_grant", f"the grant covers periods up to {scope.longest} seconds long", 403)
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
