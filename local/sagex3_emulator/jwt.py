"""HS256 JSON Web Tokens, just enough for the emulator's access and refresh tokens.

Why: Sage's tokens are signed JWTs whose claims apps read for expiry; a per-emulator random key makes
forged or foreign tokens fail exactly like they would at the real gateway.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from typing import Any

_HEADER = {"alg": "HS256", "typ": "JWT"}


def b64url_encode(data: bytes) -> str:
    """Base64url without padding (RFC 7515)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    """Inverse of `b64url_encode`; raises ValueError on garbage."""
    padded = text + "=" * (-len(text) % 4)
    return base64.urlsafe_b64decode(padded.encode("ascii"))


def _json_part(value: dict[str, Any]) -> str:
    return b64url_encode(json.dumps(value, separators=(",", ":")).encode("utf-8"))


def read_claims(token: str) -> dict[str, Any]:
    """Claims WITHOUT verifying the signature; for tests that inspect what a client would read."""
    claims = json.loads(b64url_decode(token.split(".")[1]))
    if not isinstance(claims, dict):
        raise ValueError("JWT payload is not an object")
    return claims


class Signer:
    """Signs and verifies tokens with one secret key."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)

    @property
    def key(self) -> bytes:
        """The signing key: kept with a saved state, so tokens issued before a restart still verify."""
        return self._key

    def _sign(self, signing_input: str) -> str:
        return b64url_encode(hmac.new(self._key, signing_input.encode("ascii"), hashlib.sha256).digest())

    def encode(self, claims: dict[str, Any]) -> str:
        """A compact JWS of `claims`."""
        signing_input = f"{_json_part(_HEADER)}.{_json_part(claims)}"
        return f"{signing_input}.{self._sign(signing_input)}"

    def decode(self, token: str) -> dict[str, Any] | None:
        """The claims when the token is well formed and signed by this key; None otherwise."""
        parts = token.split(".")
        if len(parts) != 3:
            return None
        signing_input = f"{parts[0]}.{parts[1]}"
        try:
            if not hmac.compare_digest(self._sign(signing_input), parts[2]):
                return None
            header = json.loads(b64url_decode(parts[0]))
            claims = json.loads(b64url_decode(parts[1]))
        except ValueError:
            return None
        if not isinstance(header, dict) or header.get("alg") != "HS256" or not isinstance(claims, dict):
            return None
        return claims
