"""The emulator's HS256 tokens (local/sagex3_emulator/jwt.py, on joserfc): what it signs it reads back, and
what another key signed, what was altered and what is no HS256 JWS at all read as no token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from local.sagex3_emulator.jwt import Signer, read_claims

CLAIMS: dict[str, Any] = {
    "iss": "api.eu-prod-sagex3.com",
    "aud": "api.eu-prod-sagex3.com",
    "iat": 1_700_000_000,
    "exp": 1_700_000_600,
    "region": "eu-prod",
    "sub": "config-1",
    "azp": "client-1",
    "scopes": ["read", "write"],
    "tid": "t1",
}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def hand_made(header: dict[str, Any], claims: Any, key: bytes) -> str:
    """A JWS built without the module under test, as a forger would build one."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def test_a_token_reads_back_with_every_claim() -> None:
    signer = Signer()
    token = signer.encode(CLAIMS)
    assert signer.decode(token) == CLAIMS
    assert read_claims(token) == CLAIMS


def test_the_header_says_hs256_jwt() -> None:
    header = json.loads(base64.urlsafe_b64decode(Signer().encode(CLAIMS).split(".")[0] + "=="))
    assert header == {"alg": "HS256", "typ": "JWT"}


def test_a_token_signed_by_hand_with_the_same_key_verifies() -> None:
    """Standard HS256: any JWT library (an app's included) can check what the emulator issues."""
    key = b"k" * 32
    assert Signer(key).decode(hand_made({"alg": "HS256", "typ": "JWT"}, CLAIMS, key)) == CLAIMS


def test_a_restarted_emulator_reads_the_tokens_it_issued_before() -> None:
    first = Signer()
    assert Signer(first.key).decode(first.encode(CLAIMS)) == CLAIMS


def test_another_emulators_token_is_refused() -> None:
    assert Signer().decode(Signer().encode(CLAIMS)) is None


def test_altered_claims_are_refused() -> None:
    signer = Signer()
    header, _, signature = signer.encode(CLAIMS).split(".")
    longer = b64(json.dumps({**CLAIMS, "exp": CLAIMS["exp"] + 86400}).encode())
    assert signer.decode(f"{header}.{longer}.{signature}") is None


@pytest.mark.parametrize("alg", ["none", "HS512", "RS256"])
def test_another_algorithm_is_refused(alg: str) -> None:
    key = b"k" * 32
    forged = hand_made({"alg": alg, "typ": "JWT"}, CLAIMS, key)
    assert Signer(key).decode(forged) is None
    unsigned = forged.rsplit(".", 1)[0] + "."
    assert Signer(key).decode(unsigned) is None


@pytest.mark.parametrize(
    "token",
    ["", "not-a-jwt", "a.b", "a.b.c", "a.b.c.d", "é.é.é", "..."],
)
def test_garbage_is_no_token(token: str) -> None:
    assert Signer().decode(token) is None


def test_a_payload_that_is_no_object_is_refused() -> None:
    key = b"k" * 32
    assert Signer(key).decode(hand_made({"alg": "HS256"}, [1, 2], key)) is None
    with pytest.raises(ValueError, match="not an object"):
        read_claims(hand_made({"alg": "HS256"}, [1, 2], key))


def test_read_claims_of_garbage_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        read_claims("not-a-jwt")
