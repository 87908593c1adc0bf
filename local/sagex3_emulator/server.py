"""One werkzeug server per region: read the body, log, apply latency and injected faults, dispatch, answer.

Why: everything that touches sockets lives here, so route functions stay pure and faults (status,
timeout, drop after apply) behave the same on every route.
"""

from __future__ import annotations

import io
import traceback
from typing import Any
from urllib.parse import urlsplit

from werkzeug.exceptions import NotFound
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wrappers import Response
from werkzeug.wsgi import get_input_stream

from . import messages
from .faults import Fault, token_route_name, token_routes
from .routes import ROUTES, Route
from .state import State
from .web import (
    METHODS,
    ApiError,
    GatewayRequest,
    flatten,
    html,
    json_answer,
    message,
    s3_error,
    status_phrase,
    unsupported_method,
    with_reason,
)

_MAX_API_BODY = 10 * 1024 * 1024
_CHUNK = 64 * 1024
_SENT_HEADERS = "sagex3_emulator.headers"


class DropConnection(ConnectionAbortedError):
    """Raised by the app to close the socket without a byte of response (werkzeug's server sends nothing
    for a connection error)."""


class QuietHandler(WSGIRequestHandler):
    """werkzeug's request handler, silent: request lines may carry codes and tokens."""

    timeout = 120

    def log(self, type: str, message: str, *args: Any) -> None:
        """No access or error lines on stderr."""

    def make_environ(self) -> dict[str, Any]:
        """werkzeug's environ, plus the headers as the client wrote them (names in their own case) for the
        request log: WSGI keeps only `HTTP_UPPER_CASE` keys."""
        environ = super().make_environ()
        environ[_SENT_HEADERS] = dict(self.headers.items())
        return environ

    def connection_dropped(self, error: BaseException, environ: dict[str, Any] | None = None) -> None:
        """Dropped on purpose (a fault) or by the client: close, rather than wait for another request."""
        self.close_connection = True

    def handle(self) -> None:
        """Keep tracebacks off stderr (they may quote request data): a gateway's go to its errors list."""
        try:
            super().handle()
        except Exception:
            app = self.server.app
            if isinstance(app, RegionApp):
                app.state.errors.append(traceback.format_exc())


class RegionApp:
    """The WSGI app of one region's gateway."""

    def __init__(self, state: State, region: str) -> None:
        self.state = state
        self.region = region

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] not in METHODS:
            return unsupported_method(environ["REQUEST_METHOD"])(environ, start_response)
        response = self._answer(environ)
        if response is None:
            raise DropConnection
        return with_reason(response)(environ, start_response)

    def _answer(self, environ: dict[str, Any]) -> Response | None:
        """The response, or None to drop the connection without one."""
        state = self.state
        adapter = ROUTES.bind_to_environ(environ)
        try:
            route, params = adapter.match(path_info=_raw_path(environ))
        except NotFound:
            route, params = None, {}
        name = route.name if route else "unknown"
        limit = state.settings.upload_limit if name == "upload" else _MAX_API_BODY
        try:
            fits = _read_body(environ, limit)
        except (OSError, ValueError):  # a Content-Length or chunk size that is not a number
            return message(400, "Bad Request")
        req = GatewayRequest(environ, self.region, dict(params))
        grant_type = None
        if name == "token":
            document = req.json_body
            if isinstance(document, dict) and isinstance(document.get("grant_type"), str):
                grant_type = document["grant_type"]
            name = token_route_name(grant_type)
        state.record(_log_entry(req, name, grant_type, state.now()))
        if not fits:
            if name == "upload":
                return s3_error(413, "EntityTooLarge", "Your proposed upload exceeds the limit")
            return message(413, messages.TOO_LARGE)
        if req.path.startswith("/v1") and not state.sleep(state.settings.latency):
            return None
        routes = token_routes(grant_type) if route and route.name == "token" else (name,)
        fault = state.faults.take(routes, req.region)
        if fault is not None and not fault.drop_after_apply:
            return self._fault_response(fault)
        response = self._dispatch(route, req)
        return None if fault is not None else response

    def _fault_response(self, fault: Fault) -> Response | None:
        if fault.timeout:
            # Sleep far longer than a client waits, without blocking other requests; stop() ends it.
            self.state.sleep(self.state.settings.timeout_sleep)
            return None
        status = fault.status or 500
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
        if fault.html is not None:
            return html(status, fault.html)
        if fault.body is not None:
            return json_answer(status, fault.body, headers)
        return message(status, status_phrase(status), headers)

    def _dispatch(self, route: Route | None, req: GatewayRequest) -> Response:
        if route is None:
            return message(404, messages.NOT_FOUND)
        function = route.methods.get(req.method)
        if function is None:
            return message(405, messages.METHOD_NOT_ALLOWED, {"Allow": ", ".join(route.methods)})
        try:
            return function(self.state, req)
        except ApiError as error:
            return error.to_response()
        except Exception:
            # Kept for tests (emu.errors) rather than printed: tracebacks may quote request data.
            self.state.errors.append(traceback.format_exc())
            return message(500, "Internal Server Error")


