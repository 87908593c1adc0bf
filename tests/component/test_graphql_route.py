"""POST /tenants/{tenant}/folders/{folder}/graphql: a GraphQL request passed to the folder's
`$urls.dataService` with a live token, Sage's answer passed back as it is (the emulator's data service)."""

from __future__ import annotations

import json
from typing import Any

from local import template as tpl
from local.aws_resources import Stack
from local.sagex3_emulator import Emulator
from tests.support.api import Answer, call
from tests.support.keeper import stored
from tests.support.sage import pair
from x3link import wiring
from x3link.data.live_api import MAX_BODY
from x3link.endpoints import EndpointPolicy
from x3link.sage.client import SageX3Client

ACME = "https://x3.acme.example"
SCOPE = "api.dataDelivery api.graphQL"
CUSTOMERS = (
    "{ x3MasterData { customer { query(first: 2) { edges { node { code companyName } } totalCount } } } }"
)

for _function in (
    "PairingStartFunction",
    "PairLinkFunction",
    "CallbackFunction",
    "TenantsFunction",
    "FoldersFunction",
):
    tpl.load_handler(_function)


def _graphql(body: Any, folder: str = "SEED", tenant: str = "acme") -> Answer:
    raw = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return call(
        "POST",
        f"/tenants/{tenant}/folders/{folder}/graphql",
        body=raw,
        headers={"Content-Type": "application/json"},
    )


def _paired(sage: Emulator, scope: str = SCOPE, folders: list[str] | None = None) -> None:
    pair(sage, "acme", ACME, folders=folders or ["SEED"], scope=scope)
    sage.clear_requests()


def _sent(sage: Emulator) -> list[str]:
    return [entry["route"] for entry in sage.requests]


def test_a_query_is_answered_with_sages_answer_as_it_is(sage: Emulator, stack: Stack) -> None:
    _paired(sage)

    answer = _graphql({"query": CUSTOMERS})

    assert answer.status == 200, answer.body
    assert answer.json == {
        "data": {
            "x3MasterData": {
                "customer": {
                    "query": {
                        "edges": [
                            {"node": {"code": "C001", "companyName": "Acme"}},
                            {"node": {"code": "C002", "companyName": "Globex"}},
                        ],
                        "totalCount": 3,
                    }
                }
            }
        }
    }
    assert _sent(sage) == ["folders", "graphql"]  # the folder's dataService, followed as Sage lists it
    graphql = next(entry for entry in sage.requests if entry["route"] == "graphql")
    assert graphql["path"] == "/v1/service/X3CLOUDV2_SEED/api"
    assert graphql["json"] == {"query": CUSTOMERS}  # the request as the app sent it
    assert graphql["headers"]["Authorization"] == f"Bearer {stored('acme').access_token}"


