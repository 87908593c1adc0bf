"""`x3link console` in a real browser: the command runs as a subprocess (`.venv/bin/x3link console
--no-open`) against a stack started as `make run` starts it, found through its stack file with no flag;
headless Chromium opens the address it printed. The X3 administrator consents in a browser of their own,
at the Sage X3 emulator's page (an emulator of this process, so a test can make Sage refuse a refresh).

What the page shows is checked against what the API answers, signed by the test itself. Screenshots land
in test-artifacts/screenshots/.
"""

from __future__ import annotations

import http.client
import json
import re
import selectors
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from local.sagex3_emulator import Emulator
from tests.e2e.conftest import HOST, RunningStack, names, subprocess_env
from tests.e2e.test_e2e_browser import (
    CHROMIUM_ARGS,
    TIMEOUT_MS,
    accept,
    chromium_path,
    expect_success_page,
    open_consent_page,
    screenshot,
)
from tests.e2e.test_e2e_keep_alive import make_invoke

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

X3LINK = Path(sys.executable).parent / "x3link"
ADDRESS = re.compile(r"^http://127\.0\.0\.1:(\d+)/#token=([A-Za-z0-9_-]{43})$")
# The page polls every 5 s; a loaded machine gets three times that, and more.
POLLED_MS = 20_000


