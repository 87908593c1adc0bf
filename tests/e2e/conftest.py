"""End-to-end fixtures: the stack started exactly as `make run` starts it (`python -m local.run` in a
subprocess), reached only over real HTTP, with requests signed by botocore's SigV4Auth.

Two kinds of stack:

- `RunningStack` with an `Emulator` of this process (`SAGE_X3_URL` set: the contract's "no emulator is
  started" path), so a test can turn Sage X3's knobs and read its request log;
- `RunningStack` with no `SAGE_X3_URL`: plain `make run` settings, the emulator embedded in the stack
  (the browser tests).

Over HTTP, a `Browser` is what the X3 administrator's browser keeps from opening a pairing link (where it
was sent, and the binding cookie); `deliver(..., browser=...)` sends the callback with its cookie.
"""

from __future__ import annotations

import http.client
import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from local import ports
from local.sagex3_emulator import Emulator
from local.template import ROOT
from tests.support.sage import CLIENT_ID, CLIENT_SECRET

HOST = "127.0.0.1"
REGION = "us-east-1"
ACCESS_KEY = "testing"
SECRET_KEY = "testing"
READY_TIMEOUT = 60.0
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# Variables a developer's shell would not have, or that would steer the stack away from `make run`'s
# defaults: the subprocess starts from the environment minus these.
_DROPPED_PREFIXES = ("AWS_", "SAGE_X3_", "POWERTOOLS_")
_DROPPED = {
    "PORT",
    "MOTO_PORT",
    "LOCAL_STACK_FILE",
    "LOCAL_STATE_DIR",
    "FRESH",
    "LOG_LEVEL",
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
}


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names in lower case; a repeated header keeps its last value here
    body: bytes
    set_cookies: list[str] = field(default_factory=list)  # every Set-Cookie header, as sent on the wire

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()


@dataclass(frozen=True)
class Browser:
    """What a browser holds after opening a pairing link: where the 303 sent it (Sage X3's authorise URL),
    and the cookies it keeps (`name` -> `value`, from each Set-Cookie before its first `;`)."""

    authorise_url: str
    cookies: dict[str, str]

    @property
    def cookie_header(self) -> dict[str, str]:
        """The `Cookie` header this browser sends back to the stack (none when it keeps no cookie)."""
        if not self.cookies:
            return {}
        return {"Cookie": "; ".join(f"{name}={value}" for name, value in self.cookies.items())}


def sign(
    method: str,
    url: str,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    secret_key: str = SECRET_KEY,
) -> dict[str, str]:
    """Headers of a request signed as API Gateway's `AWS_IAM` expects (service execute-api)."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers or {}))
    SigV4Auth(Credentials(ACCESS_KEY, secret_key), "execute-api", REGION).add_auth(request)
    return dict(request.headers.items())


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment as a developer's shell would have it, plus `extra`."""
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in _DROPPED and not name.startswith(_DROPPED_PREFIXES)
    }
    env.update(extra)
    return env


class _Stream:
    """Every line a pipe delivers, kept in order; `wait_for` polls for one, with a deadline."""

    def __init__(self, pipe: Any) -> None:
        self.lines: list[str] = []
        self._new: queue.Queue[str] = queue.Queue()
        self._thread = threading.Thread(target=self._read, args=(pipe,), daemon=True)
        self._thread.start()

    def _read(self, pipe: Any) -> None:
        for line in iter(pipe.readline, ""):
            self.lines.append(line)
            self._new.put(line)
        self._new.put("")  # end of stream

    def wait_for(self, pattern: re.Pattern[str], deadline: float) -> re.Match[str] | None:
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self._new.get(timeout=left)
            except queue.Empty:
                return None
            if line == "":
                return None
            if found := pattern.search(line):
                return found
        return None

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    @property
    def text(self) -> str:
        return "".join(self.lines)