def test_variables_and_a_graphql_error_pass_through(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    read = (
        "query One($id: String!) { x3Sales { salesOrder { read(_id: $id) { id soldToCustomer { code } } } } }"
    )

    found = _graphql({"query": read, "variables": {"id": "SO0002"}, "operationName": "One"})
    invalid = _graphql({"query": "{ x3MasterData { supplier { query { totalCount } } } }"})

    assert found.status == 200, found.body
    assert found.json == {
        "data": {"x3Sales": {"salesOrder": {"read": {"id": "SO0002", "soldToCustomer": {"code": "C002"}}}}}
    }
    # Sage's refusal of the query itself is its answer, status and body: no error of the bundle's
    assert invalid.status == 400, invalid.body
    assert "supplier" in invalid.json["errors"][0]["message"] and "error" not in invalid.json


def test_a_401_refreshes_once_and_retries_once(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    old = stored("acme").access_token
    sage.fail_next("graphql", status=401)

    answer = _graphql({"query": CUSTOMERS})

    assert answer.status == 200, answer.body
    assert _sent(sage) == ["folders", "graphql", "refresh", "folders", "graphql"]
    bearers = [e["headers"]["Authorization"] for e in sage.requests if e["route"] == "graphql"]
    assert bearers == [f"Bearer {old}", f"Bearer {stored('acme').access_token}"]
    assert stored("acme").access_token != old


def test_a_second_401_is_502_and_not_a_third_try(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    sage.fail_next("graphql", status=401, count=2)

    answer = _graphql({"query": CUSTOMERS})

    assert (answer.status, answer.json["error"]) == (502, "upstream_error"), answer.body
    assert sage.count("graphql") == 2 and sage.count("refresh") == 1


def test_without_the_scope_403_scope_not_granted_and_nothing_sent(sage: Emulator, stack: Stack) -> None:
    _paired(sage, scope="api.dataDelivery")

    answer = _graphql({"query": CUSTOMERS})

    assert (answer.status, answer.json["error"]) == (403, "scope_not_granted"), answer.body
    assert "api.graphQL" in answer.json["message"]
    assert sage.requests == []  # not even a refresh


def test_a_folder_not_granted_is_403_folder_not_granted_and_nothing_sent(
    sage: Emulator, stack: Stack
) -> None:
    _paired(sage, folders=["SEED"])

    answer = _graphql({"query": CUSTOMERS}, folder="X3")

    assert (answer.status, answer.json["error"]) == (403, "folder_not_granted"), answer.body
    assert sage.requests == []


def test_sages_quota_is_429_with_its_retry_after(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    sage.fail_next("graphql", status=429, retry_after=3600)

    answer = _graphql({"query": CUSTOMERS})

    assert (answer.status, answer.json["error"]) == (429, "quota_exceeded"), answer.body
    assert answer.headers["retry-after"] == "3600"
    assert sage.count("graphql") == 1  # a request is sent once: a mutation must not run twice


def test_a_sage_failure_is_502(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    sage.fail_next("graphql", status=500)

    answer = _graphql({"query": CUSTOMERS})

    assert (answer.status, answer.json["error"]) == (502, "upstream_error"), answer.body
    assert sage.count("graphql") == 1


def test_bodies_that_are_no_graphql_request_are_400_and_nothing_sent(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    for body in (
        "",
        "not json",
        "[]",
        {"query": ""},
        {"query": 1},
        {"query": "{ a }", "variables": []},
        {"q": "{ a }"},
    ):
        answer = _graphql(body)
        assert (answer.status, answer.json["error"]) == (400, "bad_request"), (body, answer.body)
    assert sage.requests == []


def test_a_body_past_the_cap_is_413_and_nothing_sent(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    padding = " " * MAX_BODY

    answer = _graphql(json.dumps({"query": CUSTOMERS + padding}))

    assert (answer.status, answer.json["error"]) == (413, "body_too_large"), answer.body
    assert "64 KiB" in answer.json["message"]
    assert sage.requests == []


class ListsAnotherHost(SageX3Client):
    """A Sage whose folder list names a data service on a host off the allowed gateways."""

    def folders(self, base_url: str, access_token: str, *, tenant: str | None = None) -> list[Any]:
        super().folders(base_url, access_token, tenant=tenant)
        return [
            {"name": "SEED", "$urls": {"dataService": "http://127.0.0.1:9/v1/service/X3CLOUDV2_SEED/api"}}
        ]


def test_a_data_service_off_the_allowed_gateways_is_sent_nothing(sage: Emulator, stack: Stack) -> None:
    _paired(sage)
    settings = wiring.settings()
    policy = EndpointPolicy(settings.sage_x3_url, settings.allowed_endpoints)

    with wiring.override(sage_client=lambda: ListsAnotherHost(policy=policy)):
        answer = _graphql({"query": CUSTOMERS})

    assert (answer.status, answer.json["error"]) == (502, "endpoint_not_allowed"), answer.body
    assert _sent(sage) == ["folders"]  # the token went to the listed URL never
