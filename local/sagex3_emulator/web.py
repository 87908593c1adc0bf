"""werkzeug's request as a region server hands it to route functions; the shapes Sage's gateway answers in.

Why: route functions stay pure (a werkzeug request in, a werkzeug response out), so the server module is
the only place that reads bodies, applies faults and latency, and drops connections.
"""

from __future__ import annotations

import html as html_text
import json
from functools import cached_property
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any

from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Request, Response


class GatewayRequest(Request):
    """A request to one region's gateway: werkzeug's, plus the region it reached and the path's values (as
    sent, percent-escapes and all: the route functions unquote those that name something)."""

    # The server reads the body under the route's limit first; a form is never larger than that.
    max_form_memory_size = None

    def __init__(self, environ: dict[str, Any], region: str, params: dict[str, str]) -> None:
        super().__init__(environ)
        self.region = region
        self.params = params

    @cached_property
    def server_origin(self) -> str:
        """`http://host:port` of the server that took the request (its bound address, not the Host header)."""
        return f"http://{self.environ['SERVER_NAME']}:{self.environ['SERVER_PORT']}"

    @property
    def api_base(self) -> str:
        """This region server's `/v1` base URL."""
        return f"{self.server_origin}/v1"

    @cached_property
    def json_body(self) -> Any:
        """The body as JSON whatever its Content-Type, as Sage reads it; None when it is not JSON (or a PUT,
        whose body is a file)."""
        if self.method == "PUT":
            return None
        return self.get_json(force=True, silent=True)

    @property
    def posted_form(self) -> MultiDict[str, str] | None:
        """The fields of an `application/x-www-form-urlencoded` body; None for any other body, or none."""
        if (
            self.method == "PUT"
            or self.mimetype != "application/x-www-form-urlencoded"
            or not self.get_data()
        ):
            return None
        return self.form


def flatten(values: MultiDict[str, str]) -> dict[str, str | list[str]]:
    """One value stays a string, a repeated parameter becomes a list (readable request-log entries)."""
    return {name: items[0] if len(items) == 1 else items for name, items in values.lists()}


class Answer(Response):
    """werkzeug's response with no default Content-Type: a redirect or a 204 carries none."""

    default_mimetype = None


def json_answer(status: int, payload: Any, headers: dict[str, str] | None = None) -> Answer:
    """A JSON response."""
    body = json.dumps(payload).encode("utf-8")
    return Answer(body, status, {"Content-Type": "application/json", **(headers or {})})


def message(status: int, text: str, headers: dict[str, str] | None = None) -> Answer:
    """The gateway's error shape: `{"message": "..."}`."""
    return json_answer(status, {"message": text}, headers)


def html(status: int, text: str) -> Answer:
    """An HTML page that must never be cached (it may carry a code)."""
    headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
    return Answer(text.encode("utf-8"), status, headers)


def s3_error(status: int, code: str, text: str) -> Answer:
    """An S3-style XML error, as presigned URLs answer."""
    xml = f"<?xml version='1.0' encoding='UTF-8'?><Error><Code>{code}</Code><Message>{text}</Message></Error>"
    return Answer(xml.encode("utf-8"), status, {"Content-Type": "application/xml"})


class ApiError(Exception):
    """Raised by route functions (and Python helpers) for an answer `{"message": ...}` with a status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.headers = headers or {}

    def to_response(self) -> Answer:
        """The JSON response for this error."""
        return message(self.status, self.message, self.headers)


# The methods the gateways (and the control API) take; any other is answered 501 before routing.
METHODS = ("GET", "POST", "PUT", "DELETE")


def unsupported_method(method: str) -> Response:
    """501 and the HTML page any other method (HEAD, PATCH, OPTIONS...) has always met here: the one Python's
    http.server writes, under the status line `501 Unsupported method ('PATCH')`."""
    text = f"Unsupported method ({method!r})"
    page = BaseHTTPRequestHandler.error_message_format % {
        "code": 501,
        "message": html_text.escape(text, quote=False),
        "explain": html_text.escape(HTTPStatus(501).description, quote=False),
    }
    response = Response(
        page.encode("utf-8", "replace"), content_type=BaseHTTPRequestHandler.error_content_type
    )
    response.status = f"501 {text}"
    return response


_REASONS = {status.value: status.phrase for status in HTTPStatus}


def with_reason(response: Response) -> Response:
    """The status line's reason as http.server writes it (`404 Not Found`), not in werkzeug's capitals; a
    status with no standard reason keeps werkzeug's `UNKNOWN`."""
    phrase = _REASONS.get(response.status_code)
    if phrase and response.status.partition(" ")[2].isupper():
        response.status = f"{response.status_code} {phrase}"
    return response


def status_phrase(status: int) -> str:
    """`Too Many Requests` for 429 and so on; a generic text for unknown codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
