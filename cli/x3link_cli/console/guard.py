"""Who may drive the console. Its server signs whatever it passes on with the operator's credentials, so
any web page the operator visits could try to drive it (a cross-site request, or DNS rebinding a name of
its own to 127.0.0.1). Three locks, each enough against a page of another site:

- the `Host` header must name the console's own address (127.0.0.1 or localhost, its port): a rebound
  name is refused;
- an `Origin` (and Chromium's `Sec-Fetch-Site`) a browser sends must be the console's own;
- every API call carries the per-run token (`X-Console-Token`), which only the URL the command printed
  holds, in its fragment (never sent to a server, never in a Referer).

Pure: each decision is a verdict and its reason, tested without a socket.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum

TOKEN_HEADER = "x-console-token"  # noqa: S105  # nosec B105  # a header's name, not a secret
LOOPBACK_NAMES = ("127.0.0.1", "localhost")
# The headers a request may carry once only: two of them would leave it open which one is judged.
SINGLE = ("host", "origin", "sec-fetch-site", TOKEN_HEADER, "content-type", "content-length")


class Verdict(Enum):
    ALLOWED = "allowed"
    AMBIGUOUS = "ambiguous_headers"
    FOREIGN_HOST = "foreign_host"
    FOREIGN_ORIGIN = "foreign_origin"
    NO_TOKEN = "no_token"  # noqa: S105  # nosec B105  # a verdict, not a secret
    WRONG_TOKEN = "wrong_token"  # noqa: S105  # nosec B105  # a verdict, not a secret


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOWED


ALLOWED = Decision(Verdict.ALLOWED, "")


def headers_of(items: Iterable[tuple[str, str]]) -> dict[str, str] | None:
    """The request's headers by lower-case name; None when one that is judged comes twice."""
    seen: dict[str, str] = {}
    for name, value in items:
        key = name.lower()
        if key in seen and key in SINGLE:
            return None
        seen[key] = value
    return seen


def own_hosts(port: int) -> frozenset[str]:
    return frozenset(f"{name}:{port}" for name in LOOPBACK_NAMES)


def own_origins(port: int) -> frozenset[str]:
    return frozenset(f"http://{host}" for host in own_hosts(port))


def judge_page(headers: Mapping[str, str] | None, port: int) -> Decision:
    """A request for the page itself (no data in it): it must be addressed to the console."""
    if headers is None:
        return Decision(Verdict.AMBIGUOUS, "The request names its host, origin or token more than once.")
    host = headers.get("host", "").lower()
    if host not in own_hosts(port):
        return Decision(
            Verdict.FOREIGN_HOST,
            f"The console answers only requests addressed to 127.0.0.1:{port} or localhost:{port}.",
        )
    return ALLOWED


def judge_api(headers: Mapping[str, str] | None, port: int, token: str) -> Decision:
    """A call the console would sign and pass on: its own host, its own origin, and the run's token."""
    page = judge_page(headers, port)
    if not page.allowed or headers is None:
        return page
    origin = headers.get("origin")
    if origin is not None and origin.lower() not in own_origins(port):
        return Decision(Verdict.FOREIGN_ORIGIN, "The console takes API calls from its own page only.")
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site not in ("same-origin", "none"):
        return Decision(Verdict.FOREIGN_ORIGIN, "The console takes API calls from its own page only.")
    sent = headers.get(TOKEN_HEADER)
    if not sent:
        return Decision(
            Verdict.NO_TOKEN,
            "The call carries no console token: open the console from the URL `x3link console` printed.",
        )
    if not hmac.compare_digest(sent.encode(), token.encode()):
        return Decision(
            Verdict.WRONG_TOKEN,
            "The console token is not this run's: open the URL the running `x3link console` printed.",
        )
    return ALLOWED
