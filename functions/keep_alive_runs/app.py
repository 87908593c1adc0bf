"""GET /keep-alive/runs and GET /keep-alive/runs/{id}: what the keep-alive runs queued and what their workers
did, newest first a page at a time, or one run's report with the failures it names.

Its role may query the runs' index and read a run's attributes only: never a pairing's.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools import Logger
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from x3link import wiring
from x3link.errors import RunNotFound
from x3link.keep_alive.runs import list_runs, page_limit, run_id
from x3link.web.api import json_api

logger = Logger()
app = json_api()

# What it uses, built in Lambda's init phase (kept by a SnapStart snapshot): see wiring.prime.
wiring.prime(wiring.run_ledger)


@app.get("/keep-alive/runs")
def runs() -> dict[str, Any]:
    query = app.current_event.get_query_string_value
    return list_runs(wiring.run_ledger(), limit=page_limit(query("limit")), cursor=query("cursor"))


@app.get("/keep-alive/runs/<id>")
def run_report(id: str) -> dict[str, Any]:  # the template's `{id}`: the route must match it
    report = wiring.run_ledger().report(run_id(id))
    if report is None:
        raise RunNotFound("No keep-alive run has this id.")
    return report.view()


@logger.inject_lambda_context(
    correlation_id_path=correlation_paths.API_GATEWAY_REST, log_event=False, clear_state=True
)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