def _raw_path(environ: dict[str, Any]) -> str:
    """The path as the request line wrote it, percent-escapes and all (werkzeug's `path` is unquoted; its
    server keeps the line in RAW_URI): routes match it, the request log keeps it."""
    return urlsplit(environ.get("RAW_URI") or environ.get("PATH_INFO") or "/").path


def _read_body(environ: dict[str, Any], limit: int) -> bool:
    """Read the whole body (chunked or not) and hand it back to werkzeug as a buffer; False past `limit`.

    Past the limit the rest is still read and thrown away, so the client sees the 413 rather than a reset
    connection. ValueError: a Content-Length that is not a number; OSError: a broken chunk.
    """
    if not environ.get("wsgi.input_terminated"):
        int(environ.get("CONTENT_LENGTH") or 0)
    stream = get_input_stream(environ)
    parts: list[bytes] = []
    total = 0
    while chunk := stream.read(_CHUNK):
        total += len(chunk)
        if total <= limit:
            parts.append(chunk)
    fits = total <= limit
    # werkzeug reads a terminated input to its end: its request sees the same bytes, headers untouched.
    environ["wsgi.input"] = io.BytesIO(b"".join(parts) if fits else b"")
    environ["wsgi.input_terminated"] = True
    return fits


def serve(state: State, region: str, host: str, port: int) -> BaseWSGIServer:
    """A threaded werkzeug server for `region`'s gateway, bound but not yet serving."""
    return bind(host, port, RegionApp(state, region), QuietHandler)


def bind(host: str, port: int, app: Any, handler: type[WSGIRequestHandler]) -> BaseWSGIServer:
    """werkzeug's threaded server, bound; OSError when it cannot bind (werkzeug prints why on stderr and
    exits the process; the emulator's caller wants an error it can handle)."""
    try:
        return make_server(host, port, app, threaded=True, request_handler=handler)
    except SystemExit:
        raise OSError(f"the Sage X3 emulator cannot listen on {host}:{port}") from None


def origin(server: BaseWSGIServer) -> str:
    """`http://host:port` of a bound server."""
    host, port = server.server_address[:2]
    assert isinstance(host, str)  # bound from getsockname(), which names an AF_INET host as str
    return f"http://{host}:{port}"


def _log_entry(req: GatewayRequest, route: str, grant_type: str | None, now: float) -> dict[str, Any]:
    form = req.posted_form
    return {
        "region": req.region,
        "route": route,
        "method": req.method,
        "path": _raw_path(req.environ),
        "query": flatten(req.args),
        "headers": dict(req.environ.get(_SENT_HEADERS) or req.headers),
        "json": req.json_body,
        "form": flatten(form) if form is not None else None,
        "grant_type": grant_type,
        "time": now,
    }
