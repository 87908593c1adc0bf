"""openapi.yaml as the tests read it: its routes, and whether an answer is one the document gives for the
request that got it (a documented status, its required headers, its content type, a body its schema takes).
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any
from urllib.parse import urlsplit

from jsonschema import Draft202012Validator
from referencing import Registry
from referencing.jsonschema import DRAFT202012

from local import api_docs
from local.template import Route
from tests.support.api import Answer

# The document's own URI, so that a schema's `#/components/...` resolves inside it.
BASE_URI = "urn:x3link:openapi"


@cache
def document() -> dict[str, Any]:
    return api_docs.load()


def routes() -> set[tuple[str, str]]:
    """(METHOD, path) of every documented operation."""
    return {(method, path) for method, path, _ in api_docs.operations(document())}


@cache
def _registry() -> Registry:
    return Registry().with_resource(BASE_URI, DRAFT202012.create_resource(document()))


def _escape(part: str) -> str:
    return part.replace("~", "~0").replace("/", "~1")


def path_of(method: str, path: str) -> str:
    """The documented path a request's path is (literal paths before `{param}` ones, as API Gateway)."""
    raw = urlsplit(path).path
    paths = document()["paths"]
    for template in sorted(paths, key=lambda p: (p.count("{"), -len(p))):
        if method.lower() in paths[template] and Route(method, template, "", "").pattern.match(raw):
            return template
    raise AssertionError(f"{method} {raw} is no operation of openapi.yaml")


def response_of(method: str, template: str, status: int) -> tuple[str, dict[str, Any]]:
    """The JSON pointer and object of the response documented for `status` (exact, `2XX`, `default`)."""
    responses = document()["paths"][template][method.lower()]["responses"]
    key = next((k for k in (str(status), f"{status // 100}XX", "default") if k in responses), None)
    if key is None:
        raise AssertionError(f"{method} {template} documents no {status} (only {', '.join(responses)})")
    pointer = f"/paths/{_escape(template)}/{method.lower()}/responses/{key}"
    response = responses[key]
    while "$ref" in response:  # a shared response: its pointer is where it is defined
        pointer = response["$ref"].removeprefix("#")
        response = api_docs.resolve(document(), {"$ref": response["$ref"]})
    return pointer, response


def schema_errors(pointer: str, instance: Any) -> list[str]:
    """What the schema at `pointer` (in the document) finds wrong with `instance`; [] when it takes it."""
    validator = Draft202012Validator(
        {"$ref": f"{BASE_URI}#{pointer}"},
        registry=_registry(),
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '(body)'}: {error.message}"
        for error in validator.iter_errors(instance)
    ]


def answer_problems(method: str, path: str, answer: Answer) -> list[str]:
    """Every way `answer` differs from what openapi.yaml gives for `method path` ([] when none)."""
    template = path_of(method, path)
    where = f"{method} {template} -> {answer.status}"
    try:
        pointer, response = response_of(method, template, answer.status)
    except AssertionError as exc:
        return [str(exc)]
    problems = []
    headers = {name.lower(): value for name, value in answer.headers.items()}
    for name, header in response.get("headers", {}).items():
        if api_docs.resolve(document(), header).get("required") and name.lower() not in headers:
            problems.append(f"{where}: no {name} header")
    content = response.get("content", {})
    if not content:
        if answer.body:
            problems.append(f"{where}: a body where the document gives none: {answer.body[:200]!r}")
        return problems
    media_type = headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type not in content:
        return [*problems, f"{where}: Content-Type {media_type or 'none'!r}, not one of {', '.join(content)}"]
    if "schema" not in content[media_type]:
        return problems
    if media_type == "application/json" or media_type.endswith("+json"):
        try:
            body: Any = json.loads(answer.body)
        except ValueError:
            return [*problems, f"{where}: the body is not JSON: {answer.body[:200]!r}"]
    else:
        body = answer.body
    schema_pointer = f"{pointer}/content/{_escape(media_type)}/schema"
    problems.extend(f"{where}: {problem}" for problem in schema_errors(schema_pointer, body))
    return problems


def assert_documented(method: str, path: str, answer: Answer) -> Answer:
    """`answer`, once it is shown to be one openapi.yaml gives for `method path`."""
    problems = answer_problems(method, path, answer)
    assert not problems, "\n".join([*problems, f"body: {answer.body[:500]}"])
    return answer


def error_codes(response: dict[str, Any]) -> set[str]:
    """The `error` codes a documented response allows (its `const` or `enum`), through `anyOf`/`oneOf`."""
    codes: set[str] = set()
    for media in response.get("content", {}).values():
        stack = [media.get("schema", {})]
        while stack:
            schema = stack.pop()
            error = schema.get("properties", {}).get("error", {})
            codes.update([error["const"]] if "const" in error else error.get("enum", []))
            stack.extend(schema.get("anyOf", []) + schema.get("oneOf", []))
    return codes
