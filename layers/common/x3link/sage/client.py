"""The only code that speaks HTTP to Sage X3. Token calls never follow redirects and are never retried
once sent (a replayed refresh would rotate twice); data reads retry what is safe to retry.

Every request carries a token or the client secret, so each one's URL is held to the configured gateways
here, as it is sent: a pairing's stored endpoint and the URLs in Sage's answers are never trusted for it.
"""

from __future__ import annotations

import json
import re
from email.utils import parsedate_to_datetime

# Any: urllib3's responses (untyped) and Sage's JSON answers, which each reader checks.
from typing import Any
from urllib.parse import urljoin

import urllib3
from aws_lambda_powertools import Logger
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    MaxRetryError,
    NewConnectionError,
    TimeoutError,
)
from urllib3.util import Retry, Timeout

from x3link.endpoints import EndpointPolicy, origin_of
from x3link.errors import (
    GatewayNotAllowed,
    GrantRefused,
    QuotaExceeded,
    Unauthorised,
    UpstreamError,
    UpstreamRefused,
    UpstreamTimeout,
)
from x3link.logs import scrub

logger = Logger(child=True)

CONNECT_TIMEOUT = 3.0
# Only connection failures before anything was sent: the request never reached Sage, a retry is safe.
TOKEN_RETRY = Retry(
    total=2, connect=2, read=0, status=0, other=0, redirect=0, raise_on_redirect=False, backoff_factor=0.2
)
READ_RETRY = Retry(
    total=2,
    connect=2,
    read=1,
    status=2,
    other=0,
    redirect=0,
    raise_on_redirect=False,
    status_forcelist=(502, 503, 504),
    allowed_methods=frozenset({"GET"}),
    backoff_factor=0.2,
    raise_on_status=False,
    respect_retry_after_header=False,
)
# A DELETE: retried only when the connection failed before anything was sent (a replay of one Sage applied
# would answer 404 for a file that was there). A POST is sent once, and never retried.
# Neither ever retries on an answer: a 429's Retry-After (a day, for a spent quota) is the app's to honour.
UNSENT_RETRY = Retry(
    total=2,
    connect=2,
    read=0,
    status=0,
    other=0,
    redirect=0,
    raise_on_redirect=False,
    backoff_factor=0.2,
    raise_on_status=False,
    respect_retry_after_header=False,
)
NO_RETRY = Retry(total=0, redirect=0, raise_on_redirect=False, respect_retry_after_header=False)
# A file streamed to an upload link: 350 MB at a few MB/s, so the read (Sage's answer after the last byte)
# waits long; sent once, since a stream cannot be replayed.
UPLOAD_TIMEOUT = Timeout(connect=CONNECT_TIMEOUT, read=120.0)
REDIRECTS = frozenset({301, 302, 303, 307, 308})
_DELTA_SECONDS = re.compile(r"\d{1,10}")
REFUSED_METRIC = "EndpointRefused"  # a call refused for its URL; EndpointRefusedAlarm watches it


def _sage_message(body: bytes) -> str:
    """Sage's `{"message"}`, short and scrubbed: it ends up in error bodies and logs."""
    return _parse_message(body)[0]


def _parse_message(body: bytes) -> tuple[str, bool]:
    """Sage's scrubbed message, and whether the body was Sage's own `{"message": "..."}` JSON at all."""
    try:
        document = json.loads(body)
    except ValueError:
        return "no message", False
    message = document.get("message") if isinstance(document, dict) else None
    if not isinstance(message, str):
        return "no message", False
    return scrub(message) or "no message", True


def _failure(reason: Exception | None) -> UpstreamError | UpstreamTimeout:
    """The caller's error for a failed exchange; `maybe_applied` unless the request never left."""
    # NewConnectionError subclasses ConnectTimeoutError: a refused connection is no timeout.
    if isinstance(reason, NewConnectionError):
        return UpstreamError("Sage X3 could not be reached.")
    if isinstance(reason, ConnectTimeoutError):
        return UpstreamTimeout("Sage X3 did not answer in time.")
    failure: UpstreamError | UpstreamTimeout
    if isinstance(reason, TimeoutError):
        failure = UpstreamTimeout("Sage X3 did not answer in time.")
    else:
        failure = UpstreamError("The connection to Sage X3 failed.")
    failure.maybe_applied = True  # sent, and no answer read: Sage may have acted on it
    return failure


def _retry_after(value: str | None) -> str | None:
    """Sage's `Retry-After`, passed on only when it is one (delta-seconds or an HTTP date), never raw text."""
    value = (value or "").strip()
    if _DELTA_SECONDS.fullmatch(value):
        return value
    if 0 < len(value) <= 40 and value.isascii() and value.isprintable():
        try:
            parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        return value
    return None


