"""`x3link graphql TENANT FOLDER QUERY`: X3's own GraphQL API through `POST .../folders/{folder}/graphql`,
Sage's answer printed as it is (a module of its own, registered on the main group)."""

from __future__ import annotations

import json
import sys
from typing import Any, Protocol

import click

from x3link_cli import render
from x3link_cli.client import path
from x3link_cli.errors import CliError

EXIT_CODES = (
    "Exit codes: 0 Sage answered 200; 1 Sage refused the query (its answer is printed), or the API, the "
    "network or the setup failed (one sentence on stderr); 2 a usage error."
)
# Every status the route may answer: Sage's own 4xx answers are printed, the bundle's errors are sentences.
_ANY = tuple(range(200, 600))


class _Session(Protocol):
    def api(self) -> Any: ...


def request_body(query: str, variables: str | None, operation: str | None) -> dict[str, Any]:
    """The GraphQL request: QUERY (`-` reads it from stdin), `--variables` a JSON object."""
    text = sys.stdin.read() if query == "-" else query
    if not text.strip():
        raise click.BadParameter("the query is empty.", param_hint="QUERY")
    body: dict[str, Any] = {"query": text}
    if variables is not None:
        try:
            parsed = json.loads(variables)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise click.BadParameter("must be a JSON object.", param_hint="--variables")
        body["variables"] = parsed
    if operation is not None:
        body["operationName"] = operation
    return body


def bundle_error(document: Any) -> str | None:
    """The bundle's own error sentence (`{"error", "message"}`), or None for Sage's answer."""
    if isinstance(document, dict) and set(document) == {"error", "message"}:
        message = document["message"]
        return message if isinstance(message, str) else None
    return None


@click.command(epilog=EXIT_CODES)
@click.argument("tenant")
@click.argument("folder")
@click.argument("query", metavar="QUERY|-")
@click.option("--variables", metavar="JSON", help="The query's variables, a JSON object.")
@click.option("--operation", metavar="NAME", help="Which operation of QUERY to run.")
@click.pass_obj
def graphql(
    session: _Session, tenant: str, folder: str, query: str, variables: str | None, operation: str | None
) -> None:
    """Ask X3's GraphQL API in FOLDER for TENANT (QUERY, or - to read it from stdin); prints Sage's JSON.

    The pairing must have been granted `api.graphQL` (x3link pair ... --scope "api.dataDelivery api.graphQL").
    """
    body = request_body(query, variables, operation)
    answer = session.api().call(
        "POST", path("tenants", tenant, "folders", folder, "graphql"), json_body=body, expect=_ANY
    )
    document = answer.json()
    sentence = bundle_error(document)
    if sentence is not None:
        raise CliError(sentence)
    click.echo(render.as_json(document))
    if answer.status != 200:
        raise CliError(f"Sage X3 refused the query (HTTP {answer.status}): its answer is above.")
