"""`POST /v1/service/{endPoint}/api`: a small GraphQL data service answering a few X3 business objects.

Why: the app's `POST /tenants/{tenant}/folders/{folder}/graphql` passes requests to a folder's
`$urls.dataService` and Sage's answer back as it is; the emulator needs a data service that really parses and
executes GraphQL (graphql-core) so a query, a GraphQL error and a refusal each look as they would.

What Sage documents: the endpoint `{base}/service/{endPoint}/api`, the folder's `dataService` URL, and the
scope `api.graphQL`. The rest is the emulator's choice [gap]: the schema imitates X3's GraphQL nodes
(`x3MasterData { customer { query(first, after) { edges { node } pageInfo totalCount } read(_id) } }`,
`product`, and `x3Sales { salesOrder }`), every folder holds the same sample records, a token without
`api.graphQL` or a folder not granted to it gets 403 `{"message": "Forbidden"}`, a request that does not parse
or validate 400 `{"errors": [...]}` (the GraphQL-over-HTTP habit), a resolved one 200 `{"data", "errors"?}`.
Requests count against the customer's daily quota, as data delivery's and ingestion's do.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from functools import cache
from typing import Any
from urllib.parse import unquote

from werkzeug.wrappers import Response

from . import messages, web
from .delivery import data_grant
from .state import State
from .web import ApiError, GatewayRequest

SCOPE = "api.graphQL"
ENDPOINT_PREFIX = "X3CLOUDV2_"

SDL = """
type Query {
  x3MasterData: X3MasterData!
  x3Sales: X3Sales!
}
type X3MasterData {
  customer: CustomerNode!
  product: ProductNode!
}
type X3Sales {
  salesOrder: SalesOrderNode!
}
type PageInfo {
  hasNextPage: Boolean!
  endCursor: String
}
type Customer {
  _id: String!
  code: String!
  companyName: String!
  country: String!
  currency: String!
}
type CustomerEdge { node: Customer!  cursor: String! }
type CustomerConnection { edges: [CustomerEdge!]!  pageInfo: PageInfo!  totalCount: Int! }
type CustomerNode {
  query(first: Int, after: String): CustomerConnection!
  read(_id: String!): Customer
}
type Product {
  _id: String!
  code: String!
  description1: String!
  salesUnit: String!
  basePrice: Float!
}
type ProductEdge { node: Product!  cursor: String! }
type ProductConnection { edges: [ProductEdge!]!  pageInfo: PageInfo!  totalCount: Int! }
type ProductNode {
  query(first: Int, after: String): ProductConnection!
  read(_id: String!): Product
}
type SalesOrder {
  _id: String!
  id: String!
  orderDate: String!
  soldToCustomer: Customer!
  currency: String!
  totalAmountExcludingTax: Float!
}
type SalesOrderEdge { node: SalesOrder!  cursor: String! }
type SalesOrderConnection { edges: [SalesOrderEdge!]!  pageInfo: PageInfo!  totalCount: Int! }
type SalesOrderNode {
  query(first: Int, after: String): SalesOrderConnection!
  read(_id: String!): SalesOrder
}
"""

CUSTOMERS: tuple[dict[str, Any], ...] = (
    {"_id": "C001", "code": "C001", "companyName": "Acme", "country": "FR", "currency": "EUR"},
    {"_id": "C002", "code": "C002", "companyName": "Globex", "country": "GB", "currency": "GBP"},
    {"_id": "C003", "code": "C003", "companyName": "Initech", "country": "US", "currency": "USD"},
)
PRODUCTS: tuple[dict[str, Any], ...] = (
    {"_id": "IT001", "code": "IT001", "description1": "Steel bolt M8", "salesUnit": "UN", "basePrice": 0.35},
    {"_id": "IT002", "code": "IT002", "description1": "Hex nut M8", "salesUnit": "UN", "basePrice": 0.12},
)
SALES_ORDERS: tuple[dict[str, Any], ...] = (
    {
        "_id": "SO0001",
        "id": "SO0001",
        "orderDate": "2026-01-12",
        "soldToCustomer": CUSTOMERS[0],
        "currency": "EUR",
        "totalAmountExcludingTax": 120.0,
    },
    {
        "_id": "SO0002",
        "id": "SO0002",
        "orderDate": "2026-01-19",
        "soldToCustomer": CUSTOMERS[1],
        "currency": "GBP",
        "totalAmountExcludingTax": 75.5,
    },
)
MAX_PAGE = 100


def _cursor(index: int) -> str:
    return base64.urlsafe_b64encode(f"#{index}".encode()).decode("ascii")


def _index(cursor: str | None) -> int:
    """Where a page after `cursor` starts; a cursor this service did not hand out is a GraphQL error."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor.encode("ascii")).decode("ascii")
    except (ValueError, UnicodeError):
        text = ""
    if not text.startswith("#") or not text[1:].isdigit():
        raise ValueError("Invalid cursor")
    return int(text[1:]) + 1


