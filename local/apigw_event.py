"""API Gateway REST proxy integration, payload 1.0, both ways: the event a handler receives for an HTTP
request, and the HTTP response API Gateway makes of the handler's result."""

from __future__ import annotations

import base64
import binascii
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, unquote

LOCAL_USER_ID = "AIDACKCEVSQ6C2EXAMPLE"
_TEXT_TYPES = (
    "application/json",
    "application/x-www-form-urlencoded",
    "application/xml",
    "application/javascript",
    "application/graphql",
)
# Set by the HTTP layer, not by the function (API Gateway ignores or rewrites these as well).
_HOP_BY_HOP = {"connection", "content-length", "transfer-encoding", "keep-alive", "upgrade"}


@dataclass(frozen=True)
class Caller:
    """Who signed the request (None fields for unsigned routes), for `requestContext.identity`."""

    source_ip: str
    user_agent: str | None
    access_key: str | None = None
    account_id: str | None = None


@dataclass(frozen=True)
class HttpRequest:
    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes
    protocol: str = "HTTP/1.1"


@dataclass(frozen=True)
class Stage:
    """Where the API is, as `requestContext` names it."""

    name: str
    domain_name: str
    account_id: str
    api_id: str = "local"


@dataclass
class HttpResponse:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


class MalformedProxyResponse(Exception):
    """The handler returned something API Gateway cannot turn into a response (it answers 502)."""


def is_text(content_type: str | None) -> bool:
    """Whether a body of this type goes to the function as text rather than base64."""
    if not content_type:
        return True
    media = content_type.split(";", 1)[0].strip().lower()
    return (
        media.startswith("text/") or media in _TEXT_TYPES or media.endswith("+json") or media.endswith("+xml")
    )


def _group(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    spelling: dict[str, str] = {}
    for name, value in pairs:
        key = spelling.setdefault(name.lower(), name)
        grouped.setdefault(key, []).append(value)
    return grouped


def _with_forwarding(headers: list[tuple[str, str]], source_ip: str, port: str) -> list[tuple[str, str]]:
    """API Gateway adds X-Forwarded-For/-Port/-Proto and a trace id before the function sees a request."""
    names = {name.lower() for name, _ in headers}
    added = list(headers)
    forwarded = [value for name, value in headers if name.lower() == "x-forwarded-for"]
    added = [(n, v) for n, v in added if n.lower() != "x-forwarded-for"]
    added.append(("X-Forwarded-For", ", ".join([*forwarded, source_ip])))
    if "x-forwarded-port" not in names:
        added.append(("X-Forwarded-Port", port))
    if "x-forwarded-proto" not in names:
        added.append(("X-Forwarded-Proto", "http"))
    if "x-amzn-trace-id" not in names:
        added.append(("X-Amzn-Trace-Id", f"Root=1-{int(time.time()):08x}-{uuid.uuid4().hex[:24]}"))
    return added


def build_event(
    request: HttpRequest,
    *,
    resource: str,
    path_parameters: Mapping[str, str],
    stage: Stage,
    caller: Caller,
    request_id: str | None = None,
) -> dict[str, Any]:
    """The proxy event of `request`, matched to the template route `resource`."""
    now = datetime.now(UTC)
    port = stage.domain_name.rpartition(":")[2] or "80"
    headers = _with_forwarding(request.headers, caller.source_ip, port)
    multi_headers = _group(headers)
    query_pairs = parse_qsl(request.raw_query, keep_blank_values=True)
    multi_query = _group(query_pairs) if query_pairs else None
    content_type = next((v for n, v in request.headers if n.lower() == "content-type"), None)
    body: str | None = None
    encoded = False
    if request.body:
        if is_text(content_type):
            try:
                body = request.body.decode("utf-8")
            except UnicodeDecodeError:
                body, encoded = base64.b64encode(request.body).decode("ascii"), True
        else:
            body, encoded = base64.b64encode(request.body).decode("ascii"), True
    path = unquote(request.raw_path)
    request_id = request_id or str(uuid.uuid4())
    signed = caller.access_key is not None
    user_arn = f"arn:aws:iam::{caller.account_id}:user/local" if signed else None
    return {
        "resource": resource,
        "path": path,
        "httpMethod": request.method,
        "headers": {name: values[-1] for name, values in multi_headers.items()},
        "multiValueHeaders": multi_headers,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} if multi_query else None,
        "multiValueQueryStringParameters": multi_query,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": "local",
            "resourcePath": resource,
            "httpMethod": request.method,
            "extendedRequestId": request_id,
            "requestTime": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage.name}{path}",
            "accountId": stage.account_id,
            "protocol": request.protocol,
            "stage": stage.name,
            "requestTimeEpoch": int(now.timestamp() * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": caller.account_id if signed else None,
                "cognitoIdentityId": None,
                "caller": LOCAL_USER_ID if signed else None,
                "sourceIp": caller.source_ip,
                "principalOrgId": None,
                "accessKey": caller.access_key,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": user_arn,
                "userAgent": caller.user_agent,
                "user": LOCAL_USER_ID if signed else None,
            },
            "domainName": stage.domain_name,
            "apiId": stage.api_id,
        },
        "body": body,
        "isBase64Encoded": encoded,
    }


def _header_text(name: str, value: Any) -> str:
    if isinstance(value, (dict, list, tuple, set)) or value is None:
        raise MalformedProxyResponse(f"header {name!r} is not a scalar")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def to_http_response(result: Any, request_id: str) -> HttpResponse:
    """What API Gateway sends for a proxy result; MalformedProxyResponse when it would answer 502."""
    if not isinstance(result, Mapping):
        raise MalformedProxyResponse("the result is not an object")
    try:
        status = int(result.get("statusCode"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise MalformedProxyResponse("statusCode is missing or not a number") from None
    if not 100 <= status <= 599:
        raise MalformedProxyResponse("statusCode is out of range")
    single = result.get("headers") or {}
    multi = result.get("multiValueHeaders") or {}
    if not isinstance(single, Mapping) or not isinstance(multi, Mapping):
        raise MalformedProxyResponse("headers must be objects")
    # API Gateway merges both maps; a name present in multiValueHeaders keeps only those values.
    merged: list[tuple[str, str]] = []
    multi_names = {str(name).lower() for name in multi}
    for name, value in single.items():
        if str(name).lower() not in multi_names:
            merged.append((str(name), _header_text(name, value)))
    for name, values in multi.items():
        if not isinstance(values, (list, tuple)):
            raise MalformedProxyResponse(f"multiValueHeaders[{name!r}] is not a list")
        merged.extend((str(name), _header_text(name, value)) for value in values)
    headers = [(n, v) for n, v in merged if n.lower() not in _HOP_BY_HOP]
    if not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", "application/json"))
    headers.append(("x-amzn-RequestId", request_id))
    body = result.get("body")
    if body is None:
        payload = b""
    elif not isinstance(body, str):
        raise MalformedProxyResponse("body is not a string")
    elif result.get("isBase64Encoded"):
        try:
            payload = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise MalformedProxyResponse("body is not valid base64") from None
    else:
        payload = body.encode("utf-8")
    return HttpResponse(status, headers, payload)
