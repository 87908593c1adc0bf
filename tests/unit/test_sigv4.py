"""SigV4 verification, request by request, as API Gateway does it on AWS_IAM routes."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from unittest import mock
from urllib.parse import urlsplit

import pytest

from local import sigv4
from tests.support.gateway import CREDENTIALS

HOST = "127.0.0.1:3000"


def signed(
    method: str,
    path_and_query: str,
    *,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    credentials: sigv4.Credentials = CREDENTIALS,
    service: str = "execute-api",
    at: datetime | None = None,
) -> sigv4.ReceivedRequest:
    """A request as the gateway would receive it after botocore signed it."""
    url = f"http://{HOST}{path_and_query}"
    if at is None:
        signed_headers = sigv4.sign(method, url, credentials, body=body, headers=headers, service=service)
    else:
        with mock.patch("botocore.auth.get_current_datetime", return_value=at.replace(tzinfo=None)):
            signed_headers = sigv4.sign(method, url, credentials, body=body, headers=headers, service=service)
    parts = urlsplit(url)
    received = [("Host", HOST), *signed_headers.items()]
    return sigv4.ReceivedRequest(method, parts.path, parts.query, received, body)


def rejection(request: sigv4.ReceivedRequest, **kwargs: object) -> sigv4.SignatureRejected:
    with pytest.raises(sigv4.SignatureRejected) as caught:
        sigv4.verify(request, CREDENTIALS, **kwargs)  # type: ignore[arg-type]
    return caught.value


@pytest.mark.parametrize(
    "path_and_query",
    [
        "/tenants/acme",
        "/tenants/acme?b=2&a=1",
        "/tenants/acme?x=a%20b&x=%2Fslash&empty=",
        "/tenants/acme?q=caf%C3%A9&tilde=~&star=%2A",
        "/tenants/a%20b",
    ],
)
def test_accepts_botocore_signed_get(path_and_query: str) -> None:
    assert sigv4.verify(signed("GET", path_and_query), CREDENTIALS) == "testing"


def test_accepts_signed_json_post_with_and_without_content_sha256() -> None:
    body = json.dumps({"tenant": "acme", "customer": "https://x3.acme.example"}).encode()
    plain = signed("POST", "/pairings", body=body, headers={"Content-Type": "application/json"})
    with_hash = signed(
        "POST",
        "/pairings",
        body=body,
        headers={
            "Content-Type": "application/json",
            "X-Amz-Content-Sha256": hashlib.sha256(body).hexdigest(),
        },
    )
    assert sigv4.verify(plain, CREDENTIALS) == "testing"
    assert sigv4.verify(with_hash, CREDENTIALS) == "testing"


def test_unsigned_request_is_missing_a_token() -> None:
    request = sigv4.ReceivedRequest("GET", "/tenants/acme", "", [("Host", HOST)], b"")
    refused = rejection(request)
    assert refused.message == "Missing Authentication Token"
    assert refused.error_type == "MissingAuthenticationTokenException"


def test_tampered_body_is_refused() -> None:
    original = signed(
        "POST", "/pairings", body=b'{"tenant": "acme"}', headers={"Content-Type": "application/json"}
    )
    tampered = sigv4.ReceivedRequest(
        original.method, original.raw_path, original.raw_query, original.headers, b'{"tenant": "evil"}'
    )
    assert rejection(tampered).message == sigv4.SIGNATURE_MISMATCH


def test_tampered_body_is_refused_even_with_its_original_hash_header() -> None:
    body = b'{"tenant": "acme"}'
    headers = {"Content-Type": "application/json", "X-Amz-Content-Sha256": hashlib.sha256(body).hexdigest()}
    original = signed("POST", "/pairings", body=body, headers=headers)
    tampered = sigv4.ReceivedRequest("POST", "/pairings", "", original.headers, b'{"tenant": "evil"}')
    assert rejection(tampered).message == sigv4.SIGNATURE_MISMATCH


def test_tampered_path_or_query_is_refused() -> None:
    original = signed("GET", "/tenants/acme?a=1")
    other_path = sigv4.ReceivedRequest("GET", "/tenants/evil", "a=1", original.headers, b"")
    other_query = sigv4.ReceivedRequest("GET", "/tenants/acme", "a=2", original.headers, b"")
    assert rejection(other_path).message == sigv4.SIGNATURE_MISMATCH
    assert rejection(other_query).message == sigv4.SIGNATURE_MISMATCH


def test_wrong_secret_is_refused() -> None:
    wrong = sigv4.Credentials("testing", "not-the-secret", "us-east-1")
    assert rejection(signed("GET", "/tenants/acme", credentials=wrong)).message.startswith(
        "The request signature we calculated does not match the signature you provided."
    )


def test_unknown_access_key_is_an_invalid_token() -> None:
    stranger = sigv4.Credentials("AKIDSTRANGER", "testing", "us-east-1")
    refused = rejection(signed("GET", "/tenants/acme", credentials=stranger))
    assert refused.message == "The security token included in the request is invalid."
    assert refused.error_type == "UnrecognizedClientException"


def test_wrong_region_is_refused() -> None:
    elsewhere = sigv4.Credentials("testing", "testing", "eu-west-1")
    refused = rejection(signed("GET", "/tenants/acme", credentials=elsewhere))
    assert refused.message == "Credential should be scoped to a valid region, not 'eu-west-1'. "


def test_wrong_service_is_refused() -> None:
    refused = rejection(signed("GET", "/tenants/acme", service="lambda"))
    assert refused.message == "Credential should be scoped to correct service: 'execute-api'. "


def test_stale_signature_is_refused() -> None:
    six_minutes_ago = datetime.now(UTC) - timedelta(minutes=6)
    refused = rejection(signed("GET", "/tenants/acme", at=six_minutes_ago))
    assert refused.message.startswith("Signature expired: ")


def test_signature_from_the_future_is_refused() -> None:
    in_six_minutes = datetime.now(UTC) + timedelta(minutes=6)
    refused = rejection(signed("GET", "/tenants/acme", at=in_six_minutes))
    assert refused.message.startswith("Signature not yet current: ")


def test_four_minutes_of_skew_is_tolerated() -> None:
    four_minutes_ago = datetime.now(UTC) - timedelta(minutes=4)
    assert sigv4.verify(signed("GET", "/tenants/acme", at=four_minutes_ago), CREDENTIALS) == "testing"


def test_altered_timestamp_is_refused() -> None:
    original = signed("GET", "/tenants/acme")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    headers = [(n, v) for n, v in original.headers if n.lower() != "x-amz-date"]
    moved = [*headers, ("X-Amz-Date", stamp[:-3] + ("00Z" if not stamp.endswith("00Z") else "01Z"))]
    request = sigv4.ReceivedRequest("GET", "/tenants/acme", "", moved, b"")
    assert rejection(request).message == sigv4.SIGNATURE_MISMATCH


def test_non_sigv4_authorization_is_incomplete_and_not_echoed() -> None:
    request = sigv4.ReceivedRequest(
        "GET", "/tenants/acme", "", [("Host", HOST), ("Authorization", "Bearer secret-token")], b""
    )
    refused = rejection(request)
    assert refused.error_type == "IncompleteSignatureException"
    assert "secret-token" not in refused.message


def test_signature_without_host_is_refused() -> None:
    original = signed("GET", "/tenants/acme")
    headers = [(n, v) for n, v in original.headers if n.lower() != "host"]
    request = sigv4.ReceivedRequest("GET", "/tenants/acme", "", headers, b"")
    assert rejection(request).error_type == "InvalidSignatureException"
