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


def _replaced(request: sigv4.ReceivedRequest, name: str, value: str | None) -> sigv4.ReceivedRequest:
    """`request` with header `name` dropped, then sent as `value` (when given)."""
    headers = [(n, v) for n, v in request.headers if n.lower() != name.lower()]
    if value is not None:
        headers.append((name, value))
    return sigv4.ReceivedRequest(request.method, request.raw_path, request.raw_query, headers, request.body)


def test_tampered_signed_header_is_refused() -> None:
    original = signed("POST", "/pairings", body=b"{}", headers={"Content-Type": "application/json"})
    assert sigv4.verify(original, CREDENTIALS) == "testing"
    tampered = _replaced(original, "Content-Type", "text/plain")
    assert rejection(tampered).message == sigv4.SIGNATURE_MISMATCH


def test_a_signed_header_that_never_arrived_is_refused() -> None:
    original = signed("POST", "/pairings", body=b"{}", headers={"Content-Type": "application/json"})
    refused = rejection(_replaced(original, "Content-Type", None))
    assert (refused.message, refused.error_type) == (sigv4.SIGNATURE_MISMATCH, "InvalidSignatureException")


def test_an_unsigned_header_added_on_the_way_does_not_matter() -> None:
    original = signed("GET", "/tenants/acme")
    assert sigv4.verify(_replaced(original, "X-Forwarded-For", "203.0.113.9"), CREDENTIALS) == "testing"


def test_a_signed_header_is_compared_with_its_spaces_folded_as_sigv4_says() -> None:
    original = signed("GET", "/tenants/acme", headers={"X-Note": "two  spaces"})
    assert sigv4.verify(_replaced(original, "X-Note", "  two   spaces "), CREDENTIALS) == "testing"
    assert rejection(_replaced(original, "X-Note", "twospaces")).message == sigv4.SIGNATURE_MISMATCH


def test_tampered_method_is_refused() -> None:
    original = signed("GET", "/tenants/acme")
    moved = sigv4.ReceivedRequest("DELETE", original.raw_path, original.raw_query, original.headers, b"")
    assert rejection(moved).message == sigv4.SIGNATURE_MISMATCH


def test_a_body_hash_header_that_lies_is_refused() -> None:
    body = b'{"tenant": "acme"}'
    original = signed("POST", "/pairings", body=body, headers={"X-Amz-Content-Sha256": "0" * 64})
    assert rejection(original).message == sigv4.SIGNATURE_MISMATCH


def test_a_request_without_any_date_is_incomplete() -> None:
    refused = rejection(_replaced(signed("GET", "/tenants/acme"), "X-Amz-Date", None))
    assert refused.message == (
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header."
    )
    assert refused.error_type == "IncompleteSignatureException"


def test_an_authorization_header_missing_its_parts_names_them() -> None:
    original = signed("GET", "/tenants/acme")
    authorization = next(v for n, v in original.headers if n.lower() == "authorization")
    without_signature = authorization.split(", Signature=")[0]
    refused = rejection(_replaced(original, "Authorization", without_signature))
    assert refused.message == "Authorization header requires 'Signature' parameter."
    assert refused.error_type == "IncompleteSignatureException"


def test_a_date_outside_the_credential_scope_is_refused() -> None:
    at = datetime(2026, 3, 1, 23, 59, 0, tzinfo=UTC)
    original = signed("GET", "/tenants/acme", at=at)
    next_day = _replaced(original, "X-Amz-Date", "20260302T000100Z")
    refused = rejection(next_day, now=at)
    assert refused.message.startswith("Date in Credential scope does not match YYYYMMDD")


def test_the_skew_rule_is_five_minutes_either_way() -> None:
    at = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
    request = signed("GET", "/tenants/acme", at=at)
    for inside in (timedelta(minutes=-5), timedelta(minutes=4, seconds=59), timedelta(minutes=5)):
        assert sigv4.verify(request, CREDENTIALS, now=at + inside) == "testing"
    late = rejection(request, now=at + timedelta(minutes=5, seconds=1))
    assert late.message == (
        "Signature expired: 20260301T120000Z is now earlier than 20260301T120001Z (20260301T120501Z - 5 min.)"
    )
    early = rejection(request, now=at - timedelta(minutes=5, seconds=1))
    assert early.message == (
        "Signature not yet current: 20260301T120000Z is still later than 20260301T115959Z "
        "(20260301T115459Z + 5 min.)"
    )


def test_repeated_query_names_in_any_order_are_accepted() -> None:
    original = signed("GET", "/tenants/acme?x=b&x=a&a=1")
    assert sigv4.verify(original, CREDENTIALS) == "testing"
    reordered = sigv4.ReceivedRequest("GET", "/tenants/acme", "a=1&x=a&x=b", original.headers, b"")
    assert sigv4.verify(reordered, CREDENTIALS) == "testing"
