"""The emulator's control API: its knobs over HTTP, on a loopback port of its own, for `x3link emulator`.

Why: `make run` holds the emulator in its own process; an operator in another shell (or an end-to-end test)
must still be able to make X3 export files, send their notification, shorten token lifetimes, revoke a grant,
refuse the app or answer 429. Nothing here imitates Sage: the paths live apart from the Sage-shaped ones
(another port, under `/control`), the server binds loopback only and answers loopback peers only.

Every route takes and answers JSON; a mistake is 400 `{"error": "bad_request", "message": ...}`.

- `GET /control`: regions and base URLs, the knobs, the registered apps;
- `PUT /control/settings`: change knobs (`Emulator.configure`), e.g. `{"refresh_lifetime": 172800}`;
- `POST /control/files`: X3 exports files into a customer's folder: `{"customer", "folder", "count"?,
  "size"?, "content"?, "names"?, "prefix"?, "notify"?}`;
- `POST /control/notifications`: a data delivery notification, signed as Sage signs it, sent to the app:
  `{"customer", "folder", "files"?}`;
- `POST /control/revoke`: the customer deletes the app: `{"customer"}`;
- `PUT /control/app`: Sage disables or re-enables the app: `{"enabled": bool, "client_id"?}`;
- `GET /control/faults`: the routes a fault can be set on, and the faults not yet consumed;
- `POST /control/faults`: the next requests of a route fail: `{"route", "status"?, "count"?, "retry_after"?,
  "timeout"?}`; `DELETE /control/faults` forgets those not yet consumed.
"""

from __future__ import annotations

import ipaddress
import json
import threading
from collections.abc import Callable
from typing import Any

from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler
from werkzeug.wrappers import Request, Response

from .emulator import Emulator
from .faults import FAULT_ROUTES
from .server import bind
from .web import METHODS, unsupported_method, with_reason

MAX_BODY = 64 * 1024
MAX_FILES = 1000
MAX_FILE_SIZE = 10 * 1024 * 1024
FILE_PREFIX = "export"
KNOBS = {
    "access_lifetime": float,
    "refresh_lifetime": float,
    "code_lifetime": float,
    "pairing_request_lifetime": float,
    "latency": float,
    "daily_quota": int,
    "dead_refresh_status": int,
    "scan_delay": float,
    "link_lifetime": float,
    "send_expires_in": bool,
}


