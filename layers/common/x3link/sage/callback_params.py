"""Sage X3's callback in each shape it is known to take (docs/sage-x3.md#callback): GET or POST, parameters in
the query string, a form body or a JSON body, the code as `authorizationCode` or `code`."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field

# Any: the API Gateway event and the form body, untrusted: checked field by field.
from typing import Any
from urllib.parse import parse_qsl

from x3link.errors import CallbackError
from x3link.web import request_json

MAX_BODY_BYTES = request_json.MAX_BYTES


@dataclass(frozen=True)
class CallbackParams:
    state: str | None
    code: str | None = field(default=None, repr=False)
    endpoint: str | None = None
    error: str | None = None
    error_description: str | None = None
    status_code: str | None = None


def _header(headers: dict[str, str] | None, name: str) -> str:
    for key, value in (headers or {}).items():
        if key.lower() == name:
            return value or ""
    return ""


def _body_params(event: dict[str, Any]) -> dict[str, Any]:
    body = event.get("body")
    if not body:
        return {}
    if event.get("isBase64Encoded"):
        try:
            raw = base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            raise CallbackError("The callback body is not valid base64.") from None
    else:
        raw = body.encode() if isinstance(body, str) else body
    if len(raw) > MAX_BODY_BYTES:
        raise CallbackError("The callback body is too large.")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CallbackError("The callback body is not UTF-8.") from None
    content_type = _header(event.get("headers"), "content-type").split(";")[0].strip().lower()
    if content_type == "application/json" or (not content_type and text.lstrip().startswith("{")):
        try:
            parsed = request_json.loads(text)
        except request_json.NotAcceptableJson as exc:
            raise CallbackError(f"The callback body is refused: {exc}") from None
        if not isinstance(parsed, dict):
            raise CallbackError("The callback body must be a JSON object.")
        return parsed
    return dict(parse_qsl(text, keep_blank_values=True))


def _text(params: dict[str, Any], *names: str) -> str | None:
    for name in names:
        value = params.get(name)
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if isinstance(value, str) and value.strip():
            return value.strip()
    return None


def _verbatim(params: dict[str, Any], name: str) -> str | None:
    """A value that must be used exactly as sent: padding is not trimmed away but left for the check."""
    value = params.get(name)
    if value is not None and not isinstance(value, str):
        raise CallbackError(f"The callback's {name} is not text.")
    return value or None


def parse_callback(event: dict[str, Any]) -> CallbackParams:
    params: dict[str, Any] = dict(event.get("queryStringParameters") or {})
    params.update(_body_params(event))
    return CallbackParams(
        state=_text(params, "state"),
        code=_text(params, "authorizationCode", "code"),
        # Compared as sent: the allow-list is exact, so " https://gateway/v1" is not the gateway.
        endpoint=_verbatim(params, "endpoint"),
        error=_text(params, "error"),
        error_description=_text(params, "error_description", "message"),
        status_code=_text(params, "statusCode"),
    )
