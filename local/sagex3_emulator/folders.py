"""`GET /v1` (the gateway's links) and `GET /v1/folders` (the folders granted to a token).

Why: both documents are built from the answering region's own base URL, so clients that follow
`$urls` instead of building URLs are exercised for real.
"""

from __future__ import annotations

from typing import Any

from .http_types import Request, Response
from .state import State
from .tokens import authenticate


def root(state: State, req: Request) -> Response:
    """The links document of docs/sage-x3.md#root-and-folders."""
    base = req.base_url
    return Response.json(
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


def list_folders(state: State, req: Request) -> Response:
    """Only the folders granted to the bearer token."""
    grant = authenticate(state, req)
    return Response.json(200, {"folders": [folder_document(req.base_url, name) for name in grant.folders]})
