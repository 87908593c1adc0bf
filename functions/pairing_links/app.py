"""GET /pairings and DELETE /pairings/{id}: the pairing links issued and what became of each, newest first
a page at a time (never a link's secret part); or revoke one not yet opened, so that it never opens.

Its role reads the links' index and marks a link revoked: it cannot open a link, nor read a state.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.pairing.links import list_links, page_limit, status_filter
from x3link.web.api import json_api

logger = Logger()
app = json_api()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.pairing_states)


@app.get("/pairings")
def links() -> dict[str, Any]:
    query = app.current_event.get_query_string_value
    return list_links(
        wiring.pairing_states(),
        status=status_filter(query("status")),
        limit=page_limit(query("limit")),
        cursor=query("cursor"),
        now=time.time(),
    )


@app.delete("/pairings/<id>")
def revoke(id: str) -> Response[Any]:  # the template's `{id}`: the route must match it
    wiring.pairing_states().revoke_link(id, time.time())
    logger.info("Pairing link revoked", extra={"link": id})
    return Response(status_code=204, body="")


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
