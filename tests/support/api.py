"""Calls the functions in-process exactly as API Gateway would: the template's route decides the
function, the event is a full REST proxy event (payload 1.0), the result is read as API Gateway reads it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlencode

from local import template as tpl
from local.apigw_event import Caller, HttpRequest, Stage, build_event
from local.lambda_context import for_function

STAGE = Stage(
    name="prod", domain_name="abc123.execute-api.us-east-1.amazonaws.com", account_id="123456789012"
)
SIGNED = Caller(
    source_ip="203.0.113.7", user_agent="pytest", access_key="AKIATESTING", account_id="123456789012"
)


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: str
    set_cookies: tuple[str, ...] = ()

    @property
    def json(self) -> Any:
        return json.loads(self.body)


def call(
    method: str,
    path: str,
    *,
    json_body: Any = None,
    body: bytes | str | None = None,
    query: dict[str, str] | str | None = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    for route in tpl.routes():
        match = route.pattern.match(path)
        if match and route.method == method:
            break
    else:
        raise AssertionError(f"no route for {method} {path} in template.yaml")
    raw_headers = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body)
        raw_headers.setdefault("Content-Type", "application/json")
    raw = body.encode() if isinstance(body, str) else (body or b"")
    raw_query = query if isinstance(query, str) else urlencode(query or {})
    request = HttpRequest(
        method=method, raw_path=path, raw_query=raw_query, headers=list(raw_headers.items()), body=raw
    )
    event = build_event(
        request,
        resource=route.path,
        # API Gateway hands functions their path parameters decoded.
        path_parameters={name: unquote(value) for name, value in match.groupdict().items()},
        stage=STAGE,
        caller=SIGNED,
    )
    context = for_function(route.function, region="us-east-1", account_id=STAGE.account_id)
    result = tpl.load_handler(route.function)(event, context)
    result_headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    set_cookies: list[str] = []
    for key, values in (result.get("multiValueHeaders") or {}).items():
        result_headers[key.lower()] = values[-1]
        if key.lower() == "set-cookie":
            set_cookies.extend(values)
    return Answer(
        status=result["statusCode"],
        headers=result_headers,
        body=result.get("body") or "",
        set_cookies=tuple(set_cookies),
    )


def invoke(logical_id: str, event: dict[str, Any]) -> Any:
    """A non-API function, invoked with an event as its trigger would."""
    return tpl.load_handler(logical_id)(
        event, for_function(logical_id, region="us-east-1", account_id=STAGE.account_id)
    )
