"""Names the API fixes (docs/api.md), for tests inside and outside the process."""

from __future__ import annotations

# `GET /tenants/{tenant}`: exactly these fields, never token material.
TENANT_FIELDS = frozenset(
    {
        "tenant",
        "customer",
        "status",
        "scope",
        "folders",
        "endpoint",
        "access_token_expires_at",
        "refresh_token_expires_at",
        "paired_at",
        "refreshed_at",
    }
)