class ControlError(Exception):
    """A request the control API refuses: 400 (or `status`) with a sentence for the operator."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


# ------------------------------------------------------------------ what each route does (pure of sockets)
def _text(body: dict[str, Any], name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value:
        raise ControlError(f"{name} must be a non-empty string.")
    return value


def _number(body: dict[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = body.get(name, default)
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ControlError(f"{name} must be a whole number from {low} to {high}.")
    return value


def _names(body: dict[str, Any], name: str) -> list[str] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
        raise ControlError(f"{name} must be a list of file names.")
    return list(value)


def export_files(body: dict[str, Any]) -> dict[str, bytes]:
    """The files a `POST /control/files` asks for: `names`, or `count` files `{prefix}-{n}.csv`; each holds
    `content` when given, else `size` bytes of CSV-like lines."""
    names = _names(body, "names")
    count = _number(body, "count", len(names) if names else 1, 1, MAX_FILES)
    if names is not None and len(names) != count:
        raise ControlError("names and count disagree: give one or the other.")
    prefix = body.get("prefix", FILE_PREFIX)
    if not isinstance(prefix, str) or not prefix or "/" in prefix:
        raise ControlError("prefix must be a file name prefix with no '/'.")
    content = body.get("content")
    if content is not None and not isinstance(content, str):
        raise ControlError("content must be a string.")
    size = _number(body, "size", 64, 0, MAX_FILE_SIZE)
    if names is None:
        names = [f"{prefix}-{index:04}.csv" for index in range(1, count + 1)]
    files = {}
    for index, name in enumerate(names, start=1):
        if content is not None:
            files[name] = content.encode("utf-8")
        else:
            line = f"line;{name};{index}\n".encode()
            files[name] = (line * (size // len(line) + 1))[:size]
    return files


def _notification(sent: Any) -> dict[str, Any]:
    answer = sent.answer.decode("utf-8", "replace") if sent.answer else ""
    return {
        "notification_id": sent.notification_id,
        "payload": sent.payload,
        "sent": sent.status is not None,
        "app_status": sent.status,
        "app_answer": answer[:2000],
    }


class Control:
    """The control routes over one emulator; each method takes the JSON body and answers a JSON document."""

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    def routes(self) -> dict[tuple[str, str], Callable[[dict[str, Any]], Any]]:
        return {
            ("GET", "/control"): self.show,
            ("PUT", "/control/settings"): self.settings,
            ("POST", "/control/files"): self.files,
            ("POST", "/control/notifications"): self.notify,
            ("POST", "/control/revoke"): self.revoke,
            ("PUT", "/control/app"): self.app,
            ("GET", "/control/faults"): self.faults,
            ("POST", "/control/faults"): self.fail,
            ("DELETE", "/control/faults"): self.clear_faults,
        }

    def show(self, _: dict[str, Any]) -> dict[str, Any]:
        emulator = self.emulator
        return {
            "regions": {region: emulator.base_url(region) for region in emulator.regions},
            "settings": emulator.settings,
            "apps": emulator.apps(),
            "fault_routes": list(FAULT_ROUTES),
        }

    def settings(self, body: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(body) - set(KNOBS))
        if unknown or not body:
            raise ControlError(f"settings are any of {', '.join(sorted(KNOBS))}; not {', '.join(unknown)}.")
        knobs: dict[str, Any] = {}
        for name, value in body.items():
            kind = KNOBS[name]
            if kind is bool:
                if not isinstance(value, bool):
                    raise ControlError(f"{name} must be true or false.")
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ControlError(f"{name} must be a number, 0 or more.")
            knobs[name] = kind(value)
        self.emulator.configure(**knobs)
        return {"settings": self.emulator.settings}

    def _customer(self, body: dict[str, Any]) -> str:
        customer = _text(body, "customer")
        if self.emulator.get_customer(customer) is None and not self.emulator.knows_customers_on_sight:
            raise ControlError(f"The emulator has no customer {customer}.", 404)
        return customer

    def files(self, body: dict[str, Any]) -> dict[str, Any]:
        customer, folder = self._customer(body), _text(body, "folder")
        notify = body.get("notify", False)
        if not isinstance(notify, bool):
            raise ControlError("notify must be true or false.")
        files = export_files(body)
        try:
            for name, content in files.items():
                self.emulator.put_delivery_file(customer, folder, name, content)
        except KeyError:
            raise ControlError(f"The customer {customer} has no folder {folder}.", 404) from None
        answer: dict[str, Any] = {
            "customer": customer,
            "folder": folder,
            "files": [{"name": name, "size": len(content)} for name, content in files.items()],
        }
        if notify:
            answer["notification"] = self._send(customer, folder, list(files))
        return answer

    def _send(self, customer: str, folder: str, files: list[str] | None) -> dict[str, Any]:
        if not self.emulator.settings["notification_url"]:
            raise ControlError("The emulator has no notification URL to send notifications to.", 409)
        try:
            sent = self.emulator.notify(customer, folder, files)
        except ValueError as exc:  # no notification URL, or several apps
            raise ControlError(str(exc), 409) from None
        except OSError as exc:
            raise ControlError(f"The app's notification URL did not answer ({exc}).", 502) from None
        return _notification(sent)

    def notify(self, body: dict[str, Any]) -> dict[str, Any]:
        customer, folder = self._customer(body), _text(body, "folder")
        return self._send(customer, folder, _names(body, "files"))

    def revoke(self, body: dict[str, Any]) -> dict[str, Any]:
        customer = self._customer(body)
        self.emulator.revoke(customer)
        return {"customer": customer, "revoked": True}

    def app(self, body: dict[str, Any]) -> dict[str, Any]:
        enabled = body.get("enabled")
        if not isinstance(enabled, bool):
            raise ControlError("enabled must be true or false.")
        apps = self.emulator.apps()
        client_id = body.get("client_id") or (apps[0] if len(apps) == 1 else None)
        if not isinstance(client_id, str) or client_id not in apps:
            raise ControlError(f"client_id must name a registered app: {', '.join(apps)}.")
        self.emulator.set_client_enabled(client_id, enabled)
        return {"client_id": client_id, "enabled": enabled}

    def faults(self, _: dict[str, Any]) -> dict[str, Any]:
        """The routes a fault can be set on (the CLI's list: it keeps none of its own), and those pending."""
        return {"routes": list(FAULT_ROUTES), "pending": self.emulator.pending_faults()}

    def fail(self, body: dict[str, Any]) -> dict[str, Any]:
        route = _text(body, "route")
        if route not in FAULT_ROUTES:
            raise ControlError(f"route must be one of {', '.join(FAULT_ROUTES)}.")
        timeout = body.get("timeout", False)
        if not isinstance(timeout, bool):
            raise ControlError("timeout must be true or false.")
        status = None if timeout else _number(body, "status", 500, 400, 599)
        count = _number(body, "count", 1, 1, 10_000)
        retry_after = body.get("retry_after")
        if retry_after is not None:
            retry_after = _number(body, "retry_after", 0, 0, 7 * 86400)
        self.emulator.fail_next(route, status=status, count=count, retry_after=retry_after, timeout=timeout)
        return {
            "route": route,
            "status": status,
            "count": count,
            "retry_after": retry_after,
            "timeout": timeout,
        }

    def clear_faults(self, _: dict[str, Any]) -> dict[str, Any]:
        self.emulator.clear_faults()
        return {"cleared": True}


# ------------------------------------------------------------------ the server
class ControlApp:
    """The WSGI app: loopback peers only, one werkzeug rule per route, JSON in and out."""

    def __init__(self, control: Control) -> None:
        self.control = control
        self.routes = Map(
            [
                Rule(path, methods=[method], endpoint=function)
                for (method, path), function in control.routes().items()
            ],
            strict_slashes=False,
        )

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if environ["REQUEST_METHOD"] not in METHODS:
            return unsupported_method(environ["REQUEST_METHOD"])(environ, start_response)
        return with_reason(self._answer(Request(environ)))(environ, start_response)

    def _answer(self, request: Request) -> Response:
        if not is_loopback(request.remote_addr or ""):
            return _json(403, {"error": "forbidden", "message": "The control API answers this machine only."})
        try:
            try:
                route, _ = self.routes.bind_to_environ(request.environ).match()
            except HTTPException:  # no such path, or not with this method
                path = request.path.rstrip("/") or "/"
                raise ControlError(f"No control route {request.method} {path}.", 404) from None
            return _json(200, route(_body(request)))
        except ControlError as error:
            return _json(error.status, {"error": _code(error.status), "message": error.message})


class ControlServer:
    """`Control` over HTTP on a loopback address (a threaded werkzeug server); `start()` serves it in a
    daemon thread."""

    def __init__(self, emulator: Emulator, host: str = "127.0.0.1", port: int = 0) -> None:
        if not is_loopback(host):
            raise ValueError("the emulator's control API listens on a loopback address only")
        self.control = Control(emulator)
        self._server = bind(host, port, ControlApp(self.control), QuietControlHandler)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        assert isinstance(host, str)
        return f"http://{host}:{port}/control"

    def start(self) -> ControlServer:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="sagex3-emulator-control",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)


