"""A person pairs in a real browser: headless Chromium (Debian's) opens the pairing link that `make run`
printed, is sent on (303) to the embedded emulator's consent page, and comes back to the stack's
`/callback` with the `__Host-` cookie the link set, as the callback requires.

The stack runs with plain `make run` settings (no SAGE_X3_URL: the emulator is embedded). Full-page
screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from local import api_docs
from local.sagex3_emulator import Customer
from tests.e2e.conftest import HOST, SCREENSHOTS, RunningStack, running_stack
from x3link.pairing.browser_binding import COOKIE_PREFIX
from x3link.web.pages import FAILURE_SENTENCES

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 15_000
# Sage X3's authorise page, wherever the emulator serves it on this machine.
AUTHORISE = re.compile(rf"^http://{re.escape(HOST)}:\d+/v1/token/authorise\?")


def chromium_path() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found is None:
        pytest.fail(
            "Chromium is missing: run `make test` (or `make e2e`), which installs Debian's chromium "
            "through local/ensure-chromium.sh; the browser tests cannot run without it",
            pytrace=False,
        )
    return found


@pytest.fixture(scope="module")
def demo_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    """`make run` as a developer runs it: the Sage X3 emulator embedded, the demo pairing link printed."""
    with running_stack(tmp_path_factory.mktemp("demo")) as stack:
        yield stack


@pytest.fixture
def new_browser(tmp_path: Path) -> Iterator[Callable[[], Any]]:
    """Opens a browser of its own (a fresh Chromium profile: its own cookies) and gives a page in it."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright is missing: run `make test`, which installs requirements-dev.txt", pytrace=False
        )
    with sync_playwright() as playwright:
        contexts: list[Any] = []

        def open_page() -> Any:
            context = playwright.chromium.launch_persistent_context(
                str(tmp_path / f"chromium-profile-{len(contexts)}"),
                executable_path=executable,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1000, "height": 700},
            )
            contexts.append(context)
            context.set_default_timeout(TIMEOUT_MS)
            return context.new_page()

        try:
            yield open_page
        finally:
            for context in contexts:
                context.close()


@pytest.fixture
def page(new_browser: Callable[[], Any]) -> Any:
    """The person's browser, and one page in it."""
    return new_browser()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / name
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 1000
    return target


def open_consent_page(page: Any, pairing_url: str, customer: str) -> None:
    """Open the pairing link: its 303 (with the binding cookie) leads on to Sage X3's consent page."""
    from playwright.sync_api import expect

    answer = page.goto(pairing_url)
    assert answer is not None and answer.status == 200
    assert AUTHORISE.match(answer.request.url), answer.request.url
    opening = answer.request.redirected_from
    assert opening is not None and opening.url == pairing_url
    assert opening.response() is not None and opening.response().status == 303
    expect(page.locator("h1")).to_have_text("Pending application approval")
    expect(page.locator("#customer")).to_have_text(customer)
    expect(page.locator('input[type="checkbox"][name="folder"]')).to_have_count(3)  # SEED, X3, DEMO


def binding_cookie(page: Any, stack: RunningStack) -> dict[str, Any]:
    """The one binding cookie the browser keeps for the stack, as Chromium stored it."""
    kept = [cookie for cookie in page.context.cookies(stack.api_url) if cookie["name"].startswith("__Host-")]
    assert len(kept) == 1, page.context.cookies()
    return dict(kept[0])


def accept(page: Any, stack: RunningStack, folders: list[str], expected_status: int = 200) -> Any:
    """Tick `folders`, Accept: the emulator's page POSTs the callback back to the stack. That request."""
    for folder in folders:
        page.check(f'input[name="folder"][value="{folder}"]')
    with page.expect_response(lambda response: response.url == stack.redirect_uri) as arrived:
        page.get_by_role("button", name="Accept").click()
    callback = arrived.value
    assert callback.request.method == "POST"  # the emulator's auto-submitted form
    assert callback.status == expected_status
    page.wait_for_url(stack.redirect_uri, wait_until="load")
    return callback


def expect_success_page(page: Any, tenant: str, folders: list[str]) -> None:
    from playwright.sync_api import expect

    expect(page.locator("h1")).to_have_text("Pairing complete")
    expect(page.locator("#tenant")).to_have_text(tenant)
    expect(page.locator("#folders li")).to_have_text(folders)


