"""The request and response shapes route functions work with, apart from the socket code.

Why: route functions stay pure (request in, response out), so the HTTP server is the only place that
touches sockets, faults and latency.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any


def flatten(values: dict[str, list[str]]) -> dict[str, str | list[str]]:
    """One value stays a string, a repeated parameter becomes a list (readable request-log entries)."""
    return {name: items[0] if len(items) == 1 else list(items) for name, items in values.items()}


@dataclass
class Request:
    """One parsed HTTP request as a region server received it."""

    region: str
    origin: str
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    json: Any = None
    form: dict[str, list[str]] | None = None
    params: dict[str, str] = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """This region server's `/v1` base URL."""
        return f"{self.origin}/v1"

    def arg(self, name: str) -> str | None:
        """First query-string value of `name`."""
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """Case-insensitive header lookup."""
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)

    def form_values(self, name: str) -> list[str]:
        """All values of a form field (checkboxes repeat)."""
        return list((self.form or {}).get(name, []))


@dataclass
class Response:
    """What to send back; `drop=True` closes the connection without any response."""

    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop: bool = False

    @classmethod
    def json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
        """A JSON response."""
        body = json.dumps(payload).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json", **(headers or {})})

    @classmethod
    def message(cls, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        """The gateway's error shape: `{"message": "..."}`."""
        return cls.json(status, {"message": message}, headers)

    @classmethod
    def html(cls, status: int, text: str) -> Response:
        """An HTML page that must never be cached (it may carry a code)."""
        headers = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
        return cls(status, text.encode("utf-8"), headers)

    @classmethod
    def s3_error(cls, status: int, code: str, message: str) -> Response:
        """An S3-style XML error, as presigned URLs answer."""
        xml = (
            "<?xml version='1.0' encoding='UTF-8'?>"
            f"<Error><Code>{code}</Code><Message>{message}</Message></Error>"
        )
        return cls(status, xml.encode("utf-8"), {"Content-Type": "application/xml"})

    @classmethod
    def drop_connection(cls) -> Response:
        """Close the socket without a byte of response."""
        return cls(0, drop=True)


class ApiError(Exception):
    """Raised by route functions (and Python helpers) for an answer `{"message": ...}` with a status."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(f"{status} {message}")
        self.status = status
        self.message = message
        self.headers = headers or {}

    def to_response(self) -> Response:
        """The JSON response for this error."""
        return Response.message(self.status, self.message, self.headers)


def status_phrase(status: int) -> str:
    """`Too Many Requests` for 429 and so on; a generic text for unknown codes."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
