"""Pairings table items as its change stream carries them, for the lifecycle event tests (pure and on moto):
a pairing's image with defaults a test overrides, a gateway's breaker record, and the shipped samples."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).parents[2]
STREAM_SAMPLE = json.loads((ROOT / "events/pairing_events_stream.json").read_text())
LIFECYCLE_SAMPLES = {
    path.stem: json.loads(path.read_text()) for path in (ROOT / "events/lifecycle").glob("*.json")
}
T0 = 1767225600
GEN_A, GEN_B = "a" * 32, "b" * 32
ACCESS, REFRESH = "EXAMPLE-access-token-value", "EXAMPLE-refresh-token-value"

Image = dict[str, dict[str, str]]


def image(tenant: str = "acme", **fields: Any) -> Image:
    """A pairing item as the stream carries it; `fields` override the defaults (None removes one)."""
    values: dict[str, Any] = {
        "tenant": tenant,
        "customer": f"https://x3.{tenant}.example",
        "endpoint": "https://api.eu-prod-sagex3.com/v1",
        "scope": "api.dataDelivery",
        "status": "active",
        "reason": "paired",
        "generation": GEN_A,
        "version": 1,
        "access_token": ACCESS,
        "refresh_token": REFRESH,
        "access_token_expires_epoch": T0 + 300,
        "refresh_token_expires_epoch": T0 + 30 * 86400,
        "paired_at": T0,
        **fields,
    }
    return {
        name: {"S": value} if isinstance(value, str) else {"N": str(value)}
        for name, value in values.items()
        if value is not None
    }


def app(**fields: Any) -> Image:
    """The app breaker's item, which shares the table under a key no tenant can take."""
    values = {"tenant": "~app", **fields}
    return {
        name: {"S": value} if isinstance(value, str) else {"N": str(value)} for name, value in values.items()
    }


SUSPENDED: dict[str, Any] = {
    "status": "suspended",
    "reason": "grant_refused",
    "version": 2,
    "suspended_at": T0 + 60,
    "next_attempt_at": T0 + 360,
    "last_refusal_at": T0 + 60,
    "last_refusal_status": 400,
    "last_refusal_message": "Pairing request not found",
}