def expect_failure_page(page: Any, sentence: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator("h1")).to_have_text("Pairing failed")
    expect(page.locator("#message")).to_have_text(sentence)


def test_a_person_pairs_the_demo_tenant_in_a_browser(demo_stack: RunningStack, page: Any) -> None:
    from playwright.sync_api import expect

    open_consent_page(page, demo_stack.pairing_link(), "https://x3.demo.example")
    # Chromium kept the `__Host-` cookie the link set over plain http: 127.0.0.1 is a loopback host, a
    # "potentially trustworthy" origin, which Chromium lets set and receive Secure cookies (any other
    # http host would have the cookie refused).
    cookie = binding_cookie(page, demo_stack)
    assert cookie["name"].startswith(COOKIE_PREFIX)
    assert (cookie["domain"], cookie["path"]) == (HOST, "/")
    assert (cookie["secure"], cookie["httpOnly"], cookie["sameSite"]) == (True, True, "None")
    assert cookie["expires"] > 0  # Max-Age: a persistent cookie, not a session one
    page.check('input[name="folder"][value="SEED"]')
    page.check('input[name="folder"][value="X3"]')
    expect(page.locator('input[name="folder"]:checked')).to_have_count(2)
    screenshot(page, "consent.png")

    callback = accept(page, demo_stack, [])
    # The auto-submitted POST from the emulator's origin (another port of 127.0.0.1: same site,
    # another origin) carried the cookie.
    sent = callback.request.all_headers()
    assert f"{cookie['name']}={cookie['value']}" in sent.get("cookie", ""), sent
    assert sent.get("sec-fetch-site") == "same-site", sent
    expect_success_page(page, "demo", ["SEED", "X3"])
    # The page names the X3 the tenant now reaches: the emulator's configuration id is its `sub`.
    expect(page.locator("#x3-subject")).to_have_text(Customer("https://x3.demo.example", []).config_id or "")
    expect(page.locator("#x3-issuer")).to_have_text(re.compile(r"^api\.[a-z0-9-]+-sagex3\.com$"))
    expect(page.locator("#endpoint")).to_have_text(re.compile(r"^https?://"))
    screenshot(page, "success.png")

    folders = demo_stack.call("GET", "/tenants/demo/folders")
    assert folders.status == 200, folders.body
    assert [folder["name"] for folder in folders.json()["folders"]] == ["SEED", "X3"]


def test_the_cookie_goes_with_a_cross_site_post_from_sage(demo_stack: RunningStack, page: Any) -> None:
    """Sage X3 is another site than the app, so its auto-submitted callback POST is cross-site: only a
    `SameSite=None` cookie goes with it. The emulator shares the stack's host (127.0.0.1), so the person
    goes on at the same consent page named http://localhost, another site, as Sage's would be."""
    customer = "https://x3.cross-site.example"
    open_consent_page(page, demo_stack.start_pairing("cross-site", customer), customer)
    cookie = binding_cookie(page, demo_stack)
    other_site = page.url.replace(f"http://{HOST}:", "http://localhost:", 1)
    assert urlsplit(other_site).hostname == "localhost"
    answer = page.goto(other_site)
    assert answer is not None and answer.status == 200
    assert page.locator("#customer").inner_text() == customer

    callback = accept(page, demo_stack, ["DEMO"])

    sent = callback.request.all_headers()
    assert sent.get("sec-fetch-site") == "cross-site", sent
    assert f"{cookie['name']}={cookie['value']}" in sent.get("cookie", ""), sent
    expect_success_page(page, "cross-site", ["DEMO"])
    described = demo_stack.call("GET", "/tenants/cross-site")
    assert described.status == 200, described.body
    assert described.json()["folders"] == ["DEMO"]


def test_the_success_page_reloaded_shows_pairing_complete_again(demo_stack: RunningStack, page: Any) -> None:
    customer = "https://x3.reloading.example"
    open_consent_page(page, demo_stack.start_pairing("reloading", customer), customer)
    accept(page, demo_stack, ["SEED"])
    expect_success_page(page, "reloading", ["SEED"])
    paired = demo_stack.call("GET", "/tenants/reloading").json()

    answer = page.reload()  # the browser posts the same callback again, with its cookie

    assert answer is not None and answer.status == 200
    assert answer.request.method == "POST"
    expect_success_page(page, "reloading", ["SEED"])
    screenshot(page, "success-reloaded.png")
    assert demo_stack.call("GET", "/tenants/reloading").json() == paired  # nothing exchanged or stored again


