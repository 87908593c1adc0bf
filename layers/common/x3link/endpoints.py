"""Which Sage X3 gateways may receive a code, a token or the client secret.

A callback's `endpoint` decides where the code exchange goes, so it is trusted only when it is, exactly,
one of the configured base URLs: a suffix or prefix rule would let `api.evil-sagex3.com` in. A stored
pairing's endpoint, and the URLs Sage's answers point to, are held to the same list again at every call
(`EndpointPolicy.gateway_of`): a table row is no evidence of where a secret may go.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from x3link.errors import EndpointNotAllowed

_DEFAULT_PORTS = {"http": 80, "https": 443}
_HOST = re.compile(r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_PATH = re.compile(r"^(?:/[A-Za-z0-9._~-]+)*$")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def normalise(url: str) -> str:
    """`scheme://host[:port]/path` in canonical form; ValueError for anything that is not a plain base URL."""
    if not url or any(ch.isspace() or ord(ch) < 0x21 or ch == "\\" for ch in url):
        raise ValueError("not a plain URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("scheme must be http or https")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise ValueError("credentials are not allowed in the URL")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise ValueError("query and fragment are not allowed")
    host = (parts.hostname or "").lower()
    if not (_HOST.match(host) or _is_ip(host)):
        raise ValueError("host is not a valid name")
    try:
        port = parts.port
    except ValueError as exc:
        raise ValueError("port is not valid") from exc
    if scheme == "http" and not is_loopback(host):
        raise ValueError("plain http is accepted only for loopback hosts")
    path = parts.path.rstrip("/")
    if not _PATH.match(path) or any(segment in {".", ".."} for segment in path.split("/")):
        raise ValueError("path is not valid")
    netloc = f"[{host}]" if ":" in host else host
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        netloc = f"{netloc}:{port}"
    return f"{scheme}://{netloc}{path}"


def _target(url: str) -> tuple[str, str, int, str]:
    """(scheme, host, port, path) of a URL a call is about to go to; ValueError for anything that a
    parser other than `urlsplit` (urllib3's, a proxy's, the server's) might read differently."""
    if not url.isascii() or any(ch.isspace() or ord(ch) < 0x21 or ch in "\x7f\\" for ch in url):
        raise ValueError("not a plain ASCII URL")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _DEFAULT_PORTS:
        raise ValueError("scheme must be http or https")
    if "@" in parts.netloc or "#" in url:
        raise ValueError("credentials and fragments are not allowed")
    host = (parts.hostname or "").lower()
    if not (_HOST.match(host) or _is_ip(host)):
        raise ValueError("host is not a valid name")
    port = parts.port  # ValueError when it is not a port
    path = parts.path
    if any(segment in {".", ".."} for segment in unquote(path).split("/")):
        raise ValueError("dot segments are not allowed")  # urllib3 and servers resolve them: `/v1/../x`
    return scheme, host, _DEFAULT_PORTS[scheme] if port is None else port, path


def origin_of(url: str) -> str:
    """`scheme://host:port` of a URL, to name a refused one in a log: never its userinfo, path or query."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "(not a URL)"
    host = parts.hostname or ""
    if not (_HOST.match(host) or _is_ip(host)):
        return "(not a URL)" if not host else "(a host that is not a plain name)"
    shown = f"[{host}]" if ":" in host else host
    return f"{parts.scheme.lower()[:10]}://{shown}" + (f":{port}" if port is not None else "")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class EndpointPolicy:
    """The allow-list: the default gateway plus the configured other regions, compared exactly."""

    def __init__(self, default: str, allowed: Iterable[str]) -> None:
        self.default = normalise(default)
        self.allowed = frozenset([self.default, *(normalise(url) for url in allowed)])
        self._targets = {base: _target(base) for base in self.allowed}

    def gateway_of(self, url: str) -> str | None:
        """The allowed base URL `url` lies under (same scheme, host and port, its path the base's or below
        it), or None. Checked before every call that carries a token or the client secret."""
        try:
            scheme, host, port, path = _target(url)
        except ValueError:
            return None
        for base, (b_scheme, b_host, b_port, b_path) in self._targets.items():
            if (scheme, host, port) == (b_scheme, b_host, b_port) and (
                path == b_path or path.startswith(f"{b_path}/")
            ):
                return base
        return None

    def resolve(self, endpoint: str | None) -> str:
        """The base URL to use for a callback: its `endpoint` when allowed, the default when absent."""
        if endpoint is None or endpoint == "":
            return self.default
        try:
            candidate = normalise(endpoint)
        except ValueError as exc:
            raise EndpointNotAllowed(f"The endpoint in the callback is not acceptable ({exc}).") from None
        if candidate not in self.allowed:
            raise EndpointNotAllowed("The endpoint in the callback is not an allowed Sage X3 gateway.")
        return candidate
