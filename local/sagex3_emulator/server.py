"""One HTTP server per region: parse, log, apply latency and injected faults, dispatch, answer.

Why: everything that touches sockets lives here, so route functions stay pure and faults (status,
timeout, drop after apply) behave the same on every route.
"""

from __future__ import annotations

import json
import sys
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from . import messages
from .faults import Fault, token_route_name, token_routes
from .http_types import ApiError, Request, Response, flatten, status_phrase
from .routes import Route, match
from .state import State

_MAX_API_BODY = 10 * 1024 * 1024
_CHUNK = 64 * 1024


class RegionServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its region and the shared state."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], state: State, region: str) -> None:
        self.state = state
        self.region = region
        super().__init__(address, RegionHandler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Keep tracebacks off stderr (they may quote request data); a client hanging up is not an error."""
        error = sys.exc_info()[1]
        if not isinstance(error, (ConnectionError, TimeoutError)):
            self.state.errors.append(traceback.format_exc())

    @property
    def origin(self) -> str:
        """`http://host:port` of this server."""
        host, port = self.server_address[:2]
        assert isinstance(host, str)  # bound from getsockname(), which names an AF_INET host as str
        return f"http://{host}:{port}"


class BodyTooLarge(Exception):
    """The request body exceeds the route's limit."""


class RegionHandler(BaseHTTPRequestHandler):
    """Answers one request; every connection closes after its response (no stale keep-alives)."""

    server: RegionServer
    protocol_version = "HTTP/1.1"
    timeout = 120

    def log_message(self, format: str, *args: Any) -> None:
        """Silence access logs: request lines may carry codes and tokens."""

    def do_GET(self) -> None:
        """Dispatch."""
        self._handle()

    def do_POST(self) -> None:
        """Dispatch."""
        self._handle()

    def do_PUT(self) -> None:
        """Dispatch."""
        self._handle()

    def do_DELETE(self) -> None:
        """Dispatch."""
        self._handle()

    # --- reading ---------------------------------------------------------------------------------

    def _read_exact(self, length: int) -> bytes:
        parts: list[bytes] = []
        remaining = length
        while remaining > 0:
            part = self.rfile.read(min(remaining, _CHUNK))
            if not part:
                break
            parts.append(part)
            remaining -= len(part)
        return b"".join(parts)

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        total = 0
        while True:
            size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while self.rfile.readline().strip():
                    pass
                break
            total += size
            part = self._read_exact(size)
            self.rfile.readline()
            if total <= limit:
                parts.append(part)
        if total > limit:
            raise BodyTooLarge
        return b"".join(parts)

    def _read_body(self, limit: int) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            return self._read_chunked(limit)
        length = int(self.headers.get("Content-Length") or 0)
        if length > limit:
            # Drain so the client sees our answer instead of a connection reset.
            remaining = length
            while remaining > 0:
                part = self.rfile.read(min(remaining, _CHUNK))
                if not part:
                    break
                remaining -= len(part)
            raise BodyTooLarge
        return self._read_exact(length)

    def _parse(self, route_params: dict[str, str], body: bytes) -> Request:
        split = urlsplit(self.path)
        req = Request(
            region=self.server.region,
            origin=self.server.origin,
            method=self.command,
            path=split.path,
            query=parse_qs(split.query, keep_blank_values=True),
            headers=dict(self.headers.items()),
            body=body,
            params=route_params,
        )
        if body and self.command != "PUT":
            try:
                req.json = json.loads(body)
            except ValueError:
                req.json = None
            content_type = (req.header("Content-Type") or "").lower()
            if content_type.startswith("application/x-www-form-urlencoded"):
                req.form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
        return req

    # --- answering -------------------------------------------------------------------------------

    def _send(self, response: Response) -> None:
        self.close_connection = True
        if response.drop:
            return
        try:
            self.send_response(response.status)
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(response.body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. its own timeout); nothing to tell it

    def _handle(self) -> None:
        state = self.server.state
        path = urlsplit(self.path).path
        route, params = match(path)
        name = route.name if route else "unknown"
        limit = state.settings.upload_limit if name == "upload" else _MAX_API_BODY
        too_large = False
        try:
            body = self._read_body(limit)
        except BodyTooLarge:
            body, too_large = b"", True
        except ValueError:  # a Content-Length or chunk size that is not a number
            self._send(Response.message(400, "Bad Request"))
            return
        req = self._parse(params, body)
        grant_type = None
        if name == "token" and isinstance(req.json, dict) and isinstance(req.json.get("grant_type"), str):
            grant_type = req.json["grant_type"]
        if name == "token":
            name = token_route_name(grant_type)
        state.record(_log_entry(req, name, grant_type, state.now()))
        if too_large:
            if name == "upload":
                self._send(Response.s3_error(413, "EntityTooLarge", "Your proposed upload exceeds the limit"))
            else:
                self._send(Response.message(413, messages.TOO_LARGE))
            return
        if path.startswith("/v1") and not state.sleep(state.settings.latency):
            self._send(Response.drop_connection())
            return
        routes = token_routes(grant_type) if route and route.name == "token" else (name,)
        fault = state.faults.take(routes, req.region)
        if fault is not None and not fault.drop_after_apply:
            self._send(self._fault_response(fault))
            return
        response = self._dispatch(route, req)
        self._send(Response.drop_connection() if fault is not None else response)

    def _fault_response(self, fault: Fault) -> Response:
        if fault.timeout:
            # Sleep far longer than a client waits, without blocking other requests; stop() ends it.
            self.server.state.sleep(self.server.state.settings.timeout_sleep)
            return Response.drop_connection()
        status = fault.status or 500
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.html is not None:
            return Response.html(status, fault.html)
        if fault.body is not None:
            return Response.json(status, fault.body, headers)
        return Response.message(status, status_phrase(status), headers)

    def _dispatch(self, route: Route | None, req: Request) -> Response:
        if route is None:
            return Response.message(404, messages.NOT_FOUND)
        function = route.methods.get(req.method)
        if function is None:
            return Response.message(405, messages.METHOD_NOT_ALLOWED, {"Allow": ", ".join(route.methods)})
        try:
            return function(self.server.state, req)
        except ApiError as error:
            return error.to_response()
        except Exception:
            # Kept for tests (emu.errors) rather than printed: tracebacks may quote request data.
            self.server.state.errors.append(traceback.format_exc())
            return Response.message(500, "Internal Server Error")


def _log_entry(req: Request, route: str, grant_type: str | None, now: float) -> dict[str, Any]:
    return {
        "region": req.region,
        "route": route,
        "method": req.method,
        "path": req.path,
        "query": flatten(req.query),
        "headers": dict(req.headers),
        "json": req.json,
        "form": flatten(req.form) if req.form is not None else None,
        "grant_type": grant_type,
        "time": now,
    }
