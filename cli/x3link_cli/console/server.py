"""The console's HTTP server: the page (three static files) and `/api/...`, each call judged by `guard`,
matched by `routes`, then signed and sent by the CLI's `Api`.

`Console.respond` is the whole behaviour, from a request to a reply, over an `Api`-like seam: the stdlib
server around it only reads the request and writes the reply.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any, Protocol

from x3link_cli.client import Answer
from x3link_cli.console import guard, routes
from x3link_cli.errors import CliError, api_error

MAX_BODY = 16 * 1024  # a new link's JSON is a few hundred bytes
STATIC = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/console.js": ("console.js", "text/javascript; charset=utf-8"),
    "/console.css": ("console.css", "text/css; charset=utf-8"),
}
# The page runs its own script and style only, talks to its own server only, and is framed by nobody.
SECURITY_HEADERS = (
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    ("Cache-Control", "no-store"),
)


class Sender(Protocol):
    """What the console needs of the CLI's `Api`: one signed request, the answer as it is."""

    def send(
        self,
        method: str,
        route: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Answer: ...


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def json_reply(status: int, value: Any, headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, json.dumps(value).encode(), "application/json", headers)


def error_reply(status: int, error: str, message: str) -> Reply:
    return json_reply(status, {"error": error, "message": message})


def static_file(name: str) -> bytes:
    return resources.files("x3link_cli.console").joinpath("static", name).read_bytes()


class Console:
    """One run of the console: the API it signs for, the run's token and the port it listens on."""

    def __init__(self, api: Sender, api_url: str, token: str, port: int) -> None:
        self.api = api
        self.api_url = api_url
        self.token = token
        self.port = port

    @property
    def url(self) -> str:
        """The address to open: the token in the fragment, which a browser never sends to a server."""
        return f"http://127.0.0.1:{self.port}/#token={self.token}"

    def respond(
        self, method: str, target: str, headers: Mapping[str, str] | None, body: bytes | None
    ) -> Reply:
        """The reply to one request (`headers` by lower-case name, None when `guard` found them ambiguous;
        `body` None when none was sent)."""
        if target.startswith(routes.PREFIX + "/"):
            decision = guard.judge_api(headers, self.port, self.token)
            if not decision.allowed:
                return error_reply(403, decision.verdict.value, decision.reason)
            return self._forward(method, target, headers or {}, body)
        decision = guard.judge_page(headers, self.port)
        if not decision.allowed:
            return error_reply(403, decision.verdict.value, decision.reason)
        found = STATIC.get(target.split("?", 1)[0])
        if found is None:
            return error_reply(404, "not_found", "The console serves its page at / and the API under /api.")
        if method not in ("GET", "HEAD"):
            return error_reply(405, "method_not_allowed", "The console's page is only read.")
        name, content_type = found
        content = static_file(name)
        if name == "index.html":
            content = content.replace(b"{{api_url}}", html.escape(self.api_url).encode())
        return Reply(200, content, content_type)

    def _forward(self, method: str, target: str, headers: Mapping[str, str], body: bytes | None) -> Reply:
        resolved = routes.resolve(method, target)
        if isinstance(resolved, routes.Refusal):
            return error_reply(resolved.status, resolved.error, resolved.message)
        sent = b""
        if resolved.body:
            if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
                return error_reply(415, "not_json", "The console passes on JSON bodies only.")
            if body is None or not body.strip():
                return error_reply(400, "no_body", "The call needs a JSON body.")
            try:
                document = json.loads(body)
            except ValueError:
                return error_reply(400, "not_json", "The body is not JSON.")
            if not isinstance(document, dict):
                return error_reply(400, "not_json", "The body must be a JSON object.")
            sent = json.dumps(document).encode()
        elif body:
            return error_reply(400, "unexpected_body", "This call takes no body.")
        try:
            answer = self.api.send(
                resolved.method,
                resolved.route,
                query=resolved.query,
                body=sent,
                headers={"Content-Type": "application/json"} if sent else None,
            )
        except CliError as exc:
            return error_reply(502, "api_unreachable", exc.message)
        return self._passed_on(answer)

    @staticmethod
    def _passed_on(answer: Answer) -> Reply:
        """The API's answer for the page: a success as it is; a failure as `{"error", "message"}`, its
        sentence the CLI's own (the gateway's refusals, a signature refused, included)."""
        retry_after = answer.headers.get("retry-after")
        kept = (("Retry-After", retry_after),) if retry_after else ()
        if 200 <= answer.status < 300:
            if not answer.body:
                return Reply(answer.status, b"", "application/json", kept)
            try:
                json.loads(answer.body)
            except ValueError:
                return error_reply(502, "bad_answer", f"The API answered HTTP {answer.status} with no JSON.")
            return Reply(answer.status, answer.body, "application/json", kept)
        try:
            code = json.loads(answer.body).get("error")
        except (ValueError, AttributeError):
            code = None
        message = api_error(answer.status, answer.headers, answer.body)
        error = code if isinstance(code, str) else "api_refused"
        return json_reply(answer.status, {"error": error, "message": message}, kept)


class _Handler(BaseHTTPRequestHandler):
    server: ConsoleServer
    protocol_version = "HTTP/1.1"
    server_version = "x3link-console"
    sys_version = ""

    def _body(self) -> bytes | Reply | None:
        """The request's body (None when it has none), or the reply that refuses it."""
        length = self.headers.get("Content-Length")
        if length is None:
            if self.headers.get("Transfer-Encoding"):
                return error_reply(411, "length_required", "Send the body with its Content-Length.")
            return None
        try:
            size = int(length)
        except ValueError:
            return error_reply(400, "bad_length", "Content-Length is not a number.")
        if size < 0 or size > MAX_BODY:
            return error_reply(413, "too_large", "The console takes bodies of 16 KiB at most.")
        return self.rfile.read(size)

    def _handle(self) -> None:
        body = self._body()
        if isinstance(body, Reply):
            self._write(body, close=True)  # what was sent after the headers is not read: hang up
            return
        headers = guard.headers_of(self.headers.items())
        try:
            reply = self.server.console.respond(self.command, self.path, headers, body)
        except Exception as exc:  # a failure of ours: said to the page, told on stderr, server kept up
            print(f"x3link console: {self.command} failed ({type(exc).__name__}).", file=sys.stderr)
            reply = error_reply(500, "console_failed", f"The console failed ({type(exc).__name__}).")
        if reply.status == 403:
            print(f"x3link console: refused {self.command} {self.path.split('?')[0]}.", file=sys.stderr)
        self._write(reply)

    def _write(self, reply: Reply, *, close: bool = False) -> None:
        self.send_response(reply.status)
        for name, value in (*SECURITY_HEADERS, *reply.headers):
            self.send_header(name, value)
        if reply.status != HTTPStatus.NO_CONTENT:
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD" and reply.status != HTTPStatus.NO_CONTENT:
            self.wfile.write(reply.body)

    do_GET = do_HEAD = do_POST = do_DELETE = do_PUT = do_PATCH = do_OPTIONS = _handle

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: what is worth saying (a refusal, a failure) is said by `_handle`."""


class ConsoleServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: Sender, api_url: str, token: str, port: int = 0) -> None:
        super().__init__(("127.0.0.1", port), _Handler)
        self.console = Console(api, api_url, token, self.server_address[1])
