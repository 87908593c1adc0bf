"""Folder queries: the folders the customer granted, as Sage X3 lists them."""

from __future__ import annotations

# Any: the folders as Sage's JSON lists them, checked by their readers.
from typing import Any

from x3link.budget import Budget
from x3link.data.session import with_live_token
from x3link.refresh.keeper import TokenKeeper
from x3link.sage.client import SageX3Client
from x3link.tokens.model import Pairing


def list_folders(
    tenant: str, keeper: TokenKeeper, sage: SageX3Client, budget: Budget | None = None
) -> list[Any]:
    def read(pairing: Pairing, token: str) -> list[Any]:
        return sage.folders(pairing.endpoint, token, tenant=tenant)

    return with_live_token(tenant, keeper, read, budget)
