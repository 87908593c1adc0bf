"""openapi.yaml: a valid OpenAPI 3.1 document whose routes are template.yaml's and docs/api.md's, signed
where the template signs them, with x3link.errors' codes (the handlers' answers checked against it:
tests/component/test_openapi.py).

The routes other engineers are adding (GET /tenants, the data delivery and ingestion routes, POST
/notifications) are in the document already: until they are in template.yaml and docs/api.md too, the
tests that compare the three fail, and that is their point.
"""

from __future__ import annotations

import inspect
import itertools
import json
import re
from collections.abc import Iterator
from typing import Any

from openapi_spec_validator import validate
from openapi_spec_validator.versions.shortcuts import get_spec_version

from local import api_docs
from local import template as tpl
from local.template import ROOT
from tests.support.api import Answer
from tests.support.contract import TENANT_FIELDS
from tests.support.openapi import (
    answer_problems,
    document,
    error_codes,
    response_of,
    routes,
)
from x3link import errors
from x3link.config import TENANT_PATTERN

ACME = "https://x3.acme.example"
SIGV4 = "sigv4"
# A `METHOD /path` in an API table row's first cell, e.g. | `GET /tenants/{tenant}` | ... |
README_ROW = re.compile(r"^\|\s*`(?P<method>[A-Z]+) (?P<path>/[^`\s]*)`\s*\|")


def _security(operation: dict[str, Any]) -> list[dict[str, list[str]]]:
    """The operation's security requirements: its own, else the document's."""
    security: list[dict[str, list[str]]] = operation.get("security", document().get("security", []))
    return security


def _template_routes() -> dict[tuple[str, str], tpl.Route]:
    return {(route.method, route.path): route for route in tpl.routes()}


def _readme_api_routes() -> list[tuple[str, str]]:
    """The routes of docs/api.md's "The API" table, one `METHOD /path` per row."""
    text = (ROOT / "docs" / "api.md").read_text(encoding="utf-8")
    section = text.split("# The API\n", 1)[1].lstrip("\n")
    table = list(itertools.takewhile(lambda line: line.startswith("|"), section.splitlines()))
    assert table[:2] == ["| route | does |", "| --- | --- |"], table[:2]
    found = []
    for row in table[2:]:
        matched = README_ROW.match(row)
        assert matched, f"docs/api.md's table: a row not of the form | `METHOD /path` | does |: {row[:80]}"
        found.append((matched["method"], matched["path"]))
    return found


# ---------------------------------------------------------------------------------------------- the document
def test_the_document_is_valid_openapi_3_1() -> None:
    assert document()["openapi"].startswith("3.1.")
    assert get_spec_version(document()).major == "3" and get_spec_version(document()).minor == "1"
    validate(document())  # raises with the first error it finds


def test_its_routes_are_exactly_template_yamls() -> None:
    documented, deployed = routes(), set(_template_routes())
    assert documented - deployed == set(), "in openapi.yaml, not in template.yaml"
    assert deployed - documented == set(), "in template.yaml, not in openapi.yaml"


def test_a_route_is_signed_exactly_where_the_template_says_aws_iam() -> None:
    deployed = _template_routes()
    for method, path, operation in api_docs.operations(document()):
        route = deployed.get((method, path))
        if route is None:
            continue  # reported by the test above
        schemes = {name for requirement in _security(operation) for name in requirement}
        expected = {SIGV4} if route.auth == "AWS_IAM" else set()
        assert schemes == expected, f"{method} {path}: security {schemes or 'none'}, template {route.auth}"


def test_every_signed_route_documents_api_gateways_403() -> None:
    for method, path, operation in api_docs.operations(document()):
        if _security(operation):
            _, response = response_of(method, path, 403)
            schemas = response["content"]["application/json"]["schema"]
            refs = [schemas.get("$ref")] + [option.get("$ref") for option in schemas.get("anyOf", [])]
            assert "#/components/schemas/GatewayRefusal" in refs, f"{method} {path}"


def test_the_sigv4_scheme_is_api_gateways_aws_iam() -> None:
    scheme = document()["components"]["securitySchemes"][SIGV4]
    assert (scheme["type"], scheme["in"], scheme["name"]) == ("apiKey", "header", "Authorization")
    assert scheme["x-amazon-apigateway-authtype"] == "awsSigv4"
    assert document()["security"] == [{SIGV4: []}]


