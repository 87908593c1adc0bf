"""X3's live API: a GraphQL request passed to a granted folder's data service (`$urls.dataService`) with a
live token, and Sage's answer passed back as it is (docs/sage-x3.md#graphql).

Refused before anything is sent to Sage, token refresh included: a pairing not granted `api.graphQL`, a folder
the customer did not grant, a body past `MAX_BODY` or one that is no GraphQL request. Then the folder list is
read for the folder's `$urls.dataService` (followed, never built) and the request is POSTed there once, both
through `with_live_token`: a 401 on either refreshes once and retries once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

# Any: the folders as Sage's JSON lists them, checked by their readers.
from typing import Any

from x3link.budget import Budget
from x3link.data.integration import folder_name, granted
from x3link.data.session import with_live_token
from x3link.errors import BadRequest, BodyTooLarge, FolderNotGranted, ScopeNotGranted, UpstreamError
from x3link.refresh.keeper import TokenKeeper
from x3link.sage.client import SageX3Client
from x3link.tokens.model import Pairing
from x3link.web import request_json

GRAPHQL_SCOPE = "api.graphQL"
# A GraphQL request is a query and its variables, not a data transfer (files go through data ingestion).
MAX_BODY = 64 * 1024
_FIELDS = {"query", "variables", "operationName", "extensions"}


@dataclass(frozen=True)
class GraphQLAnswer:
    """Sage's answer: its status and its JSON body, as Sage wrote it."""

    status: int
    body: str


def graphql_request(raw: bytes) -> bytes:
    """The body to send: `raw` as it came, once it is a GraphQL request over HTTP within `MAX_BODY`."""
    if len(raw) > MAX_BODY:
        raise BodyTooLarge(f"A GraphQL request may be at most {MAX_BODY // 1024} KiB.")
    try:
        document = request_json.loads(raw, max_bytes=MAX_BODY)
    except request_json.NotAcceptableJson as exc:
        raise BadRequest(str(exc)) from None
    if not isinstance(document, dict) or set(document) - _FIELDS:
        raise BadRequest(
            'The body must be a GraphQL request: {"query": ..., "variables"?: {...}, "operationName"?: ...}.'
        )
    if not isinstance(document.get("query"), str) or not document["query"].strip():
        raise BadRequest("query must be a GraphQL document, a non-empty string.")
    if document.get("variables") is not None and not isinstance(document["variables"], dict):
        raise BadRequest("variables must be a JSON object.")
    if document.get("operationName") is not None and not isinstance(document["operationName"], str):
        raise BadRequest("operationName must be a string.")
    return raw


def has_scope(scope: str, wanted: str = GRAPHQL_SCOPE) -> bool:
    return wanted in scope.split()


def graphql_granted(folder: str) -> Callable[[Pairing], None]:
    """A `with_live_token` check: the pairing holds `api.graphQL` and the customer granted the folder."""
    folder_granted = granted(folder)

    def check(pairing: Pairing) -> None:
        if not has_scope(pairing.scope):
            raise ScopeNotGranted(
                f"This pairing was not granted {GRAPHQL_SCOPE}: pair the tenant again with a scope that "
                f'holds it (POST /pairings with "scope": "api.dataDelivery {GRAPHQL_SCOPE}").'
            )
        folder_granted(pairing)

    return check


def data_service_url(folders: list[Any], folder: str) -> str:
    """The folder's `$urls.dataService` in Sage's folder list; FolderNotGranted when Sage does not list it."""
    for entry in folders:
        if isinstance(entry, dict) and entry.get("name") == folder:
            urls = entry.get("$urls")
            url = urls.get("dataService") if isinstance(urls, dict) else None
            if not isinstance(url, str) or not url:
                raise UpstreamError(f"Sage X3 lists the folder {folder!r} with no data service URL.")
            return url
    raise FolderNotGranted(f"Sage X3 does not list the folder {folder!r} for this pairing.")


def query(
    tenant: str,
    folder: str,
    body: bytes,
    keeper: TokenKeeper,
    sage: SageX3Client,
    budget: Budget | None = None,
) -> GraphQLAnswer:
    """Sage's answer to a GraphQL request on a granted folder's data service."""
    folder, request = folder_name(folder), graphql_request(body)

    def send(pairing: Pairing, token: str) -> GraphQLAnswer:
        url = data_service_url(sage.folders(pairing.endpoint, token, tenant=tenant), folder)
        status, answer = sage.post_graphql(url, token, request, tenant=tenant)
        return GraphQLAnswer(status, answer)

    return with_live_token(tenant, keeper, send, budget, check=graphql_granted(folder))
