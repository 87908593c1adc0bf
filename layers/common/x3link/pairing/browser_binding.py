"""Binding a pairing's state to the browser that opened its pairing link, through a `__Host-` cookie.

A leaked state (or callback URL) is then useless in another browser: the callback needs the cookie too.
The cookie is `SameSite=None` because Sage X3 sends the browser back with a cross-site POST, which a `Lax`
cookie would not accompany; `__Host-` makes it `Secure`, host-only and path `/`. Each state has its own
cookie name, so an administrator can pair two tenants in two tabs of one browser.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

# Any: the API Gateway event is JSON of many shapes: only the cookies are read.
from typing import Any

COOKIE_PREFIX = "__Host-x3link-"
BINDING_BYTES = 32


@dataclass(frozen=True)
class Binding:
    """A new binding: the cookie the browser keeps, and the digest the state keeps (never the value)."""

    cookie_name: str
    cookie_value: str = field(repr=False)

    @property
    def digest(self) -> str:
        return digest(self.cookie_value)


def digest(cookie_value: str) -> str:
    return hashlib.sha256(cookie_value.encode()).hexdigest()


def cookie_name(state: str) -> str:
    """The cookie's name for this state: derived from the state's hash, so the name reveals no state."""
    return COOKIE_PREFIX + hashlib.sha256(b"cookie:" + state.encode()).hexdigest()[:20]


def new_cookie_value(token: Callable[[int], str] = secrets.token_urlsafe) -> str:
    return token(BINDING_BYTES)


def matches(expected_digest: str | None, cookie_value: str | None) -> bool:
    """Whether the browser's cookie is the one the state was bound to (in constant time)."""
    if not expected_digest or not cookie_value:
        return False
    return hmac.compare_digest(expected_digest, digest(cookie_value))


def cookies_of(event: Mapping[str, Any]) -> dict[str, str]:
    """The cookies of a REST API (payload 1.0) event, whichever header map and case they came in."""
    for name, values in (event.get("multiValueHeaders") or {}).items():
        if name.lower() == "cookie" and values:
            return parse_cookie_headers(value for value in values if isinstance(value, str))
    for name, value in (event.get("headers") or {}).items():
        if name.lower() == "cookie" and isinstance(value, str):
            return parse_cookie_headers([value])
    return {}


def parse_cookie_headers(headers: Iterable[str]) -> dict[str, str]:
    """`name=value` pairs of every Cookie header; lenient, since a browser may send anyone's cookies here.

    The first value of a name wins, as browsers put the most specific cookie first.
    """
    cookies: dict[str, str] = {}
    for header in headers:
        for part in header.split(";"):
            name, sep, value = part.strip().partition("=")
            if sep and name and name not in cookies:
                cookies[name] = value.strip().strip('"')
    return cookies
