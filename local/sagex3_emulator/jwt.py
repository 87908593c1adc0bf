"""HS256 JSON Web Tokens for the emulator's access and refresh tokens, signed and read with joserfc.

Why: Sage's tokens are signed JWTs whose claims apps read for expiry; a per-emulator random key makes
forged or foreign tokens fail exactly like they would at the real gateway. Expiry is the emulator's own
rule (its clock can be moved: tokens.py), so reading a token here checks only who signed it.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

ALGORITHM = "HS256"


def read_claims(token: str) -> dict[str, Any]:
    """Claims WITHOUT verifying the signature; for tests that inspect what a client would read.

    Raises ValueError on what is not a compact JWS of a JSON object.
    """
    try:
        payload = jws.extract_compact(token.encode("ascii")).payload
        claims = json.loads(payload or b"")
    except (JoseError, UnicodeError) as exc:
        raise ValueError(f"not a JWT: {type(exc).__name__}") from None
    if not isinstance(claims, dict):
        raise ValueError("JWT payload is not an object")
    return claims


class Signer:
    """Signs and verifies tokens with one secret key."""

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._jwk = OctKey.import_key(self._key)

    @property
    def key(self) -> bytes:
        """The signing key: kept with a saved state, so tokens issued before a restart still verify."""
        return self._key

    def encode(self, claims: dict[str, Any]) -> str:
        """A compact JWS of `claims`."""
        return jwt.encode({"alg": ALGORITHM}, claims, self._jwk, algorithms=[ALGORITHM])

    def decode(self, token: str) -> dict[str, Any] | None:
        """The claims when the token is well formed, HS256 and signed by this key; None otherwise."""
        try:
            return dict(jwt.decode(token, self._jwk, algorithms=[ALGORITHM]).claims)
        except (JoseError, ValueError, UnicodeError):
            return None
