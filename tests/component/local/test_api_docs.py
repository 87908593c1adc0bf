"""The local gateway serves openapi.yaml: `GET /openapi.json` (its `servers` the gateway) and `GET /docs`,
Swagger UI from its pinned package, every file of it from the gateway. Unsigned, local only, and none is a
route of template.yaml. (That the page lists every operation in a browser: tests/e2e/test_e2e_browser.py.)"""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from local import api_docs
from local import template as tpl
from tests.component.local.conftest import FakeApi
from tests.support.gateway import CREDENTIALS


class _Links(HTMLParser):
    """Every tag and the attributes that load or link something."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.links += [value or "" for name, value in attrs if name in ("href", "src", "action")]


def _page(api: FakeApi) -> str:
    reply = api.request("GET", "/docs")
    assert reply.status == 200, reply.body
    return reply.body.decode("utf-8")


def test_openapi_json_is_the_document_with_the_gateway_as_its_server(fake_api: FakeApi) -> None:
    reply = fake_api.request("GET", "/openapi.json")  # unsigned

    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == "application/json"
    served = reply.json
    assert served["servers"] == [{"url": fake_api.url, "description": "the local stack (`make run`)"}]
    expected = api_docs.load()
    assert {k: v for k, v in served.items() if k != "servers"} == {
        k: v for k, v in expected.items() if k != "servers"
    }
    assert fake_api.events == []  # no function was called


def test_a_signed_request_gets_the_same_document(fake_api: FakeApi) -> None:
    signed = fake_api.request("GET", "/openapi.json", sign_with=CREDENTIALS)
    assert signed.status == 200
    assert signed.json == fake_api.request("GET", "/openapi.json").json


def test_only_get_serves_them_and_they_are_no_template_route(fake_api: FakeApi) -> None:
    for path in ("/openapi.json", "/docs", "/docs/swagger-ui-bundle.js", "/docs/swagger-initializer.js"):
        assert all(route.path != path for route in tpl.routes())
        refused = fake_api.request("POST", path, sign_with=CREDENTIALS)
        assert refused.status == 403  # no such route, as API Gateway says it
        assert refused.json == {"message": "Missing Authentication Token"}
    assert fake_api.request("GET", "/openapi.json/x").status == 403


def test_docs_is_swagger_ui_from_the_pinned_package_served_by_the_gateway(fake_api: FakeApi) -> None:
    """Every file the page loads answers from the gateway itself (offline: no CDN), and Swagger UI's
    are the installed package's own, byte for byte."""
    reply = fake_api.request("GET", "/docs")  # unsigned
    assert reply.status == 200, reply.body
    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    parsed = _Links()
    parsed.feed(reply.body.decode("utf-8"))
    assert "/docs/swagger-ui-bundle.js" in parsed.links and "/docs/swagger-ui.css" in parsed.links
    assert all(link.startswith("/docs/") for link in parsed.links), parsed.links
    for link in parsed.links:
        loaded = fake_api.request("GET", link)
        assert loaded.status == 200, link
        assert loaded.body, link
        name = link.removeprefix("/docs/")
        if name in api_docs.STATIC_FILES:
            assert loaded.headers["Content-Type"] == api_docs.STATIC_FILES[name]
            assert loaded.body == (api_docs.static_dir() / name).read_bytes(), link
    assert fake_api.events == []  # no function was called


def test_the_page_reads_the_document_from_the_gateway(fake_api: FakeApi) -> None:
    script = fake_api.request("GET", "/docs/swagger-initializer.js")
    assert script.status == 200
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    text = script.body.decode("utf-8")
    assert 'url: "/openapi.json"' in text
    assert "validatorUrl: null" in text  # no badge fetched from swagger.io
    assert "http" not in text


def test_the_package_is_swagger_ui_5_which_reads_openapi_3_1() -> None:
    """openapi.yaml is OpenAPI 3.1: Swagger UI 4 (what swagger-ui-bundle ships) refuses to render it."""
    assert api_docs.load()["openapi"].startswith("3.1")
    bundle = (api_docs.static_dir() / "swagger-ui-bundle.js").read_text(encoding="utf-8")
    assert re.search(r'"5\.\d+\.\d+"', bundle)


def test_the_page_may_load_and_call_nothing_but_the_gateway(fake_api: FakeApi) -> None:
    policy = fake_api.request("GET", "/docs").headers["Content-Security-Policy"]
    assert policy == api_docs.PAGE_SECURITY_POLICY
    directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert directives["script-src"] == "'self'"  # no inline script, nothing from elsewhere
    assert directives["connect-src"] == "'self'"
    assert "http" not in policy
    assert (
        fake_api.request("GET", "/docs/swagger-ui-bundle.js").headers["X-Content-Type-Options"] == "nosniff"
    )


def test_only_the_packages_files_the_page_uses_are_served(fake_api: FakeApi) -> None:
    for path in ("/docs/swagger-editor-bundle.js", "/docs/../openapi.yaml", "/docs/LICENSE"):
        assert fake_api.request("GET", path).status == 403  # no such route, as API Gateway says it


def test_without_the_package_docs_says_what_to_run(monkeypatch: pytest.MonkeyPatch) -> None:
    api_docs.static_dir.cache_clear()
    monkeypatch.setattr(api_docs, "SWAGGER_UI_PACKAGE", "no_such_swagger_ui_package")
    try:
        with pytest.raises(api_docs.SwaggerUiMissing, match="make venv"):
            api_docs.docs_page("http://h")
    finally:
        api_docs.static_dir.cache_clear()
