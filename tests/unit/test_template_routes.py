"""A JSON route's handler gets API Gateway's decoded path parameters (x3link/web/api.py), whatever a file name
holds, through our own wrapper of Powertools' public `route`: never a write into its private arguments."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link.web.api import json_api

EVENT = json.loads((Path(__file__).parents[2] / "events" / "data_file_download.json").read_text())
CONTEXT = cast(LambdaContext, SimpleNamespace(get_remaining_time_in_millis=lambda: 30_000))


@pytest.mark.parametrize(
    "name", ["price €.csv", 'say "hi".csv', "a#b.csv", "what?.csv", "no\u00a0break.csv", "a%2Fb"]
)
def test_the_handler_is_called_with_api_gateways_decoded_values(name: str) -> None:
    app, seen = json_api(), []

    @app.get("/tenants/<tenant>/folders/<folder>/files/<filename>")
    def download(tenant: str, folder: str, filename: str) -> dict[str, Any]:
        seen.append((tenant, folder, filename))
        return {}

    event = {**EVENT, "pathParameters": {**EVENT["pathParameters"], "filename": name}}
    answer = app.resolve(event, CONTEXT)

    assert answer["statusCode"] == 200, answer["body"]
    assert seen == [(EVENT["pathParameters"]["tenant"], EVENT["pathParameters"]["folder"], name)]
