"""Folder queries: the first Sage X3 read served with a pairing's tokens."""

from __future__ import annotations

from typing import Any

from x3link.budget import Budget
from x3link.errors import Unauthorised, UpstreamError
from x3link.sage_client import SageX3Client
from x3link.token_keeper import TokenKeeper


def list_folders(
    tenant: str, keeper: TokenKeeper, sage: SageX3Client, budget: Budget | None = None
) -> list[Any]:
    """Refresh first when the token is about to expire; on a 401, refresh once and retry once."""
    pairing = keeper.usable_pairing(tenant, budget)
    assert pairing.access_token
    try:
        return sage.folders(pairing.endpoint, pairing.access_token)
    except Unauthorised:
        pairing = keeper.after_unauthorised(pairing, budget)
    assert pairing.access_token
    try:
        return sage.folders(pairing.endpoint, pairing.access_token)
    except Unauthorised:
        raise UpstreamError("Sage X3 refused a freshly refreshed access token.") from None