class QuietControlHandler(WSGIRequestHandler):
    """Quiet: `make run`'s terminal shows what the stack does, not each control call."""

    timeout = 60

    def log(self, type: str, message: str, *args: Any) -> None:
        """No access lines."""


def _body(request: Request) -> dict[str, Any]:
    try:
        length = int(request.headers.get("Content-Length") or 0)
    except ValueError:
        raise ControlError("Content-Length is not a number.") from None
    if length > MAX_BODY:
        raise ControlError(f"The body is larger than {MAX_BODY // 1024} KiB.", 413)
    request.max_content_length = MAX_BODY  # a chunked body says its length only by ending
    try:
        raw = request.get_data()
    except RequestEntityTooLarge:
        raise ControlError(f"The body is larger than {MAX_BODY // 1024} KiB.", 413) from None
    if not raw:
        return {}
    try:
        document = json.loads(raw)
    except ValueError:
        raise ControlError("The body is not JSON.") from None
    if not isinstance(document, dict):
        raise ControlError("The body must be a JSON object.")
    return document


def _json(status: int, document: Any) -> Response:
    return Response(json.dumps(document).encode("utf-8"), status, content_type="application/json")


def _code(status: int) -> str:
    return {404: "not_found", 409: "conflict", 413: "body_too_large", 502: "app_unreachable"}.get(
        status, "bad_request"
    )