def _node(records: Sequence[dict[str, Any]]) -> dict[str, Callable[..., Any]]:
    """An X3 node's operations: `query` (a page of edges) and `read` (one record by `_id`)."""

    def query(_info: Any, first: int | None = None, after: str | None = None) -> dict[str, Any]:
        if first is not None and not 0 <= first <= MAX_PAGE:
            raise ValueError(f"first must be between 0 and {MAX_PAGE}")
        start = _index(after)
        page = list(enumerate(records))[start : start + (MAX_PAGE if first is None else first)]
        edges = [{"node": record, "cursor": _cursor(index)} for index, record in page]
        return {
            "edges": edges,
            "pageInfo": {
                "hasNextPage": start + len(page) < len(records),
                "endCursor": edges[-1]["cursor"] if edges else None,
            },
            "totalCount": len(records),
        }

    def read(_info: Any, _id: str) -> dict[str, Any] | None:
        return next((record for record in records if record["_id"] == _id), None)

    return {"query": query, "read": read}


ROOT: dict[str, Any] = {
    "x3MasterData": {"customer": _node(CUSTOMERS), "product": _node(PRODUCTS)},
    "x3Sales": {"salesOrder": _node(SALES_ORDERS)},
}


@cache
def schema() -> Any:
    """Built once, on the first GraphQL request (graphql-core is imported only then)."""
    from graphql import build_schema

    return build_schema(SDL)


def _errors(found: Sequence[Any]) -> list[dict[str, Any]]:
    return [error.formatted for error in found]


def execute(body: Any) -> Response:
    """A GraphQL request over HTTP (`{"query", "variables"?, "operationName"?}`) executed on the samples."""
    from graphql import GraphQLError, execute_sync, parse, validate

    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return web.json_answer(400, {"errors": [{"message": "Must provide query string."}]})
    variables = body.get("variables")
    operation = body.get("operationName")
    if (variables is not None and not isinstance(variables, dict)) or (
        operation is not None and not isinstance(operation, str)
    ):
        return web.json_answer(400, {"errors": [{"message": "Invalid variables or operationName."}]})
    try:
        document = parse(body["query"])
    except GraphQLError as error:
        return web.json_answer(400, {"errors": _errors([error])})
    invalid = validate(schema(), document)
    if invalid:
        return web.json_answer(400, {"errors": _errors(invalid)})
    result = execute_sync(
        schema(), document, root_value=ROOT, variable_values=variables, operation_name=operation
    )
    if result.data is None and result.errors:  # e.g. bad variables: nothing was executed
        return web.json_answer(400, {"errors": _errors(result.errors)})
    answer: dict[str, Any] = {"data": result.data}
    if result.errors:
        answer["errors"] = _errors(result.errors)
    return web.json_answer(200, answer)


def data_service(state: State, req: GatewayRequest) -> Response:
    """The folder's data service, to a bearer token granted `api.graphQL` and the folder."""
    grant = data_grant(state, req)
    endpoint = unquote(req.params["endpoint"])
    folder = endpoint[len(ENDPOINT_PREFIX) :] if endpoint.startswith(ENDPOINT_PREFIX) else ""
    if SCOPE not in grant.scopes or folder not in grant.folders:
        raise ApiError(403, messages.FOLDER_FORBIDDEN)
    return execute(req.json_body)
