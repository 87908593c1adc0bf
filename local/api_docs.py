"""openapi.yaml served by the local gateway: the document as JSON at `/openapi.json` (its `servers` the
gateway's own URL) and Swagger UI at `/docs`, which reads it from there.

Swagger UI's files come from a pinned package (swagger-ui-py, requirements-dev.txt) and the gateway serves
them itself under `/docs/`: the page loads nothing from elsewhere, so it works offline, and its
Content-Security-Policy lets it load and call nothing but the gateway. Local only: none of these paths is a
route of template.yaml, and none needs a signature.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import yaml

from local.apigw_event import HttpResponse
from local.template import ROOT

OPENAPI_PATH = ROOT / "openapi.yaml"
METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
# Swagger UI's scripts and styles from the gateway only; its React styles inline; its icons as data: URIs.
PAGE_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
SWAGGER_UI_PACKAGE = "swagger_ui"  # swagger-ui-py: Swagger UI's release files in swagger_ui/static/
DOCS_PREFIX = "/docs/"
# The package's files the page uses, and their types.
STATIC_FILES = {
    "swagger-ui.css": "text/css; charset=utf-8",
    "index.css": "text/css; charset=utf-8",
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
    "favicon-16x16.png": "image/png",
}

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


# --- the page -----------------------------------------------------------------------------------------

# The HTML and the start-up script are ours (no inline script, for the CSP); everything else is Swagger UI's.
PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sage X3 link: the API of the local stack</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="stylesheet" href="/docs/index.css">
<link rel="icon" type="image/png" href="/docs/favicon-32x32.png" sizes="32x32">
<link rel="icon" type="image/png" href="/docs/favicon-16x16.png" sizes="16x16">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/swagger-initializer.js"></script>
</body>
</html>
"""

# No validator badge (it would call swagger.io), the document from the gateway, each operation linkable.
INITIALIZER = """window.onload = function () {
  window.ui = SwaggerUIBundle({
    url: "/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
};
"""


class SwaggerUiMissing(RuntimeError):
    """The pinned package is not installed: say how to get it rather than serve a page that cannot load."""


@functools.cache
def static_dir() -> Path:
    """Where the installed swagger-ui-py keeps Swagger UI's files (found without importing the package)."""
    spec = importlib.util.find_spec(SWAGGER_UI_PACKAGE)
    if spec is None or spec.origin is None:
        raise SwaggerUiMissing(
            "swagger-ui-py is not installed: run `make venv` (requirements-dev.txt pins it)"
        )
    return Path(spec.origin).parent / "static"


@functools.cache
def _static_bytes(name: str) -> bytes:
    return (static_dir() / name).read_bytes()


# --- what the gateway serves ---------------------------------------------------------------------------


def openapi_json(server_url: str) -> HttpResponse:
    body = json.dumps(for_server(load(), server_url), ensure_ascii=False, indent=2).encode()
    return HttpResponse(200, [("Content-Type", "application/json"), ("Cache-Control", "no-store")], body)


def _answer(content_type: str, body: bytes) -> HttpResponse:
    headers = [
        ("Content-Type", content_type),
        ("Cache-Control", "no-store"),
        ("Content-Security-Policy", PAGE_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
    ]
    return HttpResponse(200, headers, body)


def docs_page(server_url: str) -> HttpResponse:
    static_dir()  # a missing package is a clear error here, not a blank page
    return _answer("text/html; charset=utf-8", PAGE.encode())


def initializer(server_url: str) -> HttpResponse:
    return _answer("text/javascript; charset=utf-8", INITIALIZER.encode())


def _static(name: str) -> LocalPage:
    def serve(server_url: str) -> HttpResponse:
        return _answer(STATIC_FILES[name], _static_bytes(name))

    return serve


# Path -> page, for GET (and HEAD) only, answered before routing and without a signature.
PAGES: dict[str, LocalPage] = {
    "/openapi.json": openapi_json,
    "/docs": docs_page,
    f"{DOCS_PREFIX}swagger-initializer.js": initializer,
    **{f"{DOCS_PREFIX}{name}": _static(name) for name in STATIC_FILES},
}
