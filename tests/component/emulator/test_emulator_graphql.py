"""The emulator's GraphQL data service (`POST {base}/service/{endPoint}/api`, a folder's `$urls.dataService`):
real GraphQL on a few X3 business objects, to a token granted `api.graphQL` and the folder only."""

from __future__ import annotations

from typing import Any

from tests.component.emulator.conftest import Reply, Sage, call

SCOPE = "api.dataDelivery api.graphQL"
PAGE = (
    "query($after: String) { x3MasterData { customer { query(first: 2, after: $after) {"
    " edges { node { code } cursor } pageInfo { hasNextPage endCursor } } } } }"
)


def _data_service(sage: Sage, token: str, folder: str = "SEED") -> str:
    folders = call("GET", sage.url("/folders"), token=token).json()["folders"]
    return next(entry["$urls"]["dataService"] for entry in folders if entry["name"] == folder)


def _post(url: str, token: str, body: Any) -> Reply:
    return call("POST", url, json_body=body, token=token)


def test_a_query_pages_through_customers(sage: Sage) -> None:
    token = sage.pair(folders=["SEED"], scope=SCOPE)["access_token"]
    url = _data_service(sage, token)

    first = _post(url, token, {"query": PAGE})
    cursor = first.json()["data"]["x3MasterData"]["customer"]["query"]["pageInfo"]["endCursor"]
    second = _post(url, token, {"query": PAGE, "variables": {"after": cursor}})

    assert url == sage.url("/service/X3CLOUDV2_SEED/api")
    page = first.json()["data"]["x3MasterData"]["customer"]["query"]
    assert [edge["node"]["code"] for edge in page["edges"]] == ["C001", "C002"]
    assert page["pageInfo"]["hasNextPage"] is True
    rest = second.json()["data"]["x3MasterData"]["customer"]["query"]
    assert [edge["node"]["code"] for edge in rest["edges"]] == ["C003"]
    assert rest["pageInfo"]["hasNextPage"] is False


def test_a_query_that_does_not_validate_is_400_with_graphql_errors(sage: Sage) -> None:
    token = sage.pair(folders=["SEED"], scope=SCOPE)["access_token"]
    url = _data_service(sage, token)

    bodies: list[dict[str, Any]] = [{"query": "{ nothing }"}, {"query": "{"}, {"variables": {}}]
    for body in bodies:
        answer = _post(url, token, body)
        assert answer.status == 400, body
        assert answer.json()["errors"][0]["message"]


def test_a_token_without_the_scope_or_the_folder_is_403(sage: Sage) -> None:
    without = sage.pair(folders=["SEED"])["access_token"]
    other = sage.pair(folders=["X3"], scope=SCOPE)["access_token"]

    assert _post(sage.url("/service/X3CLOUDV2_SEED/api"), without, {"query": "{ __typename }"}).status == 403
    assert _post(sage.url("/service/X3CLOUDV2_SEED/api"), other, {"query": "{ __typename }"}).status == 403
    assert _post(sage.url("/service/X3CLOUDV2_X3/api"), other, {"query": "{ __typename }"}).status == 200
    assert _post(sage.url("/service/X3CLOUDV2_X3/api"), "nope", {"query": "{ __typename }"}).status == 401
