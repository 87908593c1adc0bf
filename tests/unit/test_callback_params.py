"""sage/callback_params.py as a pure unit: every shape of Sage X3's callback (docs/sage-x3.md#callback)."""

from __future__ import annotations

import base64
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from x3link.errors import CallbackError
from x3link.sage.callback_params import MAX_BODY_BYTES, CallbackParams, parse_callback

CODE = "c0de-Value_123"
STATE = "st4te-Value_456"
ENDPOINT = "https://api.us-prod-sagex3.com/v1"
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json"}


def event(
    *,
    query: dict[str, str] | None = None,
    body: str | bytes | None = None,
    headers: dict[str, str] | None = None,
    base64_body: bool = False,
    method: str = "POST",
) -> dict[str, Any]:
    if base64_body and body is not None:
        raw = body.encode() if isinstance(body, str) else body
        body = base64.b64encode(raw).decode("ascii")
    return {
        "httpMethod": method,
        "queryStringParameters": query,
        "headers": headers,
        "body": body,
        "isBase64Encoded": base64_body,
    }


def test_get_query_with_authorization_code() -> None:
    params = parse_callback(
        event(method="GET", query={"authorizationCode": CODE, "state": STATE, "endpoint": ENDPOINT})
    )
    assert params == CallbackParams(state=STATE, code=CODE, endpoint=ENDPOINT)


def test_get_query_with_code_as_sages_sample_app() -> None:
    params = parse_callback(event(method="GET", query={"code": CODE, "state": STATE}))
    assert (params.code, params.state, params.endpoint) == (CODE, STATE, None)


def test_authorization_code_wins_over_code() -> None:
    params = parse_callback(event(query={"authorizationCode": CODE, "code": "other", "state": STATE}))
    assert params.code == CODE


@pytest.mark.parametrize(
    "content_type",
    [
        "application/x-www-form-urlencoded",
        "application/x-www-form-urlencoded; charset=UTF-8",
        "APPLICATION/X-WWW-FORM-URLENCODED",
    ],
)
def test_post_form(content_type: str) -> None:
    body = urlencode({"authorizationCode": CODE, "state": STATE, "endpoint": ENDPOINT})
    params = parse_callback(event(body=body, headers={"Content-Type": content_type}))
    assert params == CallbackParams(state=STATE, code=CODE, endpoint=ENDPOINT)


def test_post_form_decodes_percent_and_plus() -> None:
    body = urlencode({"authorizationCode": "a+b/c=d&e", "state": STATE, "error_description": "x y"})
    params = parse_callback(event(body=body, headers=FORM))
    assert params.code == "a+b/c=d&e"
    assert params.error_description == "x y"


@pytest.mark.parametrize(
    "headers",
    [JSON, {"content-type": "application/json; charset=utf-8"}, {"CONTENT-TYPE": "Application/JSON"}, None],
    ids=["json", "lower-case header with charset", "upper-case header", "no content type"],
)
def test_post_json(headers: dict[str, str] | None) -> None:
    body = json.dumps({"authorizationCode": CODE, "state": STATE, "endpoint": ENDPOINT})
    params = parse_callback(event(body=body, headers=headers))
    assert params == CallbackParams(state=STATE, code=CODE, endpoint=ENDPOINT)


def test_json_numbers_are_read_as_text() -> None:
    params = parse_callback(
        event(body=json.dumps({"state": STATE, "error": "x", "statusCode": 404}), headers=JSON)
    )
    assert params.status_code == "404"


def test_json_values_that_are_not_text_are_absent() -> None:
    body = json.dumps({"authorizationCode": ["c"], "state": {"s": 1}, "error": True})
    params = parse_callback(event(body=body, headers=JSON))
    assert (params.code, params.state, params.error) == (None, None, None)


@pytest.mark.parametrize("endpoint", [{"url": ENDPOINT}, [ENDPOINT], 1, True])
def test_json_endpoint_that_is_not_text_is_refused(endpoint: Any) -> None:
    body = json.dumps({"authorizationCode": CODE, "state": STATE, "endpoint": endpoint})
    with pytest.raises(CallbackError):
        parse_callback(event(body=body, headers=JSON))


