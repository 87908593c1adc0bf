"""GET /tenants/{tenant}/activity: the pairing's recent history, newest first, a page at a time; never a
token (the activity table holds none: x3link/events/activity.py).

Its role may query the activity table and nothing else.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.events.activity import list_activity, page_limit
from x3link.web.api import json_api, tenant_parameter

logger = Logger()
app = json_api()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.activity_log)


@app.get("/tenants/<tenant>/activity")
def activity(tenant: str) -> dict[str, Any]:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant)
    query = app.current_event.get_query_string_value
    return list_activity(
        wiring.activity_log(), tenant, limit=page_limit(query("limit")), cursor=query("cursor")
    )


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