def _refusal(response: Any) -> UpstreamError | QuotaExceeded:
    """The error for a data call's answer that is not the one expected, by Sage's status."""
    status = response.status
    if status == 401:
        return Unauthorised("Sage X3 refused the access token.", _sage_message(response.data))
    if status == 429:
        return QuotaExceeded(_retry_after(response.headers.get("Retry-After")))
    if 400 <= status < 500:
        return UpstreamRefused(status, _sage_message(response.data))
    return UpstreamError(f"Sage X3 answered {status}: {_sage_message(response.data)}")


def _json_of(response: Any) -> Any:
    try:
        return json.loads(response.data)
    except ValueError:
        raise UpstreamError("Sage X3's answer is not JSON.") from None


def _count_refusal() -> None:
    from aws_lambda_powertools import Metrics
    from aws_lambda_powertools.metrics import MetricUnit

    Metrics().add_metric(name=REFUSED_METRIC, unit=MetricUnit.Count, value=1)


class SageX3Client:
    def __init__(
        self,
        http: urllib3.PoolManager | None = None,
        *,
        policy: EndpointPolicy,
        read_timeout: float = 10.0,
    ) -> None:
        self._http = http or urllib3.PoolManager(num_pools=20, maxsize=10)
        self._timeout = Timeout(connect=min(CONNECT_TIMEOUT, read_timeout), read=read_timeout)
        self._policy = policy

    def _allow(self, url: str, tenant: str | None) -> None:
        """GatewayNotAllowed, logged as critical and counted, unless `url` is under an allowed gateway."""
        if self._policy.gateway_of(url) is not None:
            return
        extra = {"origin": origin_of(url)}
        if tenant is not None:
            extra["tenant"] = tenant
        logger.critical(
            "Refused to send a token or the client secret to a URL off the allowed Sage X3 gateways: "
            "check this pairing's endpoint in the pairings table",
            extra=extra,
        )
        _count_refusal()
        raise GatewayNotAllowed()

    def _send(
        self, method: str, url: str, *, timeout: Timeout, retries: Retry, tenant: str | None, **kwargs: Any
    ) -> Any:
        self._allow(url, tenant)
        try:
            return self._http.request(method, url, timeout=timeout, retries=retries, redirect=False, **kwargs)
        except MaxRetryError as exc:
            raise _failure(exc.reason) from None
        except HTTPError as exc:
            raise _failure(exc) from None

    def token(
        self, base_url: str, grant: dict[str, str], *, read_timeout: float | None = None
    ) -> dict[str, Any]:
        """POST a grant as JSON to `{base}/token`; 429 raises QuotaExceeded, another 4xx GrantRefused, other
        failures UpstreamError.

        `read_timeout` lets the caller give the call whatever its own deadline leaves: a reply cut off after
        Sage applied a refresh loses the rotated token, so the token call gets as long as can be afforded.
        """
        timeout = (
            self._timeout if read_timeout is None else Timeout(connect=CONNECT_TIMEOUT, read=read_timeout)
        )
        response = self._send(
            "POST",
            f"{base_url}/token",
            body=json.dumps(grant).encode(),
            timeout=timeout,
            retries=TOKEN_RETRY,
            tenant=None,  # the handler's logger keys name it: the keeper's call does not pass it
            headers={"Content-Type": "application/json", "Accept": "application/json"},
        )
        logger.debug(
            "Sage X3 token call answered", extra={"status": response.status, "grant": grant["grant_type"]}
        )
        if response.status == 200:
            try:
                payload: dict[str, Any] = json.loads(response.data)
            except ValueError:
                raise UpstreamError("Sage X3's token response is not JSON.") from None
            return payload
        if response.status == 429:
            # Not a refusal of the grant: the refresh token was not spent; wait as long as Sage asks.
            raise QuotaExceeded(_retry_after(response.headers.get("Retry-After")))
        if 400 <= response.status < 500:
            message, from_sage = _parse_message(response.data)
            raise GrantRefused(response.status, message, from_sage=from_sage)
        raise UpstreamError(f"Sage X3's token endpoint failed ({response.status}).")

    # -------------------------------------- Data Integration (docs/sage-x3.md#data-delivery, #data-ingestion)

    def _data_call(self, method: str, url: str, access_token: str, retries: Retry, tenant: str | None) -> Any:
        response = self._send(
            method,
            url,
            timeout=self._timeout,
            retries=retries,
            tenant=tenant,
            headers={"Authorization": f"Bearer {access_token}", "Accept": "application/json"},
        )
        logger.debug("Sage X3 data call answered", extra={"method": method, "status": response.status})
        return response

    def get_json(self, url: str, access_token: str, *, tenant: str | None = None) -> Any:
        """GET a JSON document (200); 401 Unauthorised, 429 QuotaExceeded, other 4xx UpstreamRefused."""
        response = self._data_call("GET", url, access_token, READ_RETRY, tenant)
        if response.status != 200:
            raise _refusal(response)
        return _json_of(response)

    def get_location(self, url: str, access_token: str, *, tenant: str | None = None) -> str:
        """GET that Sage answers with a redirect: where it points (made absolute), never followed."""
        response = self._data_call("GET", url, access_token, READ_RETRY, tenant)
        if response.status in REDIRECTS:
            location = response.headers.get("Location")
            if not isinstance(location, str) or not location:
                raise UpstreamError(f"Sage X3 answered {response.status} with no Location.")
            return urljoin(url, location)
        if response.status < 300:
            raise UpstreamError(f"Sage X3 answered {response.status} where a redirect was expected.")
        raise _refusal(response)

    def delete(self, url: str, access_token: str, *, tenant: str | None = None) -> None:
        """DELETE a resource (204, or any 2xx)."""
        response = self._data_call("DELETE", url, access_token, UNSENT_RETRY, tenant)
        if not 200 <= response.status < 300:
            raise _refusal(response)

    def open_download(self, url: str, *, read_timeout: float = 60.0) -> Any:
        """GET a presigned download link as a stream (`read(n)`, then `release_conn()`), never loaded whole.

        The link's own signature is its authority: no token and no Authorization header go with it, so it
        is not held to the gateways (Sage's links point at its storage). 200 or UpstreamError; a 403 is a
        link that expired (or was refused), to be asked for again.
        """
        try:
            response = self._http.request(
                "GET",
                url,
                timeout=Timeout(connect=CONNECT_TIMEOUT, read=read_timeout),
                retries=UNSENT_RETRY,
                redirect=False,
                preload_content=False,
            )
        except MaxRetryError as exc:
            raise _failure(exc.reason) from None
        except HTTPError as exc:
            raise _failure(exc) from None
        if response.status != 200:
            status = response.status
            response.drain_conn()
            response.release_conn()
            raise UpstreamError(f"Sage X3's download link answered {status}.")
        return response

    def post_json(self, url: str, access_token: str, *, tenant: str | None = None) -> Any:
        """POST with no body, answered with a JSON document (200 or 201); sent once."""
        response = self._data_call("POST", url, access_token, NO_RETRY, tenant)
        if response.status not in (200, 201):
            raise _refusal(response)
        return _json_of(response)

    def put_file(self, upload_url: str, body: Any, length: int) -> None:
        """Stream a file (anything with `read`) to a presigned upload link Sage handed out.

        No token goes with it (the link signs itself), so it is not held to the allowed gateways: Sage's
        links point at its storage, not at the gateway. Sent once, never redirected; a refusal is
        UpstreamRefused with the storage's status.
        """
        try:
            response = self._http.request(
                "PUT",
                upload_url,
                body=body,
                headers={"Content-Length": str(length)},
                timeout=UPLOAD_TIMEOUT,
                retries=NO_RETRY,
                redirect=False,
            )
        except MaxRetryError as exc:
            raise _failure(exc.reason) from None
        except HTTPError as exc:
            raise _failure(exc) from None
        logger.debug("Upload link answered", extra={"status": response.status})
        if not 200 <= response.status < 300:
            raise UpstreamRefused(response.status, "the upload link refused the file")

    def post_graphql(
        self, url: str, access_token: str, body: bytes, *, tenant: str | None = None
    ) -> tuple[int, str]:
        """POST a GraphQL request to a folder's data service, sent once (a mutation must not run twice).

        Sage's answer, status and JSON body as they are, when it is GraphQL's to give (2xx, or a 4xx other
        than 401 and 429: a query GraphQL refuses); 401 Unauthorised, 429 QuotaExceeded, 5xx and a body that
        is not JSON UpstreamError.
        """
        response = self._send(
            "POST",
            url,
            body=body,
            timeout=self._timeout,
            retries=NO_RETRY,
            tenant=tenant,
            headers={
                "Authorization": f"Bearer {access_token}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            },
        )
        logger.debug("Sage X3 GraphQL call answered", extra={"status": response.status})
        status = response.status
        if status in (401, 429) or not (200 <= status < 300 or 400 <= status < 500):
            raise _refusal(response)
        _json_of(response)  # only JSON is passed on: a proxy's HTML page is no answer of Sage's
        try:
            return int(status), bytes(response.data).decode("utf-8")
        except UnicodeDecodeError:
            raise UpstreamError("Sage X3's GraphQL answer is not UTF-8 JSON.") from None

    def folders(self, base_url: str, access_token: str, *, tenant: str | None = None) -> list[Any]:
        document = self.get_json(f"{base_url}/folders", access_token, tenant=tenant)
        folders = document.get("folders") if isinstance(document, dict) else None
        if not isinstance(folders, list):
            raise UpstreamError("Sage X3's folder list has no folders.")
        return folders
