"""The local gateway serves openapi.yaml: `GET /openapi.json` (its `servers` the gateway) and `GET /docs`, a
self-contained page generated from it. Unsigned, local only, and neither is a route of template.yaml."""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser
from typing import Any

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
    for path in ("/openapi.json", "/docs"):
        assert all(route.path != path for route in tpl.routes())
        refused = fake_api.request("POST", path, sign_with=CREDENTIALS)
        assert refused.status == 403  # no such route, as API Gateway says it
        assert refused.json == {"message": "Missing Authentication Token"}
    assert fake_api.request("GET", "/openapi.json/x").status == 403


def test_the_page_lists_every_operation_with_its_parameters_body_and_responses(fake_api: FakeApi) -> None:
    page = _page(fake_api)
    document = api_docs.load()

    for method, path, operation in api_docs.operations(document):
        anchor = f'id="op-{operation["operationId"]}"'
        assert anchor in page, f"{method} {path}"
        section = page.split(anchor, 1)[1].split("</section>", 1)[0]
        assert f'<span class="method {method.lower()}">{method}</span> <code>{path}</code>' in section
        assert html.escape(operation["summary"]) in section, f"{method} {path}"
        assert ("Auth: signed: sigv4" in section) == bool(operation.get("security", document["security"]))
        for status in operation["responses"]:
            assert f"<td><strong>{status}</strong></td>" in section, f"{method} {path} {status}"
        if "requestBody" in operation:
            assert "<h3>Request body" in section
        for name in re.findall(r"\{([^}]+)\}", path):
            assert f"<td><code>{name}</code></td><td>path</td><td>yes</td>" in section
    for name in document["components"]["schemas"]:
        assert f'id="schema-{name}"' in page
    assert '<a href="#schema-TenantView">#/components/schemas/TenantView</a>' in page
    assert f"<code>{fake_api.url}</code>" in page  # the server it is served from


def test_the_page_is_self_contained(fake_api: FakeApi) -> None:
    reply = fake_api.request("GET", "/docs")

    assert reply.headers["Content-Type"] == "text/html; charset=utf-8"
    assert reply.headers["Content-Security-Policy"] == api_docs.PAGE_SECURITY_POLICY
    assert "script-src" not in api_docs.PAGE_SECURITY_POLICY  # default-src 'none': no script runs
    parsed = _Links()
    parsed.feed(reply.body.decode("utf-8"))
    assert "script" not in parsed.tags and "link" not in parsed.tags and "iframe" not in parsed.tags
    assert all(link.startswith("#") or link == "/openapi.json" for link in parsed.links), parsed.links


def test_everything_the_document_says_is_escaped() -> None:
    hostile = "<script>alert(1)</script>"
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": hostile, "version": "1", "description": f"`{hostile}`"},
        "servers": [{"url": f'http://x/"><img src=x onerror={hostile}>'}],
        "security": [],
        "paths": {
            f"/{hostile}": {
                "get": {
                    "operationId": '"><script>',
                    "summary": hostile,
                    "description": hostile,
                    "parameters": [{"name": hostile, "in": "query", "description": hostile}],
                    "responses": {
                        "200": {"description": hostile, "content": {"text/html": {"example": hostile}}}
                    },
                }
            }
        },
        "components": {"schemas": {"X": {"description": hostile}}},
    }
    page = api_docs.render_page(document)

    parsed = _Links()
    parsed.feed(page)
    assert "script" not in parsed.tags and "img" not in parsed.tags
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert (
        json.loads(json.dumps(api_docs.for_server(document, "http://h")))["servers"][0]["url"] == "http://h"
    )
