"""Signature Version 4 as API Gateway checks it on `AWS_IAM` routes, so that locally a request is refused
exactly when the deployed API would refuse it, with API Gateway's own messages.

The verifier checks what API Gateway checks before the signature (the Authorization header's parts, the
credential scope, the access key, the clock skew), then has botocore's own signer (`SigV4Auth`) sign the
request again as received, with the request's own timestamp and the headers it says it signed, and compares
in constant time: the canonical request and the string to sign are botocore's, not ours. The signer is
here too: `make run` and the tests call the protected routes with it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from http.client import HTTPMessage
from urllib.parse import quote, unquote

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials as BotoCredentials

ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "execute-api"
MAX_CLOCK_SKEW = timedelta(minutes=5)
_AMZ_DATE = "%Y%m%dT%H%M%SZ"

MISSING_TOKEN = "Missing Authentication Token"  # nosec B105  # API Gateway's error text, not a secret
INVALID_TOKEN = "The security token included in the request is invalid."  # nosec B105  # API Gateway's message
SIGNATURE_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
)


@dataclass(frozen=True)
class Credentials:
    """The one identity the local stack knows: what `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` say."""

    access_key: str
    secret_key: str
    region: str


@dataclass(frozen=True)
class ReceivedRequest:
    """A request as it arrived on the wire: the raw path and query are what the client signed."""

    method: str
    raw_path: str
    raw_query: str
    headers: list[tuple[str, str]]
    body: bytes


class SignatureRejected(Exception):
    """Why API Gateway would answer 403; `error_type` is its `x-amzn-ErrorType`."""

    def __init__(self, message: str, error_type: str) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


def _incomplete(missing: Iterable[str]) -> SignatureRejected:
    # API Gateway also echoes the Authorization header here; it never leaves this process, so we don't.
    text = " ".join(f"Authorization header requires '{name}' parameter." for name in missing)
    return SignatureRejected(text, "IncompleteSignatureException")


def _header_values(headers: Iterable[tuple[str, str]], name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]


def _parse_authorization(value: str) -> dict[str, str]:
    scheme, _, rest = value.strip().partition(" ")
    if scheme != ALGORITHM:
        raise _incomplete(["Credential", "Signature", "SignedHeaders"])
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, sep, val = part.strip().partition("=")
        if sep:
            fields[key] = val.strip()
    missing = [name for name in ("Credential", "Signature", "SignedHeaders") if not fields.get(name)]
    if missing:
        raise _incomplete(missing)
    return fields


def _request_time(headers: list[tuple[str, str]]) -> tuple[datetime, str]:
    """The signing timestamp: X-Amz-Date, else the HTTP Date header (both allowed by SigV4)."""
    amz = _header_values(headers, "x-amz-date")
    if amz:
        try:
            moment = datetime.strptime(amz[-1].strip(), _AMZ_DATE).replace(tzinfo=UTC)
        except ValueError:
            raise SignatureRejected(
                f"Date must be in ISO-8601 'basic format'. Got '{amz[-1].strip()}'. "
                "See http://en.wikipedia.org/wiki/ISO_8601",
                "IncompleteSignatureException",
            ) from None
        return moment, amz[-1].strip()
    date = _header_values(headers, "date")
    if date:
        try:
            moment = parsedate_to_datetime(date[-1]).astimezone(UTC)
        except (TypeError, ValueError):
            pass
        else:
            return moment, moment.strftime(_AMZ_DATE)
    raise SignatureRejected(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
        "IncompleteSignatureException",
    )


def _check_scope(scope: list[str], amz_date: str, region: str, service: str) -> None:
    if len(scope) != 5:
        raise SignatureRejected(
            "Credential should be scoped to a valid region, not ''. ", "InvalidSignatureException"
        )
    _, day, scope_region, scope_service, terminator = scope
    if day != amz_date[:8]:
        raise SignatureRejected(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: "
            f"'{day}' != '{amz_date[:8]}', from '{amz_date}'.",
            "InvalidSignatureException",
        )
    if scope_region != region:
        raise SignatureRejected(
            f"Credential should be scoped to a valid region, not '{scope_region}'. ",
            "InvalidSignatureException",
        )
    if scope_service != service:
        raise SignatureRejected(
            f"Credential should be scoped to correct service: '{service}'. ", "InvalidSignatureException"
        )
    if terminator != "aws4_request":
        raise SignatureRejected(
            f"Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'. ",
            "InvalidSignatureException",
        )


def _check_clock(moment: datetime, now: datetime) -> None:
    stamp = moment.strftime(_AMZ_DATE)
    if moment < now - MAX_CLOCK_SKEW:
        earliest = (now - MAX_CLOCK_SKEW).strftime(_AMZ_DATE)
        raise SignatureRejected(
            f"Signature expired: {stamp} is now earlier than {earliest} ({now.strftime(_AMZ_DATE)} - 5 min.)",
            "InvalidSignatureException",
        )
    if moment > now + MAX_CLOCK_SKEW:
        latest = (now + MAX_CLOCK_SKEW).strftime(_AMZ_DATE)
        raise SignatureRejected(
            f"Signature not yet current: {stamp} is still later than {latest} "
            f"({now.strftime(_AMZ_DATE)} + 5 min.)",
            "InvalidSignatureException",
        )


class _AsReceived(SigV4Auth):
    """botocore's signer, made to sign what the client said it signed: exactly the headers its
    SignedHeaders names (botocore would choose its own), and the query as `query` when given."""

    def __init__(self, credentials: Credentials, service: str, signed: list[str], query: str | None) -> None:
        super().__init__(
            BotoCredentials(credentials.access_key, credentials.secret_key), service, credentials.region
        )
        self._signed = signed
        self._query = query

    def headers_to_sign(self, request: AWSRequest) -> HTTPMessage:
        chosen = HTTPHeaders()
        for name in self._signed:
            values = request.headers.get_all(name) or []
            if not values:
                raise SignatureRejected(SIGNATURE_MISMATCH, "InvalidSignatureException")
            for value in values:
                chosen[name] = value
        return chosen

    def canonical_query_string(self, request: AWSRequest) -> str:
        return super().canonical_query_string(request) if self._query is None else self._query


def _readings(request: ReceivedRequest) -> Iterator[tuple[str, str | None]]:
    """(URL, query) of each way a client may have signed the request, for botocore to sign it again.

    The path: as SigV4 encodes it for every service but S3 (botocore encodes the received, encoded path
    once more), then as sent (curl 7.88 signs it unencoded a second time). The query: as botocore signs it
    (sorted as sent), as the spec wants it (each name and value decoded and encoded again, then sorted by
    botocore), and as curl 7.88 sends it (unsorted: given to botocore as is).
    """
    host = next(iter(_header_values(request.headers, "host")), "localhost")
    raw_path = request.raw_path or "/"
    paths = [raw_path]
    decoded = unquote(raw_path)
    if decoded != raw_path and not any(c in decoded for c in "?#"):
        paths.append(decoded)
    pairs = [pair.partition("=") for pair in request.raw_query.split("&") if pair]
    spec = "&".join(f"{quote(unquote(k), safe='-_.~')}={quote(unquote(v), safe='-_.~')}" for k, _, v in pairs)
    unsorted = "&".join(f"{key}={value}" for key, _, value in pairs)
    for path in paths:
        yield f"http://{host}{path}" + (f"?{request.raw_query}" if pairs else ""), None
        if pairs:
            yield f"http://{host}{path}?{spec}", None
            yield f"http://{host}{path}", unsorted


def is_signed(headers: list[tuple[str, str]]) -> bool:
    return bool(_header_values(headers, "authorization"))


def verify(
    request: ReceivedRequest,
    credentials: Credentials,
    *,
    service: str = SERVICE,
    now: datetime | None = None,
) -> str:
    """Return the access key that signed `request`; raise SignatureRejected as API Gateway would."""
    authorization = _header_values(request.headers, "authorization")
    if not authorization:
        raise SignatureRejected(MISSING_TOKEN, "MissingAuthenticationTokenException")
    fields = _parse_authorization(authorization[-1])
    moment, amz_date = _request_time(request.headers)
    scope = fields["Credential"].split("/")
    _check_scope(scope, amz_date, credentials.region, service)
    if not hmac.compare_digest(scope[0].encode(), credentials.access_key.encode()):
        raise SignatureRejected(INVALID_TOKEN, "UnrecognizedClientException")
    _check_clock(moment, now or datetime.now(UTC))
    signed = [name.strip().lower() for name in fields["SignedHeaders"].split(";") if name.strip()]
    if "host" not in signed:
        raise SignatureRejected(
            "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
            "InvalidSignatureException",
        )
    payload_hash = hashlib.sha256(request.body).hexdigest()
    # botocore takes a sent X-Amz-Content-Sha256 as the body's hash; API Gateway hashes the body it got.
    for claimed in _header_values(request.headers, "x-amz-content-sha256"):
        if not hmac.compare_digest(claimed.strip().lower().encode(), payload_hash.encode()):
            raise SignatureRejected(SIGNATURE_MISMATCH, "InvalidSignatureException")
    provided = fields["Signature"].encode()
    for url, query in _readings(request):
        again = AWSRequest(method=request.method.upper(), url=url, data=request.body)
        for name, value in request.headers:
            again.headers[name] = value
        again.context["timestamp"] = amz_date
        signer = _AsReceived(credentials, service, signed, query)
        expected = signer.signature(signer.string_to_sign(again, signer.canonical_request(again)), again)
        if hmac.compare_digest(expected.encode(), provided):
            return scope[0]
    raise SignatureRejected(SIGNATURE_MISMATCH, "InvalidSignatureException")


def sign(
    method: str,
    url: str,
    credentials: Credentials,
    *,
    body: bytes = b"",
    headers: Mapping[str, str] | None = None,
    service: str = SERVICE,
) -> dict[str, str]:
    """Headers of `method url` signed by botocore, ready to send (Host is left to the HTTP client)."""
    request = AWSRequest(method=method.upper(), url=url, data=body, headers=dict(headers or {}))
    boto_credentials = BotoCredentials(credentials.access_key, credentials.secret_key)
    SigV4Auth(boto_credentials, service, credentials.region).add_auth(request)
    return {key: value for key, value in request.headers.items() if key.lower() != "host"}
