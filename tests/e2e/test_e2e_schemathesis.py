"""Schemathesis against the running stack, from the document the stack serves at /openapi.json: for every
operation that template.yaml routes, generated requests, signed as the route wants them (SigV4 for the
`AWS_IAM` routes, Sage X3's `HMAC_SHA256` for POST /notifications, nothing for the pages), never get a
5xx and get only answers the document gives (status, content type, headers, body). Besides, a signed
request is never refused by the gateway itself, and an operation that takes only path parameters answers
no 400 to values its document allows (its patterns are the handlers' own rules).

Operations the document has and template.yaml has not yet are left out, and come in as they land. The
tenant `demo` is paired before each operation, so the document's examples (`demo`, folder `SEED`) reach
the handlers' real paths and not only their refusals.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from local import api_docs
from local import template as tpl
from local.sagex3_emulator import Emulator
from tests.e2e.conftest import RunningStack, sign
from tests.support.openapi import document, routes
from tests.support.sage import CLIENT_ID

pytestmark = pytest.mark.e2e

DEMO, DEMO_CUSTOMER, DEMO_FOLDER, DEMO_FILE = "demo", "https://x3.demo.example", "SEED", "report.csv"
MAX_EXAMPLES = 25
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
TEMPLATE_AUTH = {(route.method, route.path): route.auth for route in tpl.routes()}
# In the document and routed by template.yaml: what there is to test, today.
OPERATIONS = sorted(routes() & set(TEMPLATE_AUTH), key=lambda route: (route[1], route[0]))


class SignedWithSigV4(requests.auth.AuthBase):
    """Signs the request as sent (final URL, headers and body bytes), as the app's AWS SDK would."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        assert request.method and request.url
        headers = {name: _text(value) for name, value in request.headers.items()}
        request.headers.update(sign(request.method, request.url, body=_body(request), headers=headers))
        return request


class SignedBySage(requests.auth.AuthBase):
    """Sage X3's notification signature: HMAC-SHA256 of the body keyed with the app's client id, in hex."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        digest = hmac.new(CLIENT_ID.encode(), _body(request), hashlib.sha256).hexdigest()
        request.headers["HMAC_SHA256"] = digest
        return request


def _text(value: str | bytes) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else value


def _body(request: requests.PreparedRequest) -> bytes:
    """The body as sent: Schemathesis' serialisers give requests bytes or text, never a stream."""
    body = request.body or b""
    if isinstance(body, str):
        return body.encode()
    assert isinstance(body, bytes), type(body)
    return body


def _signer(method: str, path: str) -> requests.auth.AuthBase | None:
    if TEMPLATE_AUTH[(method, path)] == "AWS_IAM":
        return SignedWithSigV4()
    if path == "/notifications":
        return SignedBySage()
    return None  # the pages a person's browser opens: /pair/{id}, /callback


def never_refused_by_the_gateway(case: schemathesis.Case, response: schemathesis.Response) -> None:
    """A signed request to a routed path is never API Gateway's own 403: the signature must pass."""
    if response.status_code == 403:
        body = json.loads(response.content or b"{}")
        assert "error" in body, f"the gateway refused a signed request: {body} ({response.request.url})"


def takes_only_path_parameters(method: str, path: str) -> bool:
    item = document()["paths"][path]
    operation = item[method.lower()]
    parameters = [api_docs.resolve(document(), raw) for raw in item.get("parameters", [])]
    parameters += [api_docs.resolve(document(), raw) for raw in operation.get("parameters", [])]
    return "requestBody" not in operation and all(parameter["in"] == "path" for parameter in parameters)


def takes_what_it_documents(case: schemathesis.Case, response: schemathesis.Response) -> None:
    """An operation that takes nothing but path parameters answers no 400 to parameters its document
    allows: the document's patterns are the handlers' own rules (tenant, folder, file name, tracking id)."""
    if response.status_code == 400:
        raise AssertionError(
            f"{case.operation.label}: 400 to path parameters the document allows, {case.path_parameters}: "
            f"{response.content[:300]!r}"
        )


def ensure_paired(stack: RunningStack, sage: Emulator) -> None:
    """`demo` paired and active (an earlier operation may have deleted or suspended it), with a file
    delivered in its folder `SEED` (the document's examples)."""
    answer = stack.call("GET", f"/tenants/{DEMO}")
    if answer.status != 200 or answer.json()["status"] != "active":
        stack.pair(DEMO, DEMO_CUSTOMER)
    sage.put_delivery_file(DEMO_CUSTOMER, DEMO_FOLDER, DEMO_FILE, b"id;amount\n1;42\n")


def cases(operation: Any, path: str) -> st.SearchStrategy[schemathesis.Case]:
    """Half the cases anywhere, half on `demo` (and its folder `SEED`), so the real paths are well trodden."""
    pinned = {"tenant": DEMO} if "{tenant}" in path else {}
    if "{folder}" in path:
        pinned["folder"] = DEMO_FOLDER
    anywhere = operation.as_strategy()
    return st.one_of(anywhere, operation.as_strategy(path_parameters=pinned)) if pinned else anywhere


@pytest.fixture(scope="module")
def api_schema(sage_stack: tuple[RunningStack, Emulator]) -> Any:
    """The document as the stack serves it, its `servers` the stack's own URL."""
    stack, _ = sage_stack
    schema = schemathesis.openapi.from_url(f"{stack.api_url}/openapi.json")
    assert schema.get_base_url().rstrip("/") == stack.api_url
    return schema


def test_the_stack_serves_the_document_it_is_tested_against(api_schema: Any) -> None:
    assert OPERATIONS, "no operation of openapi.yaml is routed by template.yaml"
    served = {(method, path) for method, path, _ in api_docs.operations(api_schema.raw_schema)}
    assert set(OPERATIONS) <= served


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_answer_is_documented_and_none_is_a_5xx(
    api_schema: Any, sage_stack: tuple[RunningStack, Emulator], method: str, path: str
) -> None:
    stack, sage = sage_stack
    ensure_paired(stack, sage)
    operation = api_schema[path][method]
    signer = _signer(method, path)
    after: list[Callable[[schemathesis.Case, schemathesis.Response], None]] = []
    if isinstance(signer, SignedWithSigV4):
        after.append(never_refused_by_the_gateway)
    if takes_only_path_parameters(method, path):
        after.append(takes_what_it_documents)

    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
        print_blob=False,
    )
    @given(case=cases(operation, path))
    def exchange(case: schemathesis.Case) -> None:
        response = case.call(auth=signer, timeout=30)
        case.validate_response(response, checks=CHECKS)
        for check in after:
            check(case, response)

    exchange()