class RunningConsole:
    """`x3link console --no-open` as an operator runs it, until SIGTERM."""

    def __init__(self, stack: RunningStack) -> None:
        assert X3LINK.exists(), f"{X3LINK} is missing: `make venv` installs it (pip install --editable .)"
        self.process = subprocess.Popen(
            [str(X3LINK), "console", "--no-open"],
            env=subprocess_env(LOCAL_STACK_FILE=str(stack.stack_file)),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.url = self._first_line(deadline=time.monotonic() + 30)
        found = ADDRESS.match(self.url)
        assert found, self.url
        self.port, self.token = int(found.group(1)), found.group(2)

    def _first_line(self, deadline: float) -> str:
        assert self.process.stdout is not None
        with selectors.DefaultSelector() as selector:
            selector.register(self.process.stdout, selectors.EVENT_READ)
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                self.process.kill()
                raise AssertionError("`x3link console` printed no address within 30 s")
        line = self.process.stdout.readline().strip()
        if not line:
            self.process.wait(timeout=10)
            raise AssertionError(f"`x3link console` exited {self.process.returncode}: {self.stderr()}")
        return line

    def stderr(self) -> str:
        assert self.process.stderr is not None
        return self.process.stderr.read()

    def stop(self) -> tuple[int, str]:
        self.process.terminate()
        try:
            code = self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)
            raise AssertionError("`x3link console` did not stop within 20 s of SIGTERM") from None
        return code, self.stderr()

    def raw(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> tuple[int, Any]:
        """One request as any program on this machine could send it: status, JSON (None if no body)."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            connection.request(method, path, body=body or None, headers=headers)
            response = connection.getresponse()
            content = response.read()
            return response.status, json.loads(content) if content else None
        finally:
            connection.close()


@pytest.fixture(autouse=True)
def _patient_expect() -> Iterator[None]:
    """Playwright's `expect` waits 5 s by default; beside other stacks on a loaded machine, give it more."""
    from playwright.sync_api import expect

    expect.set_options(timeout=TIMEOUT_MS)
    yield
    expect.set_options(timeout=5_000)


@pytest.fixture(scope="module")
def console(sage_stack: tuple[RunningStack, Emulator]) -> Iterator[RunningConsole]:
    running = RunningConsole(sage_stack[0])
    try:
        yield running
    finally:
        code, said = running.stop()
        assert code == 0, (code, said)
        assert "Console stopped." in said, said
        assert running.token not in said  # the token is printed once, on stdout


@pytest.fixture
def browsers(tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens browsers of their own (the operator's, the X3 administrator's): a page in each."""
    executable = chromium_path()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        contexts: list[Any] = []

        def open_page() -> Any:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / f"chromium-profile-{len(contexts)}"),
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 900},
            )
            contexts.append(context)
            context.set_default_timeout(TIMEOUT_MS)
            return context.new_page()

        try:
            yield open_page
        finally:
            for context in contexts:
                context.close()


def open_console(page: Any, console: RunningConsole) -> Any:
    """The operator opens the address the command printed: the page loads every list."""
    from playwright.sync_api import expect

    answer = page.goto(console.url)
    assert answer is not None and answer.status == 200
    expect(page.locator("body")).to_have_attribute("data-loaded", re.compile(r"^\d+$"))
    # The token left the address bar once the page kept it.
    assert page.url == f"http://127.0.0.1:{console.port}/", page.url
    return page


def pairing_row(page: Any, tenant: str) -> Any:
    return page.locator(f'#pairings-rows tr[data-tenant="{tenant}"]')


def link_row(page: Any, tenant: str) -> Any:
    return page.locator(f'#links-rows tr[data-tenant="{tenant}"]')


def test_a_pairing_appears_once_the_administrator_consents_in_their_browser(
    stack: RunningStack, sage: Emulator, console: RunningConsole, browsers: Callable[[], Any]
) -> None:
    from playwright.sync_api import expect

    tenant, customer = names("console-new")
    operator = open_console(browsers(), console)
    expect(pairing_row(operator, tenant)).to_have_count(0)

    operator.fill('#link-form input[name="tenant"]', tenant)
    operator.fill('#link-form input[name="customer"]', customer)
    operator.get_by_role("button", name="Create link").click()

    expect(operator.locator("#notice")).to_have_text(f"Created a pairing link for {tenant}.")
    link = operator.locator("#link-url").get_attribute("href")
    assert link is not None and link.startswith(f"{stack.api_url}/pair/"), link
    expect(operator.locator("#link-url")).to_have_text(link)
    expect(link_row(operator, tenant).locator(".status")).to_have_text("pending")
    listed = stack.call("GET", "/pairings?status=pending").json()["pairings"]
    assert [entry["customer"] for entry in listed if entry["tenant"] == tenant] == [customer]

    administrator = browsers()  # the X3 administrator's own browser, where the link was sent
    open_consent_page(administrator, link, customer)
    accept(administrator, stack, ["SEED", "X3"])
    expect_success_page(administrator, tenant, ["SEED", "X3"])

    # The operator did nothing: the page's poll brings the pairing in.
    row = pairing_row(operator, tenant)
    expect(row.locator(".status")).to_have_text("active", timeout=POLLED_MS)
    expect(row.locator("td").nth(1)).to_have_text(customer)
    expect(row.locator("td").nth(3)).to_have_text("SEED, X3")
    expect(link_row(operator, tenant).locator(".status")).to_have_text("used", timeout=POLLED_MS)
    assert stack.call("GET", f"/tenants/{tenant}").json()["status"] == "active"

    operator.get_by_role("button", name=f"Activity of {tenant}").click()
    expect(operator.locator("#activity-title")).to_have_text(f"Activity of {tenant}")
    # Written from the table's stream within seconds; the page reloads it on its poll.
    expect(operator.locator("#activity-rows .type")).to_have_text(["paired"], timeout=POLLED_MS)
    screenshot(operator, "console-paired.png")


def test_a_retry_and_a_delete_from_the_page_change_what_the_api_answers(
    stack: RunningStack, sage: Emulator, console: RunningConsole, browsers: Callable[[], Any]
) -> None:
    from playwright.sync_api import expect

    tenant, customer = names("console-steer")
    stack.pair(tenant, customer, folders=["SEED"])
    # Sage names the grant dead right after it accepted these credentials: expired at once.
    sage.fail_next("refresh", status=403, body={"message": "The request has expired."})
    refused = stack.call("POST", f"/tenants/{tenant}/refresh")
    assert (refused.status, refused.json()["error"]) == (409, "pairing_expired"), refused.text

    operator = open_console(browsers(), console)
    row = pairing_row(operator, tenant)
    expect(row.locator(".status")).to_have_text("expired")
    expect(row.locator("td").nth(6)).to_contain_text("Sage answered 403")

    # A retry Sage still refuses: the API's sentence on the page, the pairing as it was.
    sage.fail_next("refresh", status=403, body={"message": "The request has expired."})
    with operator.expect_response(
        lambda response: response.url.endswith(f"/api/tenants/{tenant}/refresh")
    ) as got:
        operator.get_by_role("button", name=f"Retry {tenant}").click()
    said = got.value.json()
    assert (got.value.status, said["error"]) == (409, "pairing_expired"), said
    expect(operator.locator("#notice")).to_have_text(said["message"])
    expect(operator.locator("#notice")).to_have_class("error")
    expect(row.locator(".status")).to_have_text("expired")
    assert stack.call("GET", f"/tenants/{tenant}").json()["status"] == "expired"

    # A retry Sage accepts brings it back.
    refreshes = sage.count("refresh")
    operator.get_by_role("button", name=f"Retry {tenant}").click()
    expect(operator.locator("#notice")).to_have_text(f"Refreshed {tenant}: active.")
    expect(row.locator(".status")).to_have_text("active")
    described = stack.call("GET", f"/tenants/{tenant}").json()
    assert described["status"] == "active" and "last_refusal" not in described
    assert sage.count("refresh") == refreshes + 1
    screenshot(operator, "console-retried.png")

    # Delete asks first: refused, nothing happens.
    operator.once("dialog", lambda dialog: dialog.dismiss())
    operator.get_by_role("button", name=f"Delete {tenant}").click()
    assert stack.call("GET", f"/tenants/{tenant}").status == 200

    operator.once("dialog", lambda dialog: dialog.accept())
    operator.get_by_role("button", name=f"Delete {tenant}").click()
    expect(operator.locator("#notice")).to_have_text(f"Deleted the pairing of {tenant}.")
    expect(row).to_have_count(0)
    gone = stack.call("GET", f"/tenants/{tenant}")
    assert (gone.status, gone.json()["error"]) == (404, "not_paired")


def test_a_pending_link_is_revoked_from_the_page_and_never_opens(
    stack: RunningStack, console: RunningConsole, browsers: Callable[[], Any]
) -> None:
    from playwright.sync_api import expect

    tenant, customer = names("console-revoke")
    link = stack.start_pairing(tenant, customer)
    operator = open_console(browsers(), console)
    expect(link_row(operator, tenant).locator(".status")).to_have_text("pending")

    operator.once("dialog", lambda dialog: dialog.accept())
    operator.get_by_role("button", name=f"Revoke the link of {tenant}").click()

    expect(operator.locator("#notice")).to_have_text(
        f"Revoked the pairing link of {tenant}: it no longer opens."
    )
    expect(link_row(operator, tenant).locator(".status")).to_have_text("revoked")
    expect(link_row(operator, tenant).get_by_role("button")).to_have_count(0)
    revoked = stack.call("GET", "/pairings?status=revoked").json()["pairings"]
    assert tenant in [entry["tenant"] for entry in revoked]
    assert stack.call("GET", stack.link_path(link), signed=False).status == 404


def test_a_keep_alive_run_is_listed_and_shown(
    stack: RunningStack, console: RunningConsole, browsers: Callable[[], Any]
) -> None:
    from playwright.sync_api import expect

    ran = make_invoke(stack, "TokenRefreshFunction", "events/scheduled.json")
    assert ran.returncode == 0, ran.stderr
    run = json.loads(ran.stdout)["run"]
    operator = open_console(browsers(), console)

    operator.get_by_role("button", name=f"Run {run}").click()

    report = stack.call("GET", f"/keep-alive/runs/{run}").json()
    expect(operator.locator("#run-detail-title")).to_have_text(
        f"Run {run}: {report['refreshed']} refreshed, {report['failed']} failed"
    )
    first = operator.locator("#runs-rows tr").first
    expect(first).to_have_attribute("data-run", run)  # newest first


def test_no_other_site_or_program_drives_the_console(stack: RunningStack, console: RunningConsole) -> None:
    """Every lock alone refuses, and sends nothing to the API; the same call with all three is passed on."""
    tenant, customer = names("console-guard")
    stack.pair(tenant, customer)
    own = {"Host": f"127.0.0.1:{console.port}", "X-Console-Token": console.token}
    delete = f"/api/tenants/{tenant}"

    refusals = {
        "no_token": {"Host": own["Host"]},
        "wrong_token": {**own, "X-Console-Token": "x" * 43},
        "foreign_host": {**own, "Host": f"rebound.attacker.example:{console.port}"},
        "foreign_origin": {**own, "Origin": "https://attacker.example"},
    }
    for error, headers in refusals.items():
        status, answer = console.raw("DELETE", delete, headers)
        assert (status, answer["error"]) == (403, error), (error, answer)
    status, answer = console.raw("GET", f"/api/tenants/{tenant}/folders", own)  # not a route it shows
    assert (status, answer["error"]) == (404, "not_proxied")
    preflight, _ = console.raw(
        "OPTIONS",
        delete,
        {**own, "Origin": "https://attacker.example", "Access-Control-Request-Method": "DELETE"},
    )
    assert preflight == 403
    assert stack.call("GET", f"/tenants/{tenant}").status == 200  # nothing reached the API

    status, answer = console.raw("GET", f"/api/tenants/{tenant}", own)
    assert (status, answer["tenant"]) == (200, tenant)
    status, _ = console.raw("DELETE", delete, {**own, "Origin": f"http://127.0.0.1:{console.port}"})
    assert status == 204
    assert stack.call("GET", f"/tenants/{tenant}").status == 404
    assert urlsplit(console.url).fragment == f"token={console.token}"


def test_what_the_api_says_is_shown_as_text_never_run(
    stack: RunningStack, console: RunningConsole, browsers: Callable[[], Any]
) -> None:
    """A customer URL is anyone's string the API accepted: on the page it is text, not markup."""
    from playwright.sync_api import expect

    tenant = "console-hostile"
    customer = "https://x3.hostile.example/\"><img/src=x/id=injected/onerror=document.title='pwned'>"
    stack.start_pairing(tenant, customer)

    operator = open_console(browsers(), console)

    expect(link_row(operator, tenant).locator("td").nth(2)).to_have_text(customer)
    expect(operator.locator("#injected")).to_have_count(0)
    assert operator.title() == "x3link console"


def test_the_page_opened_without_the_printed_address_says_how_to_get_in(
    console: RunningConsole, browsers: Callable[[], Any]
) -> None:
    from playwright.sync_api import expect

    page = browsers()
    calls: list[str] = []
    page.on("request", lambda request: calls.append(request.url))

    page.goto(f"http://127.0.0.1:{console.port}/")

    expect(page.locator("#notice")).to_have_text(
        "This page has no console token: open the address `x3link console` printed."
    )
    assert not [url for url in calls if "/api/" in url], calls
