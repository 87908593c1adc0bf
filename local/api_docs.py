"""openapi.yaml served by the local gateway: the document as JSON at `/openapi.json` (its `servers` the
gateway's own URL) and a page generated from it at `/docs`.

Local only: neither path is a route of template.yaml, and neither needs a signature. The page is rendered
here, from the document, and is self-contained: no script, no stylesheet or font from elsewhere, every text
of the document escaped.
"""

from __future__ import annotations

import copy
import html
import json
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from local.apigw_event import HttpResponse
from local.template import ROOT

OPENAPI_PATH = ROOT / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
PAGE_SECURITY_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'"

LocalPage = Callable[[str], HttpResponse]


def load(path: Path = OPENAPI_PATH) -> dict[str, Any]:
    """The document as data. Read on every call, so `make run` serves the file as it is now."""
    with path.open(encoding="utf-8") as handle:
        document: dict[str, Any] = yaml.safe_load(handle)
    return document


def for_server(document: Mapping[str, Any], server_url: str) -> dict[str, Any]:
    """The document with `servers` set to `server_url` (the local gateway, whose routes are at its root)."""
    served = copy.deepcopy(dict(document))
    served["servers"] = [{"url": server_url, "description": "the local stack (`make run`)"}]
    return served


def operations(document: Mapping[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    """(METHOD, path, operation) for every operation, in the document's order."""
    return [
        (method.upper(), path, operation)
        for path, item in document.get("paths", {}).items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(document: Mapping[str, Any], node: Any) -> Any:
    """`node`, or what its local `$ref` points to (followed until a node that is not a reference)."""
    seen: set[str] = set()
    while isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#/"):
        ref = node["$ref"]
        if ref in seen:
            raise ValueError(f"circular reference {ref}")
        seen.add(ref)
        target: Any = document
        for part in ref[2:].split("/"):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        node = target
    return node


# --- the page ------------------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1rem 2rem; }
code, pre { font: 13px/1.4 ui-monospace, monospace; }
pre { background: #f6f8fa; padding: .6rem .8rem; overflow-x: auto; border-radius: 4px; }
table { border-collapse: collapse; width: 100%; margin: .5rem 0 1rem; }
th, td { border: 1px solid #d8dee4; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
section.operation { border-top: 2px solid #d8dee4; margin-top: 2rem; }
.method { display: inline-block; min-width: 4.5rem; font-weight: bold; }
.get { color: #1a7f37; } .post { color: #0969da; } .delete { color: #cf222e; }
.put, .patch { color: #9a6700; }
.auth { color: #57606a; }
nav li { list-style: none; }
"""

_CODE_SPAN = re.compile(r"`([^`\n]+)`")
_SCHEMA_REF = re.compile(r"&quot;#/components/schemas/([A-Za-z0-9_.-]+)&quot;")


def _text(value: Any) -> str:
    """Markdown-ish text (paragraphs, `code`) as HTML, everything escaped first."""
    paragraphs = [part.strip() for part in str(value or "").split("\n\n") if part.strip()]
    return "".join(
        "<p>" + _CODE_SPAN.sub(r"<code>\1</code>", html.escape(part)) + "</p>" for part in paragraphs
    )


def _json(value: Any, *, compact: bool = False) -> str:
    """A schema or example as escaped JSON; each `$ref` to a component schema links to it."""
    text = json.dumps(value, ensure_ascii=False, indent=None if compact else 2, sort_keys=False, default=str)
    escaped = html.escape(text)
    return _SCHEMA_REF.sub(r'&quot;<a href="#schema-\1">#/components/schemas/\1</a>&quot;', escaped)


def _anchor(method: str, path: str, operation: Mapping[str, Any]) -> str:
    name = str(operation.get("operationId") or f"{method}-{path}")
    return "op-" + re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")


def _security(document: Mapping[str, Any], operation: Mapping[str, Any]) -> str:
    requirements = operation.get("security", document.get("security", []))
    names = sorted({name for requirement in requirements for name in requirement})
    if not names:
        return "none: public"
    schemes = document.get("components", {}).get("securitySchemes", {})
    shown = [f"{name} ({schemes.get(name, {}).get('type', '?')})" for name in names]
    return "signed: " + ", ".join(shown)


def _parameters(
    document: Mapping[str, Any], path_item: Mapping[str, Any], operation: Mapping[str, Any]
) -> str:
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for raw in [*path_item.get("parameters", []), *operation.get("parameters", [])]:
        parameter = resolve(document, raw)
        merged[(parameter["in"], parameter["name"])] = parameter
    if not merged:
        return ""
    rows = "".join(
        "<tr>"
        f"<td><code>{html.escape(p['name'])}</code></td>"
        f"<td>{html.escape(p['in'])}</td>"
        f"<td>{'yes' if p.get('required') else 'no'}</td>"
        f"<td><code>{_json(p.get('schema', {}), compact=True)}</code></td>"
        f"<td>{_text(p.get('description'))}</td>"
        "</tr>"
        for p in merged.values()
    )
    return (
        "<h3>Parameters</h3><table><tr><th>name</th><th>in</th><th>required</th><th>schema</th>"
        f"<th>description</th></tr>{rows}</table>"
    )


def _content(content: Mapping[str, Any]) -> str:
    parts = []
    for media_type, media in content.items():
        parts.append(f"<p><code>{html.escape(media_type)}</code></p>")
        if "schema" in media:
            parts.append(f"<pre>{_json(media['schema'])}</pre>")
        if "example" in media:
            parts.append(f"<p>Example:</p><pre>{_json(media['example'])}</pre>")
    return "".join(parts)


def _request_body(document: Mapping[str, Any], operation: Mapping[str, Any]) -> str:
    if "requestBody" not in operation:
        return ""
    body = resolve(document, operation["requestBody"])
    required = "required" if body.get("required") else "optional"
    described = _text(body.get("description"))
    return f"<h3>Request body ({required})</h3>{described}{_content(body.get('content', {}))}"


def _responses(document: Mapping[str, Any], operation: Mapping[str, Any]) -> str:
    rows = []
    for status, raw in operation.get("responses", {}).items():
        response = resolve(document, raw)
        headers = "".join(
            f"<p><code>{html.escape(name)}</code>{' (required)' if header.get('required') else ''}</p>"
            f"{_text(header.get('description'))}"
            for name, header in ((n, resolve(document, h)) for n, h in response.get("headers", {}).items())
        )
        rows.append(
            f"<tr><td><strong>{html.escape(str(status))}</strong></td>"
            f"<td>{_text(response.get('description'))}{headers}</td>"
            f"<td>{_content(response.get('content', {})) or 'no body'}</td></tr>"
        )
    return (
        f"<h3>Responses</h3><table><tr><th>status</th><th>means</th><th>body</th></tr>{''.join(rows)}</table>"
    )


def render_page(document: Mapping[str, Any]) -> str:
    """The whole document as one self-contained HTML page: each route, then the schemas."""
    info = document.get("info", {})
    title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    version = html.escape(str(document.get("openapi", "")))
    servers = "".join(
        f"<li><code>{html.escape(str(server.get('url', '')))}</code> {_text(server.get('description'))}</li>"
        for server in document.get("servers", [])
    )
    listed = operations(document)
    index = "".join(
        f'<li><a href="#{_anchor(method, path, op)}"><span class="method {method.lower()}">{method}</span>'
        f"<code>{html.escape(path)}</code></a> {html.escape(str(op.get('summary', '')))}</li>"
        for method, path, op in listed
    )
    sections = []
    for method, path, op in listed:
        sections.append(
            f'<section class="operation" id="{_anchor(method, path, op)}">'
            f'<h2><span class="method {method.lower()}">{method}</span> <code>{html.escape(path)}</code></h2>'
            f"<p><strong>{html.escape(str(op.get('summary', '')))}</strong></p>"
            f'<p class="auth">Auth: {html.escape(_security(document, op))}</p>'
            f"{_text(op.get('description'))}"
            f"{_parameters(document, document['paths'][path], op)}"
            f"{_request_body(document, op)}"
            f"{_responses(document, op)}"
            "</section>"
        )
    schemas = "".join(
        f'<h3 id="schema-{html.escape(name)}">{html.escape(name)}</h3><pre>{_json(schema)}</pre>'
        for name, schema in document.get("components", {}).get("schemas", {}).items()
    )
    schemes = "".join(
        f"<h3>{html.escape(name)}</h3>{_text(scheme.get('description'))}"
        for name, scheme in document.get("components", {}).get("securitySchemes", {}).items()
    )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{title}</title><style>{_STYLE}</style></head><body>"
        f"<header><h1>{title}</h1><p>{html.escape(str(info.get('summary', '')))}</p>"
        f"{_text(info.get('description'))}"
        f'<p>The document: <a href="/openapi.json">/openapi.json</a> (OpenAPI {version}).</p>'
        f"<h2>Servers</h2><ul>{servers}</ul></header>"
        f"<nav><h2>Routes</h2><ul>{index}</ul></nav>"
        f"<main>{''.join(sections)}"
        f'<section id="security"><h2>Security schemes</h2>{schemes}</section>'
        f'<section id="schemas"><h2>Schemas</h2>{schemas}</section></main>'
        "</body></html>\n"
    )


# --- what the gateway serves ---------------------------------------------------------------------------


def openapi_json(server_url: str) -> HttpResponse:
    body = json.dumps(for_server(load(), server_url), ensure_ascii=False, indent=2).encode()
    return HttpResponse(200, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body)


def docs_page(server_url: str) -> HttpResponse:
    body = render_page(for_server(load(), server_url)).encode()
    headers = [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Cache-Control", "no-store"),
        ("Content-Security-Policy", PAGE_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return HttpResponse(200, headers, body)


# Path -> page, for GET (and HEAD) only, answered before routing and without a signature.
PAGES: dict[str, LocalPage] = {"/openapi.json": openapi_json, "/docs": docs_page}
