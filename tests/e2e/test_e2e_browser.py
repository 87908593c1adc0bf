"""A person pairs in a real browser: headless Chromium (Debian's) walks the pairing link that `make run`
printed through the embedded emulator's consent page and back to the stack's `/callback`.

The stack runs with plain `make run` settings (no SAGE_X3_URL: the emulator is embedded). Full-page
screenshots land in test-artifacts/screenshots/.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import SCREENSHOTS, RunningStack, running_stack

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
def page(tmp_path: Path) -> Iterator[Any]:
    """A fresh Chromium profile and one page in it."""
    executable = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(
            "Playwright is missing: run `make test`, which installs requirements-dev.txt", pytrace=False
        )
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path / "chromium-profile"),
            executable_path=executable,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1000, "height": 700},
        )
        try:
            context.set_default_timeout(TIMEOUT_MS)
            yield context.new_page()
        finally:
            context.close()


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOTS / name
    page.screenshot(path=str(target), full_page=True)
    assert target.stat().st_size > 1000
    return target


def open_consent_page(page: Any, link: str, customer: str) -> None:
    from playwright.sync_api import expect

    answer = page.goto(link)
    assert answer is not None and answer.status == 200
    expect(page.locator("h1")).to_have_text("Pending application approval")
    expect(page.locator("#customer")).to_have_text(customer)
    expect(page.locator('input[type="checkbox"][name="folder"]')).to_have_count(3)  # SEED, X3, DEMO


def test_a_person_pairs_the_demo_tenant_in_a_browser(demo_stack: RunningStack, page: Any) -> None:
    from playwright.sync_api import expect

    open_consent_page(page, demo_stack.pairing_link(), "https://x3.demo.example")
    page.check('input[name="folder"][value="SEED"]')
    page.check('input[name="folder"][value="X3"]')
    expect(page.locator('input[name="folder"]:checked')).to_have_count(2)
    screenshot(page, "consent.png")

    with page.expect_response(lambda response: response.url == demo_stack.redirect_uri) as arrived:
        page.get_by_role("button", name="Accept").click()
    callback = arrived.value
    assert callback.request.method == "POST"  # the emulator's auto-submitted form
    assert callback.status == 200
    page.wait_for_url(demo_stack.redirect_uri, wait_until="load")
    expect(page.locator("h1")).to_have_text("Pairing complete")
    expect(page.locator("#tenant")).to_have_text("demo")
    expect(page.locator("#folders li")).to_have_text(["SEED", "X3"])
    screenshot(page, "success.png")

    folders = demo_stack.call("GET", "/tenants/demo/folders")
    assert folders.status == 200, folders.body
    assert [folder["name"] for folder in folders.json()["folders"]] == ["SEED", "X3"]


def test_a_person_rejects_in_a_browser(demo_stack: RunningStack, page: Any) -> None:
    from playwright.sync_api import expect

    customer = "https://x3.rejecting.example"
    link = demo_stack.start_pairing("rejecting", customer)
    open_consent_page(page, link, customer)

    with page.expect_response(lambda response: response.url == demo_stack.redirect_uri) as arrived:
        page.get_by_role("button", name="Reject").click()
    callback = arrived.value
    assert callback.request.method == "POST"
    assert callback.status == 400
    page.wait_for_url(demo_stack.redirect_uri, wait_until="load")
    expect(page.locator("h1")).to_have_text("Pairing failed")
    # One fixed sentence for a refusal: the customer's reason, in Sage's words, goes to the log only.
    expect(page.locator("#message")).to_have_text("Access was not granted in Sage X3, so nothing was paired.")
    expect(page.locator("body")).not_to_contain_text("rejected")
    screenshot(page, "rejected.png")

    described = demo_stack.call("GET", "/tenants/rejecting")
    assert described.status == 404, described.body
    assert described.json()["error"] == "not_paired"
