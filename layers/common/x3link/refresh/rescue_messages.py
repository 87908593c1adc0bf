"""The rescue queue's messages as pure functions: a token set as the sealer's fields, a body's header read
and checked, the fields read back into a token set. No I/O here: rescue.py seals, sends and opens.

The body: {"v": 2, "tenant", "generation", "version", "sealed": base64 of the sealer's blob}. Format 1 (KMS
Encrypt of the zlib-compressed set as JSON, expiries as numbers) is still read, never written.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from collections.abc import Mapping

from x3link.sage.oauth import TokenSet

FORMAT_VERSION = 2  # sealed by the tokens' sealer
LEGACY_FORMAT = 1  # sealed by KMS Encrypt: opened, never written
PURPOSE = "token-rescue"
# KMS refuses ciphertext blobs over 6144 bytes: a longer format-1 blob cannot be ours.
KMS_CIPHERTEXT_LIMIT = 6144
# An SQS message body holds at most 256 KiB.
SQS_BODY_LIMIT = 262_144
_TOKEN_FIELDS = (
    "access_token",
    "refresh_token",
    "scope",
    "access_token_expires_at",
    "refresh_token_expires_at",
)


class PoisonMessage(Exception):
    """A rescue message that can never be applied. Its text names the reason, never the body."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def binding(generation: str, version: int) -> dict[str, str]:
    """What a parked token set is bound to besides its tenant: the pairing and the version it was issued over.

    `purpose` keeps a parked blob and a pairing item's blob apart: neither opens in the other's place."""
    return {"purpose": PURPOSE, "generation": generation, "version": str(version)}


def encryption_context(tenant: str, generation: str, version: int) -> dict[str, str]:
    """KMS's context of a format-1 message (KMS Encrypt), kept to open messages parked before format 2."""
    return {"purpose": PURPOSE, "tenant": tenant, "generation": generation, "version": str(version)}


def not_sealed_for_pairing() -> PoisonMessage:
    return PoisonMessage(
        "not_sealed_for_pairing", "The message was not sealed for the pairing and version its header names."
    )


def token_fields(tokens: TokenSet) -> dict[str, str]:
    """A token set as the sealer's string fields: the expiries as exact float reprs."""
    return {
        "access_token": tokens.access_token,
        "refresh_token": tokens.refresh_token,
        "scope": tokens.scope,
        "access_token_expires_at": repr(float(tokens.access_token_expires_at)),
        "refresh_token_expires_at": repr(float(tokens.refresh_token_expires_at)),
    }


def read_header(body: str) -> tuple[int, str, str, int, bytes]:
    try:
        parsed = json.loads(body)
    except (TypeError, ValueError):
        raise PoisonMessage("not_json", "The message body is not JSON.") from None
    form = parsed.get("v") if isinstance(parsed, dict) else None
    if form not in (FORMAT_VERSION, LEGACY_FORMAT) or isinstance(form, bool):
        raise PoisonMessage("unknown_format", "The message is not a rescue message of a known format.")
    tenant, generation, version, sealed = (
        parsed.get(k) for k in ("tenant", "generation", "version", "sealed")
    )
    if not (isinstance(tenant, str) and tenant and len(tenant) <= 256):
        raise PoisonMessage("bad_header", "The message names no valid tenant.")
    if not (isinstance(generation, str) and generation and len(generation) <= 256):
        raise PoisonMessage("bad_header", "The message names no valid pairing generation.")
    if not (isinstance(version, int) and not isinstance(version, bool) and version >= 0):
        raise PoisonMessage("bad_header", "The message names no valid version.")
    if not isinstance(sealed, str):
        raise PoisonMessage("bad_header", "The message carries no sealed token set.")
    try:
        blob = base64.b64decode(sealed, validate=True)
    except (binascii.Error, ValueError):
        raise PoisonMessage("bad_header", "The sealed token set is not base64.") from None
    limit = KMS_CIPHERTEXT_LIMIT if form == LEGACY_FORMAT else SQS_BODY_LIMIT
    if not 0 < len(blob) <= limit:
        raise PoisonMessage("bad_header", "The sealed token set is not of a size this bundle seals.")
    return int(form), tenant, generation, version, blob


def invalid_token_set() -> PoisonMessage:
    return PoisonMessage("bad_token_set", "The sealed content is not a valid token set.")


def legacy_fields(plaintext: bytes) -> dict[str, str]:
    """A format-1 plaintext (zlib of JSON, expiries as numbers) as format 2's string fields."""
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(plaintext, 64 * 1024)
        if inflater.unconsumed_tail or not inflater.eof:
            raise invalid_token_set()
        fields = json.loads(raw)
    except (zlib.error, ValueError):
        raise invalid_token_set() from None
    if not isinstance(fields, dict) or set(fields) != set(_TOKEN_FIELDS):
        raise invalid_token_set()
    for name in ("access_token_expires_at", "refresh_token_expires_at"):
        value = fields[name]
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise invalid_token_set()
        fields[name] = repr(float(value))
    return fields


def load_tokens(fields: Mapping[str, object]) -> TokenSet:
    if set(fields) != set(_TOKEN_FIELDS) or not all(isinstance(v, str) for v in fields.values()):
        raise invalid_token_set()
    access, refresh, scope = str(fields["access_token"]), str(fields["refresh_token"]), str(fields["scope"])
    if not (access and refresh):
        raise invalid_token_set()
    try:
        expiries = (
            float(str(fields["access_token_expires_at"])),
            float(str(fields["refresh_token_expires_at"])),
        )
    except ValueError:
        raise invalid_token_set() from None
    if not all(math.isfinite(e) for e in expiries):
        raise invalid_token_set()
    return TokenSet(
        access_token=access,
        refresh_token=refresh,
        scope=scope,
        access_token_expires_at=expiries[0],
        refresh_token_expires_at=expiries[1],
    )
