"""Signed calls to the bundle's API over urllib3: each request signed with botocore's SigV4Auth (service
`execute-api`), as API Gateway's `AWS_IAM` authoriser checks it."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from x3link_cli.errors import CliError, api_error, unreachable
from x3link_cli.locate import Target

SERVICE = "execute-api"
# The API answers within API Gateway's 29 seconds; a little more covers the network.
TIMEOUT = urllib3.Timeout(connect=10.0, read=35.0)


def path(*segments: str) -> str:
    """A route's path, each segment percent-encoded (a file name may hold spaces, `%` or `?`)."""
    return "".join(f"/{quote(segment, safe='')}" for segment in segments)


def sign(target: Target, method: str, url: str, body: bytes, headers: Mapping[str, str]) -> dict[str, str]:
    """The headers of the request, signed."""
    request = AWSRequest(method=method, url=url, data=body, headers=dict(headers))
    keys = target.credentials
    SigV4Auth(Credentials(keys.access_key, keys.secret_key, keys.token), SERVICE, target.region).add_auth(
        request
    )
    return dict(request.headers.items())


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)  # names in lower case

    def json(self) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError:
            raise CliError(f"The API answered HTTP {self.status} with a body that is not JSON.") from None


class Api:
    """The API behind `target`; `http` is the urllib3 pool (tests and transfers share the seam)."""

    def __init__(self, target: Target, http: urllib3.PoolManager) -> None:
        self.target = target
        self.http = http

    def send(
        self,
        method: str,
        route: str,
        *,
        query: Mapping[str, str] | None = None,
        body: bytes = b"",
        headers: Mapping[str, str] | None = None,
    ) -> Answer:
        """One signed request, never retried (a POST may not be repeated), whatever the API answers (the
        console passes answers on as they are); no answer at all is a CliError with its sentence."""
        url = self.target.url + route
        if query:
            url += "?" + urlencode(sorted(query.items()))
        signed = sign(self.target, method, url, body, {"Accept": "application/json", **(headers or {})})
        try:
            response = self.http.request(
                method, url, body=body or None, headers=signed, retries=False, timeout=TIMEOUT
            )
        except urllib3.exceptions.HTTPError as exc:
            raise CliError(unreachable(url, exc)) from None
        received = {name.lower(): value for name, value in response.headers.items()}
        return Answer(response.status, response.data, received)

    def call(
        self,
        method: str,
        route: str,
        *,
        query: Mapping[str, str] | None = None,
        json_body: Any = None,
        expect: tuple[int, ...] = (200,),
    ) -> Answer:
        """One signed request, never retried; an answer outside `expect` is a CliError with its sentence."""
        body = b"" if json_body is None else json.dumps(json_body).encode()
        headers = {"Content-Type": "application/json"} if json_body is not None else None
        answer = self.send(method, route, query=query, body=body, headers=headers)
        if answer.status not in expect:
            raise CliError(api_error(answer.status, answer.headers, answer.body))
        return answer

    def pages(self, route: str, key: str, query: Mapping[str, str] | None = None) -> list[Any]:
        """Every item of a paged listing (`{key: [...], "cursor"?}`), following cursors to the end."""
        items: list[Any] = []
        seen: set[str] = set()
        params = dict(query or {})
        while True:
            page = self.call("GET", route, query=params).json()
            if not isinstance(page, dict) or not isinstance(page.get(key), list):
                raise CliError(f"The API answered a page without its {key!r} list.")
            items.extend(page[key])
            cursor = page.get("cursor")
            if not cursor:
                return items
            if cursor in seen:
                raise CliError("The API handed out the same cursor twice: the listing was stopped.")
            seen.add(cursor)
            params["cursor"] = cursor