def test_path_parameters_are_declared_and_tenant_has_the_pairings_pattern() -> None:
    tenant = document()["components"]["schemas"]["TenantId"]
    assert tenant["pattern"] == TENANT_PATTERN.pattern
    for path, item in document()["paths"].items():
        named = set(re.findall(r"\{([^}]+)\}", path))
        for method, operation in item.items():
            if method not in api_docs.METHODS:
                continue
            declared = {
                parameter["name"]: parameter
                for parameter in (
                    api_docs.resolve(document(), raw)
                    for raw in [*item.get("parameters", []), *operation.get("parameters", [])]
                )
                if parameter["in"] == "path"
            }
            assert set(declared) == named, f"{method.upper()} {path}"
            assert all(parameter["required"] for parameter in declared.values())
            if "tenant" in declared:
                assert declared["tenant"]["schema"] == {"$ref": "#/components/schemas/TenantId"}


def test_the_tenant_view_has_exactly_the_contracts_fields() -> None:
    view = document()["components"]["schemas"]["TenantView"]
    assert set(view["required"]) == TENANT_FIELDS
    assert set(view["properties"]) == TENANT_FIELDS | {"last_refusal", "next_attempt_at"}
    assert view["additionalProperties"] is False  # nothing else, token material least of all


def _json_error_classes() -> Iterator[type[errors.X3LinkError]]:
    """Every error a JSON route can answer (the callback's own errors are pages)."""
    for _, value in inspect.getmembers(errors, inspect.isclass):
        if issubclass(value, errors.X3LinkError) and not issubclass(value, errors.CallbackError):
            yield value


def test_its_error_codes_are_errors_py_s_with_their_statuses() -> None:
    status_of = {cls.code: cls.status for cls in _json_error_classes()}
    documented: set[str] = set()
    for method, path, operation in api_docs.operations(document()):
        for status, raw in operation["responses"].items():
            codes = error_codes(api_docs.resolve(document(), raw))
            documented |= codes
            for code in codes:
                assert code in status_of, f"{method} {path} {status}: {code!r} is no code of x3link.errors"
                assert str(status_of[code]) == status, f"{method} {path}: {code} is {status_of[code]}"
    # `not_found` answers only a path no route matches, which API Gateway never sends to a function.
    assert set(status_of) - {"not_found"} <= documented, "codes of x3link.errors no route documents"


def test_the_readme_api_table_lists_exactly_the_documents_routes() -> None:
    listed = _readme_api_routes()
    assert len(listed) == len(set(listed)), "a route listed twice in docs/api.md's API table"
    assert set(listed) - routes() == set(), "in docs/api.md's API table, not in openapi.yaml"
    assert routes() - set(listed) == set(), "in openapi.yaml, not in docs/api.md's API table"


def test_an_answer_the_document_does_not_give_is_told_apart() -> None:
    json_type = {"content-type": "application/json"}
    view = {field: None for field in TENANT_FIELDS} | {"tenant": "acme", "status": "active", "folders": []}
    view |= {"customer": ACME, "scope": "api.dataDelivery", "endpoint": "https://x"}
    assert answer_problems("GET", "/tenants/acme", Answer(200, json_type, json.dumps(view))) == []

    wrong = {
        "an undocumented status": Answer(418, json_type, "{}"),
        "another content type": Answer(200, {"content-type": "text/plain"}, json.dumps(view)),
        "a field too many": Answer(200, json_type, json.dumps(view | {"refresh_token": "x"})),
        "a field too few": Answer(200, json_type, json.dumps({"tenant": "acme"})),
        "another error code": Answer(404, json_type, '{"error": "no_such_thing", "message": "m"}'),
        "no JSON": Answer(404, json_type, "Not Found"),
        "a body on a 204": Answer(204, {}, "gone"),
    }
    for what, answer in wrong.items():
        method = "DELETE" if answer.status == 204 else "GET"
        assert answer_problems(method, "/tenants/acme", answer), what
    assert answer_problems("GET", "/pair/x", Answer(303, {}, "")) == [
        "GET /pair/{id} -> 303: no Location header"
    ]
