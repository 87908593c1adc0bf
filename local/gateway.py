"""The local API Gateway: template.yaml's routes on 127.0.0.1, each request turned into the REST proxy
event that API Gateway would send, handed in-process to the same handler Lambda runs.

What API Gateway itself decides stays here: which route answers, whether a signature is good, and what
a failed or malformed function becomes (403 and 502 with API Gateway's JSON `{"message": ...}`).

Besides the routes, and only here: `GET /openapi.json` and `GET /docs`, the API's description
(openapi.yaml; Swagger UI, its files under `/docs/`: local/api_docs.py), unsigned and in no route table.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from local import api_docs, apigw_event, lambda_context, sigv4
from local import template as tpl
from local.template import Route

Handler = Callable[[dict[str, Any], Any], Any]
HandlerLookup = Callable[[str], Handler]
ContextFactory = Callable[[str], Any]

DEFAULT_ACCOUNT_ID = "123456789012"
MAX_BODY_BYTES = 10 * 1024 * 1024


def template_stage_name() -> str:
    """The StageName of the template's API (the `prod` in `/prod/...`)."""
    for api in tpl.resources(type_="AWS::Serverless::Api").values():
        return str(api["Properties"].get("StageName", "prod"))
    return "prod"


class GatewayRefusal(Exception):
    """An answer API Gateway gives without calling a function."""

    def __init__(self, status: int, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.error_type = status, message, error_type


class RouteTable:
    """Finds the route of a method and path as API Gateway does: literal paths win over `{param}` ones."""

    def __init__(self, routes: Iterable[Route]) -> None:
        self._routes = sorted(routes, key=lambda r: (r.path.count("{"), -len(r.path)))

    def match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        for route in self._routes:
            found = route.pattern.match(raw_path)
            if found and route.method in (method, "ANY"):
                return route, {name: unquote(value) for name, value in found.groupdict().items()}
        # API Gateway REST answers an unknown path or method like a missing signature.
        raise GatewayRefusal(403, sigv4.MISSING_TOKEN, "MissingAuthenticationTokenException")


class Gateway:
    """An HTTP server for `routes`; the socket is bound at construction so `port` is known (port 0 = any).

    `load_handler` and `make_context` are what tests replace to serve fake functions. `local_pages` are
    answered to GET before any route, unsigned (the OpenAPI document and its page): none of API Gateway's.
    """

    def __init__(
        self,
        routes: Sequence[Route],
        *,
        credentials: sigv4.Credentials,
        host: str = "127.0.0.1",
        port: int = 0,
        stage_name: str | None = None,
        account_id: str = DEFAULT_ACCOUNT_ID,
        load_handler: HandlerLookup = tpl.load_handler,
        make_context: ContextFactory | None = None,
        log: Callable[[str], None] | None = None,
        local_pages: Mapping[str, api_docs.LocalPage] | None = None,
    ) -> None:
        self.table = RouteTable(routes)
        self.local_pages = dict(api_docs.PAGES if local_pages is None else local_pages)
        self.credentials = credentials
        self.account_id = account_id
        self.load_handler = load_handler
        self.make_context = make_context or (
            lambda logical_id: lambda_context.for_function(
                logical_id, region=credentials.region, account_id=account_id
            )
        )
        self.log = log or (lambda line: print(line, file=sys.stderr, flush=True))
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._server = _Server((host, port), _RequestHandler)
        self._server.gateway = self
        self.host, self.port = host, self._server.server_address[1]
        self.stage = apigw_event.Stage(
            name=stage_name or template_stage_name(),
            domain_name=f"{host}:{self.port}",
            account_id=account_id,
        )
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> Gateway:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="local-gateway",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()

    def __enter__(self) -> Gateway:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _lock(self, logical_id: str) -> threading.Lock:
        # One execution environment per function: Lambda never runs two events in it at once.
        with self._locks_guard:
            return self._locks.setdefault(logical_id, threading.Lock())

    def resource_of(self, method: str, raw_path: str) -> str:
        """The template route a request matched (`/pair/{id}`), or its path when it matched none."""
        try:
            return self.table.match(method, raw_path)[0].path
        except GatewayRefusal:
            return raw_path

    def handle(self, request: apigw_event.HttpRequest, source_ip: str) -> apigw_event.HttpResponse:
        """One request through routing, authorisation and the function, as API Gateway would."""
        request_id = str(uuid.uuid4())
        local_page = self.local_pages.get(request.raw_path)
        if local_page is not None and request.method in ("GET", "HEAD"):
            try:
                return local_page(self.url)
            except Exception:  # openapi.yaml being edited, say: say so, and keep serving
                trace = traceback.format_exc().rstrip()
                self.log(f"{request.raw_path} failed (request {request_id}):\n{trace}")
                return refusal_response(GatewayRefusal(500, "Internal server error"), request_id)
        try:
            route, params = self.table.match(request.method, request.raw_path)
            access_key = None
            if route.auth == "AWS_IAM":
                try:
                    access_key = sigv4.verify(
                        sigv4.ReceivedRequest(
                            request.method, request.raw_path, request.raw_query, request.headers, request.body
                        ),
                        self.credentials,
                    )
                except sigv4.SignatureRejected as exc:
                    raise GatewayRefusal(403, exc.message, exc.error_type) from None
            user_agent = next((v for n, v in request.headers if n.lower() == "user-agent"), None)
            caller = apigw_event.Caller(
                source_ip, user_agent, access_key, self.account_id if access_key else None
            )
            event = apigw_event.build_event(
                request,
                resource=route.path,
                path_parameters=params,
                stage=self.stage,
                caller=caller,
                request_id=request_id,
            )
            return self._invoke(route.function, event, request_id)
        except GatewayRefusal as refusal:
            return refusal_response(refusal, request_id)

    def _invoke(self, logical_id: str, event: dict[str, Any], request_id: str) -> apigw_event.HttpResponse:
        with self._lock(logical_id):
            try:
                handler = self.load_handler(logical_id)
                result = handler(event, self.make_context(logical_id))
            except Exception:
                # The traceback helps; the event (tokens, codes, signatures) stays out of the log.
                self.log(f"{logical_id} raised (request {request_id}):\n{traceback.format_exc().rstrip()}")
                return refusal_response(GatewayRefusal(502, "Internal server error"), request_id)
        try:
            return apigw_event.to_http_response(result, request_id)
        except apigw_event.MalformedProxyResponse as exc:
            self.log(f"{logical_id} returned a malformed proxy response (request {request_id}): {exc}")
            return refusal_response(GatewayRefusal(502, "Internal server error"), request_id)


def refusal_response(refusal: GatewayRefusal, request_id: str) -> apigw_event.HttpResponse:
    headers = [("Content-Type", "application/json"), ("x-amzn-RequestId", request_id)]
    if refusal.error_type:
        headers.append(("x-amzn-ErrorType", refusal.error_type))
    body = json.dumps({"message": refusal.message}).encode()
    return apigw_event.HttpResponse(refusal.status, headers, body)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    gateway: Gateway


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-api-gateway"
    sys_version = ""
    server: _Server

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            raise GatewayRefusal(413, f"HTTP content length exceeded {MAX_BODY_BYTES} bytes.")
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        started = time.monotonic()
        gateway = self.server.gateway
        target = urlsplit(self.path)
        raw_path = target.path or "/"
        try:
            body = self._read_body()
        except (GatewayRefusal, ValueError) as exc:
            refusal = exc if isinstance(exc, GatewayRefusal) else GatewayRefusal(400, "Bad request body")
            response = refusal_response(refusal, str(uuid.uuid4()))
            self.close_connection = True
        else:
            request = apigw_event.HttpRequest(
                method=self.command,
                raw_path=raw_path,
                raw_query=target.query,
                headers=list(self.headers.items()),
                body=body,
                protocol=self.request_version,
            )
            response = gateway.handle(request, self.client_address[0])
        self.send_response(response.status)
        for name, value in response.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)
        elapsed = (time.monotonic() - started) * 1000
        # As API Gateway's access log: the route, not the path (a pairing link's id is in its path), and
        # never the query string (a callback's carries the authorization code).
        resource = gateway.resource_of(self.command, raw_path)
        gateway.log(f"{self.command} {resource} -> {response.status} ({elapsed:.0f} ms)")

    def log_message(self, format: str, *args: Any) -> None:
        """Silenced: the default line holds the full request target, query string included."""

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = _dispatch
