"""`GET /v1` (the gateway's links) and `GET /v1/folders` (the folders granted to a token).

Why: both documents are built from the answering region's own base URL, so clients that follow
`$urls` instead of building URLs are exercised for real.
"""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Response

from . import web
from .state import State
from .tokens import authenticate
from .web import GatewayRequest


def root(state: State, req: GatewayRequest) -> Response:
    """The links document of docs/sage-x3.md#root-and-folders."""
    base = req.api_base
    return web.json_answer(
        200,
        {
            "customerAccess": {"authorise": f"{base}/token/authorise", "token": f"{base}/token"},
            "customerUsage": {
                "folder": f"{base}/folders",
                "graphQL": f"{base}/service/{{endPoint}}/api",
                "dataIngestion": f"{base}/dataingestion/{{folderName}}",
                "dataDelivery": f"{base}/datadelivery/{{folderName}}",
            },
            "apiDoc": f"{base}/swagger",
            "businessDomains": ["ALL"],
        },
    )


def folder_document(base: str, name: str) -> dict[str, Any]:
    """One entry of the folders list."""
    return {
        "name": name,
        "$urls": {
            "dataIngestion": f"{base}/dataingestion/{name}/",
            "dataDelivery": f"{base}/datadelivery/{name}/",
            "dataService": f"{base}/service/X3CLOUDV2_{name}/api",
        },
    }


def list_folders(state: State, req: GatewayRequest) -> Response:
    """Only the folders granted to the bearer token."""
    grant = authenticate(state, req)
    return web.json_answer(200, {"folders": [folder_document(req.api_base, name) for name in grant.folders]})