class RunningStack:
    """`python -m local.run` as `make run` runs it, on free ports, with a private stack file."""

    def __init__(self, workdir: Path, *, sage: Emulator | None = None, port: int | None = None) -> None:
        self.port = port or ports.free_port()
        self.moto_port = ports.free_port()
        self.stack_file = workdir / "stack.json"
        self.sage = sage
        extra = {
            "PORT": str(self.port),
            "MOTO_PORT": str(self.moto_port),
            "LOCAL_STACK_FILE": str(self.stack_file),
        }
        if sage is not None:
            extra.update(
                SAGE_X3_URL=sage.base_url("eu-prod"),
                SAGE_X3_ALLOWED_ENDPOINTS=sage.base_url("us-prod"),
                SAGE_X3_CLIENT_ID=CLIENT_ID,
                SAGE_X3_CLIENT_SECRET=CLIENT_SECRET,
            )
        self.env = subprocess_env(**extra)
        self.process: subprocess.Popen[str] | None = None
        self.stdout: _Stream | None = None
        self.stderr: _Stream | None = None
        self.ready_seconds: float | None = None
        self.exit_code: int | None = None

    @property
    def api_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def redirect_uri(self) -> str:
        return f"{self.api_url}/callback"

    @property
    def output(self) -> str:
        """Everything the stack wrote so far, stdout then stderr."""
        return (self.stdout.text if self.stdout else "") + (self.stderr.text if self.stderr else "")

    def start(self) -> RunningStack:
        started = time.monotonic()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "local.run"],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.stdout, self.stderr = _Stream(self.process.stdout), _Stream(self.process.stderr)
        ready = self.stdout.wait_for(re.compile(r"^Ready: (\S+)"), started + READY_TIMEOUT)
        if ready is None:
            self.stop()
            raise AssertionError(
                f"`python -m local.run` printed no Ready line within {READY_TIMEOUT:.0f} s "
                f"(exit code {self.exit_code}):\n{self.output}"
            )
        self.ready_seconds = time.monotonic() - started
        assert ready.group(1) == self.api_url, self.output
        return self

    def stop(self) -> int:
        """SIGTERM, as Ctrl-C would; the exit code, with both pipes drained."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.exit_code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.exit_code = self.process.wait(timeout=5)
            raise AssertionError(f"the stack did not stop within 20 s of SIGTERM:\n{self.output}") from None
        for stream in (self.stdout, self.stderr):
            if stream is not None:
                stream.join(timeout=5)
        return self.exit_code

    def pairing_link(self) -> str:
        """The ready pairing link `make run` printed for the demo tenant."""
        assert self.stdout is not None, "the stack was never started"
        found = re.search(r'^Pairing link for tenant "demo".*\n\s+(http\S+)$', self.stdout.text, re.M)
        assert found, f"no pairing link in the output of `make run`:\n{self.output}"
        return found.group(1)

    # --- HTTP ----------------------------------------------------------------------------------------

    def call(
        self,
        method: str,
        path: str,
        *,
        json_body: Any = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
        signed: bool = True,
        secret_key: str = SECRET_KEY,
        send_body: bytes | None = None,
    ) -> Reply:
        """One request; signed with botocore's SigV4Auth unless `signed=False`.

        `send_body` replaces the body after signing (a tampered request); redirects are not followed.
        """
        send_headers = dict(headers or {})
        if json_body is not None:
            body = json.dumps(json_body).encode()
            send_headers.setdefault("Content-Type", "application/json")
        if signed:
            send_headers = sign(
                method, f"{self.api_url}{path}", body=body, headers=send_headers, secret_key=secret_key
            )
        payload = body if send_body is None else send_body
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request(method, path, body=payload or None, headers=send_headers)
            response = connection.getresponse()
            received = response.getheaders()
            return Reply(
                response.status,
                {name.lower(): value for name, value in received},
                response.read(),
                [value for name, value in received if name.lower() == "set-cookie"],
            )
        finally:
            connection.close()

    def start_pairing(self, tenant: str, customer: str, **extra: Any) -> str:
        """A signed `POST /pairings` (`extra`: e.g. `replace=True`); the pairing link it answers."""
        answer = self.call("POST", "/pairings", json_body={"tenant": tenant, "customer": customer, **extra})
        assert answer.status == 201, (answer.status, answer.body)
        pairing_url: str = answer.json()["pairing_url"]
        return pairing_url

    def link_path(self, pairing_url: str) -> str:
        """The path of a pairing link, which must be on this stack's own public `GET /pair/{id}` route."""
        assert pairing_url.startswith(f"{self.api_url}/pair/"), pairing_url
        return urlsplit(pairing_url).path

    def open_link(self, pairing_url: str) -> Browser:
        """Open a pairing link as the X3 administrator's browser does (GET, unsigned, no redirect followed):
        a 303 to Sage X3's authorise URL, with the cookie that binds this browser to the pairing."""
        answer = self.call("GET", self.link_path(pairing_url), signed=False)
        assert answer.status == 303, (answer.status, answer.body)
        cookies = {}
        for header in answer.set_cookies:
            name, _, value = header.split(";")[0].strip().partition("=")
            cookies[name] = value
        return Browser(answer.headers["location"], cookies)

    def start_browser(self, tenant: str, customer: str, **extra: Any) -> Browser:
        """`POST /pairings`, then open its link: the browser is at Sage X3's consent page."""
        return self.open_link(self.start_pairing(tenant, customer, **extra))

    def deliver(
        self, params: Mapping[str, str], form: str = "post-form", *, browser: Browser | None = None
    ) -> Reply:
        """Sage X3's callback, unsigned, in a shape of docs/sage-x3.md#callback, from `browser` (with
        the cookies it got when it opened the pairing link), or from a browser that has none."""
        params = dict(params)
        cookie = browser.cookie_header if browser is not None else {}
        if form == "get-authorizationCode":
            return self.call("GET", f"/callback?{urlencode(params)}", headers=cookie, signed=False)
        if form == "get-code":
            params["code"] = params.pop("authorizationCode")
            return self.call("GET", f"/callback?{urlencode(params)}", headers=cookie, signed=False)
        if form == "post-form":
            return self.call(
                "POST",
                "/callback",
                body=urlencode(params).encode(),
                headers={"Content-Type": "application/x-www-form-urlencoded", **cookie},
                signed=False,
            )
        if form == "post-json":
            return self.call("POST", "/callback", json_body=params, headers=cookie, signed=False)
        raise ValueError(f"unknown callback form {form!r}")

    def pair(
        self,
        tenant: str,
        customer: str,
        folders: list[str] | None = None,
        form: str = "post-form",
        **extra: Any,
    ) -> Reply:
        """Start, open the link, accept at Sage X3 (the emulator of this process), deliver the callback
        from the same browser: 200 expected."""
        assert self.sage is not None, "this stack runs its own emulator"
        browser = self.start_browser(tenant, customer, **extra)
        params = self.sage.approve(browser.authorise_url, folders=folders)
        answer = self.deliver(params, form, browser=browser)
        assert answer.status == 200, (answer.status, answer.body)
        return answer


