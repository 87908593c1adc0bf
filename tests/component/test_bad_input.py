"""No 500 for bad input: every route of template.yaml, fed random path parameters, headers, query strings
and bodies, answers below 500 and logs no ERROR line.

Hypothesis draws the requests; each is called in-process exactly as API Gateway would call the function
(tests.support.api), against the template's resources in moto and the Sage X3 emulator, with one tenant
paired so that a drawn `acme` reaches the code past the not-found checks.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from local import template as tpl
from local.apigw_event import HttpRequest, build_event
from local.aws_resources import Stack
from local.lambda_context import for_function
from local.sagex3_emulator import Emulator
from tests.support.api import SIGNED, STAGE, call
from tests.support.sage import pair
from x3link.config import TENANT_PATTERN
from x3link.errors import CallbackError
from x3link.web import request_json

ROUTES = tpl.routes()
EXAMPLES_PER_ROUTE = 100
PAIRED = "acme"

# Imported outside any capture (Powertools binds its log stream at import).
for _function in sorted({route.function for route in ROUTES}):
    tpl.load_handler(_function)

# Names the functions read, so that random values land where the parsing is.
FIELDS = (
    "tenant",
    "customer",
    "scope",
    "replace",
    "state",
    "code",
    "authorizationCode",
    "endpoint",
    "error",
    "error_description",
    "message",
    "statusCode",
)
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/octet-stream",
    "multipart/form-data; boundary=x",
    "",
)
HEADER_NAMES = (
    "Content-Type",
    "Authorization",
    "Cookie",
    "Accept",
    "Origin",
    "Referer",
    "X-Forwarded-For",
    "X-Amz-Date",
    "X-Amz-Security-Token",
    "X-Amzn-Trace-Id",
    "User-Agent",
)

texts = st.text(max_size=60)
keys = st.one_of(st.sampled_from(FIELDS), st.text(max_size=12))
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | texts,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=5),
    max_leaves=12,
)

urls = st.one_of(
    st.just("https://x3.acme.example"),
    st.builds(
        "{}://{}{}".format,
        st.sampled_from(["https", "http", "HTTPS", "ftp", "javascript", ""]),
        st.one_of(st.sampled_from(["x3.acme.example", "127.0.0.1:1", "[::1]", "[", "a:99999"]), texts),
        st.one_of(st.sampled_from(["", "/", "/v1", "/v1/", "/v1/..", "/v1%2F..", "?a=b", "#x"]), texts),
    ),
    texts,
)
# Bodies and queries close to what the routes expect, so that random values get past the first checks.
pairing_fields = st.fixed_dictionaries(
    {
        "tenant": st.one_of(st.just(PAIRED), st.from_regex(TENANT_PATTERN, fullmatch=True), texts),
        "customer": urls,
    },
    optional={
        "scope": st.one_of(st.sampled_from(["api.dataDelivery", "api.a  api.b", "folder.SEED", ""]), texts),
        "replace": json_values,
    },
)
callback_fields = st.fixed_dictionaries(
    {"state": texts},
    optional={
        "authorizationCode": texts,
        "code": texts,
        "endpoint": urls,
        "error": texts,
        "error_description": texts,
        "message": texts,
        "statusCode": st.one_of(st.integers(), texts),
    },
)


def _form(fields: dict[str, Any]) -> str:
    return urlencode({name: str(value) for name, value in fields.items()})


def _nested(depth: int, kind: str) -> str:
    return "[" * depth + "]" * depth if kind == "array" else '{"a":' * depth + "1" + "}" * depth


bodies = st.one_of(
    st.none(),
    json_values.map(json.dumps),
    st.dictionaries(keys, json_values, max_size=6).map(json.dumps),
    st.dictionaries(keys, texts, max_size=6).map(urlencode),
    st.binary(max_size=200),
    texts,
)
# JSON nested deeper than any parser's recursion, or larger than any body the bundle reads.
nested = st.builds(
    _nested,
    st.sampled_from([request_json.MAX_DEPTH + 1, 999, 1_000, 1_500, 3_000, 5_000, 7_999, 12_000]),
    st.sampled_from(["array", "object"]),
)
oversized = st.integers(request_json.MAX_BYTES - 16, request_json.MAX_BYTES + 4096).map(
    lambda size: " " * size + "{}"
)
headers = st.dictionaries(
    st.one_of(st.sampled_from(HEADER_NAMES), st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,20}", fullmatch=True)),
    st.one_of(texts, st.sampled_from(CONTENT_TYPES)),
    max_size=6,
)
queries = st.one_of(
    st.lists(st.tuples(keys, texts), max_size=6).map(urlencode),
    callback_fields.map(_form),
    st.text(max_size=80).map(lambda text: quote(text, safe="=&+%")),
)


def segments(greedy: bool) -> st.SearchStrategy[str]:
    """A path parameter as it may arrive: a tenant that exists or could, or anything at all, encoded."""
    raw = st.text(
        alphabet=st.characters(blacklist_characters="" if greedy else "/", blacklist_categories=["Cs"]),
        min_size=1,
        max_size=40,
    )
    return st.one_of(
        st.just(PAIRED),
        st.from_regex(TENANT_PATTERN, fullmatch=True),
        st.text(min_size=1, max_size=80).map(lambda text: quote(text, safe="")),
        raw.filter(lambda text: text.strip("/") != "" if greedy else True),
        st.sampled_from(["demo%2Ffolders", "..%2F..%2Fdemo", "demo%00", "~app", "-x", "%", "%zz", "."]),
    )


@st.composite
def requests_for(draw: st.DrawFn, route: tpl.Route) -> dict[str, Any]:
    path = route.path
    for name in route.pattern.groupindex:
        greedy = f"{{{name}+}}" in path
        placeholder = f"{{{name}+}}" if greedy else f"{{{name}}}"
        path = path.replace(placeholder, draw(segments(greedy)), 1)
    near_misses = {
        "/pairings": pairing_fields.map(json.dumps),
        "/callback": st.one_of(callback_fields.map(json.dumps), callback_fields.map(_form)),
    }.get(route.path, bodies)
    kind = draw(st.sampled_from(["near miss", "random", "nested", "oversized"]))
    body = draw({"near miss": near_misses, "random": bodies, "nested": nested, "oversized": oversized}[kind])
    drawn_headers = draw(headers)
    content_type = draw(st.one_of(st.sampled_from(CONTENT_TYPES), texts, st.none()))
    if content_type is not None:
        drawn_headers["Content-Type"] = content_type
    return {"path": path, "query": draw(queries), "headers": drawn_headers, "body": body}


class ErrorLines(logging.Handler):
    """Every ERROR (or worse) record, whichever logger wrote it."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def error_lines() -> Iterator[ErrorLines]:
    handler = ErrorLines()
    service = logging.getLogger("sage-x3-link")
    loggers = [logging.getLogger()] + ([] if service.propagate else [service])
    for logger in loggers:
        logger.addHandler(handler)
    try:
        yield handler
    finally:
        for logger in loggers:
            logger.removeHandler(handler)


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: f"{route.method} {route.path}")
def test_no_request_gets_a_5xx_or_logs_an_error(
    route: tpl.Route, sage: Emulator, stack: Stack, error_lines: ErrorLines
) -> None:
    pair(sage, PAIRED)

    @settings(
        max_examples=EXAMPLES_PER_ROUTE,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(request=requests_for(route))
    def answers_below_500(request: dict[str, Any]) -> None:
        error_lines.records.clear()
        answer = call(route.method, request["path"], **{k: v for k, v in request.items() if k != "path"})
        assert answer.status < 500, (answer.status, answer.body[:300])
        assert [record.getMessage() for record in error_lines.records] == []

    answers_below_500()


@pytest.mark.parametrize("depth", [request_json.MAX_DEPTH + 1, 1_000, 5_000, 10_000])
@pytest.mark.parametrize("kind", ["array", "object"])
def test_json_nested_deeply_is_a_400(
    sage: Emulator, stack: Stack, error_lines: ErrorLines, depth: int, kind: str
) -> None:
    body = _nested(depth, kind)
    json_headers = {"Content-Type": "application/json"}
    started = call("POST", "/pairings", body=body, headers=json_headers)
    assert (started.status, started.json["error"]) == (400, "bad_request"), started.body
    for callback in (
        call("POST", "/callback", body=body, headers=json_headers),
        call("POST", "/callback", body=body),  # no content type: read as JSON for its leading "{"
    ):
        assert callback.status == 400, callback.body
        assert callback.headers["content-type"].startswith("text/html")
    assert error_lines.records == []
    assert sage.requests == []


def test_json_too_large_is_a_400(sage: Emulator, stack: Stack, error_lines: ErrorLines) -> None:
    padded = json.dumps({"tenant": "acme", "customer": "https://x3.acme.example", "scope": "api.x " * 3000})
    assert len(padded) > request_json.MAX_BYTES
    started = call("POST", "/pairings", json_body=json.loads(padded))
    assert (started.status, started.json["error"]) == (400, "bad_request")
    assert "larger than" in started.json["message"]
    callback = call("POST", "/callback", body=padded, headers={"Content-Type": "application/json"})
    assert callback.status == 400
    assert error_lines.records == []


def test_json_nested_within_the_limit_is_read_and_brackets_in_strings_do_not_count() -> None:
    assert request_json.loads(_nested(request_json.MAX_DEPTH, "array")) is not None
    brackets = {"state": "[" * 5000, "code": "{" * 5000 + '\\"[['}
    assert request_json.loads(json.dumps(brackets)) == brackets
    with pytest.raises(request_json.NotAcceptableJson, match="nested"):
        request_json.loads(_nested(request_json.MAX_DEPTH + 1, "object"))
    with pytest.raises(request_json.NotAcceptableJson, match="not valid JSON"):
        request_json.loads(b"\xff{}")


def test_a_callback_body_nested_too_deep_is_a_callback_error() -> None:
    from x3link.sage.callback_params import parse_callback

    with pytest.raises(CallbackError, match="nested"):
        parse_callback({"body": _nested(100, "object"), "headers": {"Content-Type": "application/json"}})


@pytest.mark.parametrize("route", ROUTES, ids=lambda route: f"{route.method} {route.path}")
def test_a_path_that_no_route_of_the_function_matches_is_a_404(
    route: tpl.Route, sage: Emulator, stack: Stack, error_lines: ErrorLines
) -> None:
    """As behind a custom domain's base path: the function's resolver finds no route, and says 404."""
    request = HttpRequest(method=route.method, raw_path="/base/path", raw_query="", headers=[], body=b"")
    event = build_event(request, resource=route.path, path_parameters={}, stage=STAGE, caller=SIGNED)
    context = for_function(route.function, region="us-east-1", account_id=STAGE.account_id)
    result = tpl.load_handler(route.function)(event, context)
    assert result["statusCode"] == 404, result
    assert error_lines.records == []