def test_a_pairing_link_opened_a_second_time_shows_the_failure_page(
    demo_stack: RunningStack, page: Any
) -> None:
    customer = "https://x3.twice.example"
    pairing_url = demo_stack.start_pairing("twice", customer)
    open_consent_page(page, pairing_url, customer)

    answer = page.goto(pairing_url)

    assert answer is not None and answer.status == 404
    assert page.url == pairing_url  # no redirect this time
    expect_failure_page(page, FAILURE_SENTENCES["pairing_link_invalid"])
    screenshot(page, "link-opened-twice.png")
    assert demo_stack.call("GET", "/tenants/twice").status == 404


def test_a_callback_replayed_in_another_browser_shows_the_browser_mismatch(
    demo_stack: RunningStack, page: Any, new_browser: Callable[[], Any]
) -> None:
    customer = "https://x3.replayed.example"
    open_consent_page(page, demo_stack.start_pairing("replayed", customer), customer)
    callback = accept(page, demo_stack, ["X3"])
    params = callback.request.post_data  # what Sage X3 sent this browser back with
    assert params and "state=" in params
    leaked = f"{demo_stack.redirect_uri}?{params}"  # the callback, as a URL someone copied

    elsewhere = new_browser()
    assert elsewhere.context.cookies(demo_stack.api_url) == []
    answer = elsewhere.goto(leaked)

    assert answer is not None and answer.status == 400
    expect_failure_page(elsewhere, FAILURE_SENTENCES["browser_mismatch"])
    assert "replayed" not in elsewhere.content() and "X3</li>" not in elsewhere.content()
    screenshot(elsewhere, "callback-in-another-browser.png")
    # The same URL in the browser that paired is a reload: the success page again.
    again = page.goto(leaked)
    assert again is not None and again.status == 200
    expect_success_page(page, "replayed", ["X3"])


def test_a_person_rejects_in_a_browser(demo_stack: RunningStack, page: Any) -> None:
    from playwright.sync_api import expect

    customer = "https://x3.rejecting.example"
    open_consent_page(page, demo_stack.start_pairing("rejecting", customer), customer)

    with page.expect_response(lambda response: response.url == demo_stack.redirect_uri) as arrived:
        page.get_by_role("button", name="Reject").click()
    callback = arrived.value
    assert callback.request.method == "POST"
    assert callback.status == 400
    page.wait_for_url(demo_stack.redirect_uri, wait_until="load")
    # One fixed sentence for a refusal: the customer's reason, in Sage's words, goes to the log only.
    expect_failure_page(page, "Access was not granted in Sage X3, so nothing was paired.")
    expect(page.locator("body")).not_to_contain_text("rejected")
    screenshot(page, "rejected.png")

    described = demo_stack.call("GET", "/tenants/rejecting")
    assert described.status == 404, described.body
    assert described.json()["error"] == "not_paired"


def test_the_api_docs_page_lists_every_operation_offline(demo_stack: RunningStack, page: Any) -> None:
    """`make run`'s /docs in a browser: Swagger UI (the pinned package's) reads the gateway's /openapi.json
    and lists every operation of openapi.yaml, with nothing loaded from anywhere but the gateway."""
    from playwright.sync_api import expect

    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))

    answer = page.goto(f"{demo_stack.api_url}/docs")
    assert answer is not None and answer.status == 200
    expect(page.locator(".information-container .title")).to_contain_text(api_docs.load()["info"]["title"])
    expected = {(method, path) for method, path, _ in api_docs.operations(api_docs.load())}
    expect(page.locator(".opblock-summary").first).to_be_visible()
    listed = {
        (
            block.locator(".opblock-summary-method").inner_text(),
            block.locator(".opblock-summary-path").inner_text(),
        )
        for block in page.locator(".opblock-summary").all()
    }
    assert listed == expected
    expect(page.locator(".servers select")).to_contain_text(demo_stack.api_url)
    screenshot(page, "api-docs.png")

    assert f"{demo_stack.api_url}/openapi.json" in requested
    assert all(url.startswith(f"{demo_stack.api_url}/") for url in requested), requested
    assert problems == []
