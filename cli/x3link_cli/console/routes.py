"""The API calls the console passes on, and nothing else: the routes its page shows (pairings, links,
activity, keep-alive runs) and the four it acts through (create a link, retry, revoke, delete).

Pure: `resolve` turns the page's request (`/api/...`, method, query) into the signed call to make, or a
refusal, so the table is tested without a socket.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, unquote, urlsplit

from x3link_cli.client import path

PREFIX = "/api"
# A tenant (the API's own pattern), a link id (a SHA-256 in hex), a run id (`20260101T000000Z-1a2b3c4d`).
_SEGMENT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$")
# A cursor is the API's own opaque string; a status or a limit is short.
_QUERY_VALUE = re.compile(r"^[A-Za-z0-9._~+/=:-]{1,2048}$")
LISTING = frozenset({"limit", "cursor"})


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # segments; `{}` is one path parameter
    query: frozenset[str] = frozenset()
    body: bool = False

    @property
    def parts(self) -> tuple[str, ...]:
        return tuple(self.template.strip("/").split("/"))


ROUTES = (
    Route("GET", "/tenants", LISTING | {"status"}),
    Route("GET", "/tenants/{}"),
    Route("POST", "/tenants/{}/refresh"),
    Route("DELETE", "/tenants/{}"),
    Route("GET", "/tenants/{}/activity", LISTING),
    Route("GET", "/pairings", LISTING | {"status"}),
    Route("POST", "/pairings", body=True),
    Route("DELETE", "/pairings/{}"),
    Route("GET", "/keep-alive/runs", LISTING),
    Route("GET", "/keep-alive/runs/{}"),
)


@dataclass(frozen=True)
class Forward:
    """The signed call to make: `route` with its parameters percent-encoded, the query kept."""

    method: str
    route: str
    query: dict[str, str] = field(default_factory=dict)
    body: bool = False


@dataclass(frozen=True)
class Refusal:
    """Why the console passes a request on to nobody: its HTTP status, error code and sentence."""

    status: int
    error: str
    message: str


def _match(route: Route, segments: list[str]) -> list[str] | None:
    """The path parameters when `segments` fit `route`'s template."""
    if len(segments) != len(route.parts):
        return None
    found = []
    for expected, segment in zip(route.parts, segments, strict=True):
        if expected == "{}":
            found.append(segment)
        elif segment != expected:
            return None
    return found


def resolve(method: str, target: str) -> Forward | Refusal:
    """The API call for the page's request `method target` (`target` as the request line has it: the
    path under /api, then the query), or why there is none."""
    split = urlsplit(target)
    if not split.path.startswith(PREFIX + "/"):
        return Refusal(404, "not_proxied", "The console passes on only /api/... requests.")
    segments = [unquote(segment) for segment in split.path[len(PREFIX) + 1 :].split("/")]
    shown = f"{method} {split.path[len(PREFIX) :]}"
    for route in ROUTES:
        params = _match(route, segments)
        if params is None:
            continue
        if route.method != method:
            continue
        if not all(_SEGMENT.match(param) for param in params):
            return Refusal(400, "bad_path", f"{shown} names something no API route takes.")
        query = _query(split.query, route)
        if isinstance(query, Refusal):
            return query
        parameters = iter(params)
        resolved = path(*(next(parameters) if part == "{}" else part for part in route.parts))
        return Forward(method, resolved, query, route.body)
    if any(_match(route, segments) is not None for route in ROUTES):
        return Refusal(405, "method_not_proxied", f"The console does not pass on {shown}.")
    return Refusal(404, "not_proxied", f"The console does not pass on {shown}: it is not a route it shows.")


def _query(raw: str, route: Route) -> dict[str, str] | Refusal:
    query: dict[str, str] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        if name not in route.query or name in query:
            return Refusal(400, "bad_query", f"The console does not pass on the query parameter {name!r}.")
        if not _QUERY_VALUE.match(value):
            return Refusal(400, "bad_query", f"The query parameter {name!r} holds characters it never does.")
        query[name] = value
    return query