@pytest.mark.parametrize("headers", [FORM, JSON], ids=["form", "json"])
def test_base64_encoded_body(headers: dict[str, str]) -> None:
    fields = {"authorizationCode": CODE, "state": STATE, "endpoint": ENDPOINT}
    body = urlencode(fields) if headers is FORM else json.dumps(fields)
    params = parse_callback(event(body=body, headers=headers, base64_body=True))
    assert params == CallbackParams(state=STATE, code=CODE, endpoint=ENDPOINT)


@pytest.mark.parametrize("body", ["not base64!", "YWJ", "@@@@", "YQ", "YW Jj"])
def test_bad_base64_is_refused(body: str) -> None:
    broken = event(headers=FORM)
    broken.update(body=body, isBase64Encoded=True)
    with pytest.raises(CallbackError) as refused:
        parse_callback(broken)
    assert refused.value.status == 400


@pytest.mark.parametrize(
    "body", ['{"state": "x",', "{", '{"state": }', "{'state': 'x'}", "[1, 2]", '"text"', "null", "42"]
)
def test_bad_json_is_refused(body: str) -> None:
    with pytest.raises(CallbackError) as refused:
        parse_callback(event(body=body, headers=JSON))
    assert refused.value.status == 400


def test_body_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(CallbackError):
        parse_callback(event(body=b"state=\xff\xfe", headers=FORM, base64_body=True))


def test_oversized_body_is_refused() -> None:
    padding = "x" * MAX_BODY_BYTES
    with pytest.raises(CallbackError, match="large"):
        parse_callback(event(body=urlencode({"state": STATE, "code": CODE, "pad": padding}), headers=FORM))


def test_oversized_base64_body_is_refused() -> None:
    padding = "x" * MAX_BODY_BYTES
    with pytest.raises(CallbackError, match="large"):
        parse_callback(event(body=f"state={STATE}&pad={padding}", headers=FORM, base64_body=True))


def test_body_at_the_limit_is_read() -> None:
    head = f"state={STATE}&code={CODE}&pad="
    body = head + "x" * (MAX_BODY_BYTES - len(head))
    assert len(body.encode()) == MAX_BODY_BYTES
    params = parse_callback(event(body=body, headers=FORM))
    assert (params.state, params.code) == (STATE, CODE)


def test_body_completes_the_query_and_wins_over_it() -> None:
    params = parse_callback(
        event(
            query={"state": "from-query", "endpoint": ENDPOINT},
            body=urlencode({"state": STATE, "authorizationCode": CODE}),
            headers=FORM,
        )
    )
    assert (params.state, params.code, params.endpoint) == (STATE, CODE, ENDPOINT)


def test_error_callback() -> None:
    params = parse_callback(
        event(
            body=urlencode(
                {
                    "error": "access_denied",
                    "error_description": "The X3 user rejected it.",
                    "statusCode": "403",
                    "state": STATE,
                }
            ),
            headers=FORM,
        )
    )
    assert params == CallbackParams(
        state=STATE,
        error="access_denied",
        error_description="The X3 user rejected it.",
        status_code="403",
    )


def test_error_message_alias() -> None:
    params = parse_callback(event(query={"error": "not_found", "message": "Customer not found"}))
    assert params.error_description == "Customer not found"


def test_empty_event() -> None:
    assert parse_callback({}) == CallbackParams(state=None)
    assert parse_callback(event(method="GET")) == CallbackParams(state=None)


def test_blank_values_are_absent_and_state_and_code_are_trimmed() -> None:
    params = parse_callback(
        event(query={"state": f"  {STATE}\n", "authorizationCode": "   ", "code": f" {CODE} ", "error": ""})
    )
    assert params.state == STATE
    assert params.code == CODE
    assert params.error is None


def test_endpoint_is_kept_exactly_as_sent() -> None:
    # The allow-list check is exact, so padding must reach it rather than be trimmed away here.
    params = parse_callback(event(query={"state": STATE, "code": CODE, "endpoint": f" {ENDPOINT}\t"}))
    assert params.endpoint == f" {ENDPOINT}\t"
    assert parse_callback(event(query={"state": STATE, "endpoint": ""})).endpoint is None


def test_repr_hides_the_code() -> None:
    params = parse_callback(event(query={"authorizationCode": CODE, "state": STATE}))
    assert CODE not in repr(params)
    assert CODE not in str(params)
