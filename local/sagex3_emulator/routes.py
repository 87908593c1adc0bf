"""Which function answers which method and path, and under which route name.

Why: one table shows the whole gateway surface at a glance; route names are the ones `fail_next` and
`count` use.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from . import delivery, folders, graphql_api, ingestion, notifications, pairing, tokens
from .http_types import Request, Response
from .state import State

RouteFunction = Callable[[State, Request], Response]


@dataclass(frozen=True)
class Route:
    """A path pattern, its route name and one function per method."""

    pattern: re.Pattern[str]
    name: str
    methods: dict[str, RouteFunction]


def _route(pattern: str, name: str, methods: dict[str, RouteFunction]) -> Route:
    return Route(re.compile(pattern), name, methods)


ROUTES: tuple[Route, ...] = (
    _route(r"/v1/?", "root", {"GET": folders.root}),
    _route(r"/v1/token/authorise/?", "authorise", {"GET": pairing.authorise_page}),
    _route(r"/v1/token/authorise/decision/?", "decision", {"POST": pairing.decision_page}),
    _route(r"/v1/token/?", "token", {"POST": tokens.token_endpoint}),
    _route(r"/v1/folders/?", "folders", {"GET": folders.list_folders}),
    _route(
        r"/v1/dataingestion/tracking/(?P<tracking_id>[^/]+)/?", "dataingestion", {"GET": ingestion.tracking}
    ),
    _route(
        r"/v1/datadelivery/(?P<folder>[^/]+)/?",
        "datadelivery",
        {"GET": delivery.delivery_get, "DELETE": delivery.delivery_delete},
    ),
    _route(r"/v1/dataingestion/(?P<folder>[^/]+)/?", "dataingestion", {"POST": ingestion.request_upload}),
    _route(
        r"/v1/notification/(?P<notification_id>[^/]+)/?",
        "notification",
        {"GET": notifications.notification_detail},
    ),
    _route(r"/v1/service/(?P<endpoint>[^/]+)/api/?", "graphql", {"POST": graphql_api.data_service}),
    _route(r"/_files/(?P<link>[^/]+)", "files", {"GET": delivery.serve_file}),
    _route(r"/_upload/(?P<slot>[^/]+)", "upload", {"PUT": ingestion.upload}),
)


def match(path: str) -> tuple[Route | None, dict[str, str]]:
    """The route whose pattern matches the whole path, with its named groups."""
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found:
            return route, found.groupdict()
    return None, {}
