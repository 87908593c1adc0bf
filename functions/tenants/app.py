"""GET /tenants, GET and DELETE /tenants/{tenant}: what the pairings look like (never their tokens), a page
at a time or one tenant's, or forget one.

It reads pairings through a store that cannot open their tokens, and its role may not decrypt them.
"""

from __future__ import annotations

import time
from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.errors import NotPaired
from x3link.pairing.tenants import list_tenants, page_limit, status_filter
from x3link.web.api import json_api, tenant_parameter

logger = Logger()
app = json_api()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.pairing_records)


@app.get("/tenants")
def list_pairings() -> dict[str, Any]:
    query = app.current_event.get_query_string_value
    return list_tenants(
        wiring.pairing_records(),
        status=status_filter(query("status")),
        limit=page_limit(query("limit")),
        cursor=query("cursor"),
        now=time.time(),
    )


@app.get("/tenants/<tenant>")
def describe(tenant: str) -> dict[str, Any]:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant)
    pairing = wiring.pairing_records().get(tenant)
    if pairing is None:
        raise NotPaired(f"Tenant {tenant!r} is not paired.")
    return pairing.describe(time.time())


@app.delete("/tenants/<tenant>")
def forget(tenant: str) -> Response[Any]:
    tenant = tenant_parameter(tenant)
    logger.append_keys(tenant=tenant)
    if not wiring.pairing_records().delete(tenant):
        raise NotPaired(f"Tenant {tenant!r} is not paired.")
    logger.info("Pairing deleted")
    return Response(status_code=204, body="")


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