@contextmanager
def running_stack(workdir: Path, *, sage: Emulator | None = None) -> Iterator[RunningStack]:
    """A started stack; stopped with SIGTERM at exit, which must end it with exit code 0."""
    stack = RunningStack(workdir, sage=sage).start()
    try:
        yield stack
    finally:
        code = stack.stop()
    assert code == 0, f"`python -m local.run` exited {code} after SIGTERM:\n{stack.output}"
    assert not stack.stack_file.exists(), "the stack file outlived `make run`"


def new_emulator(redirect_uri: str) -> Emulator:
    """Sage X3 in this process: eu-prod is `SAGE_X3_URL`, us-prod an allowed other region; the test
    app's registry entry accepts only the stack's redirect URI, as the Sage App Registry would."""
    return Emulator(
        regions=("eu-prod", "us-prod"),
        client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET,
        redirect_uris=[redirect_uri],
    ).start()


@contextmanager
def stack_with_emulator(workdir: Path) -> Iterator[tuple[RunningStack, Emulator]]:
    port = ports.free_port()
    sage = new_emulator(f"http://{HOST}:{port}/callback")
    try:
        stack = RunningStack(workdir, sage=sage, port=port)
        stack.start()
        try:
            yield stack, sage
        finally:
            code = stack.stop()
        assert code == 0, f"`python -m local.run` exited {code} after SIGTERM:\n{stack.output}"
        assert sage.errors == [], sage.errors
    finally:
        sage.stop()


@pytest.fixture(scope="module")
def sage_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningStack, Emulator]]:
    """One stack and its Sage X3 emulator for a module (tests use distinct tenants and customers)."""
    with stack_with_emulator(tmp_path_factory.mktemp("stack")) as pair:
        yield pair


@pytest.fixture
def stack(sage_stack: tuple[RunningStack, Emulator]) -> RunningStack:
    return sage_stack[0]


@pytest.fixture
def sage(sage_stack: tuple[RunningStack, Emulator]) -> Iterator[Emulator]:
    """The module's emulator, with its knobs and faults put back and its request log emptied."""
    emulator = sage_stack[1]
    knobs = emulator.settings
    emulator.clear_requests()
    yield emulator
    emulator.clear_faults()
    emulator.configure(**knobs)


def names(tenant: str) -> tuple[str, str]:
    """A tenant id and a customer URL of its own, so tests sharing one stack never meet."""
    return tenant, f"https://x3.{tenant.lower()}.example"
