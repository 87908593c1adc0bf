"""Which function answers which method and path, and under which route name.

Why: one table shows the whole gateway surface at a glance; route names are the ones `fail_next` and
`count` use. A route's name goes with its path whatever the method, so a request with the wrong method is
logged, counted and failed under its route's name before it is answered 405.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Response

from . import delivery, folders, graphql_api, ingestion, notifications, pairing, tokens
from .state import State
from .web import GatewayRequest

RouteFunction = Callable[[State, GatewayRequest], Response]


@dataclass(frozen=True, eq=False)  # hashed by identity: werkzeug indexes rules by endpoint
class Route:
    """A route name and one function per method: the endpoint of a path's rule."""

    name: str
    methods: dict[str, RouteFunction]


def _rule(path: str, name: str, methods: dict[str, RouteFunction], strict_slashes: bool = False) -> Rule:
    return Rule(path, endpoint=Route(name, methods), strict_slashes=strict_slashes)


# A trailing slash is optional under /v1 (as at the gateway), refused on the presigned-like links (as at
# S3); `<name>` is one path segment. Two slashes in a row match nothing rather than redirect.
ROUTES = Map(
    [
        _rule("/v1/", "root", {"GET": folders.root}),
        _rule("/v1/token/authorise", "authorise", {"GET": pairing.authorise_page}),
        _rule("/v1/token/authorise/decision", "decision", {"POST": pairing.decision_page}),
        _rule("/v1/token", "token", {"POST": tokens.token_endpoint}),
        _rule("/v1/folders", "folders", {"GET": folders.list_folders}),
        _rule("/v1/dataingestion/tracking/<tracking_id>", "dataingestion", {"GET": ingestion.tracking}),
        _rule(
            "/v1/datadelivery/<folder>",
            "datadelivery",
            {"GET": delivery.delivery_get, "DELETE": delivery.delivery_delete},
        ),
        _rule("/v1/dataingestion/<folder>", "dataingestion", {"POST": ingestion.request_upload}),
        _rule(
            "/v1/notification/<notification_id>", "notification", {"GET": notifications.notification_detail}
        ),
        _rule("/v1/service/<endpoint>/api", "graphql", {"POST": graphql_api.data_service}),
        _rule("/_files/<link>", "files", {"GET": delivery.serve_file}, strict_slashes=True),
        _rule("/_upload/<slot>", "upload", {"PUT": ingestion.upload}, strict_slashes=True),
    ],
    strict_slashes=False,
    merge_slashes=False,
)
