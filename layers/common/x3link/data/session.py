"""Calling Sage X3 with a pairing's live access token: the one place every data route goes through.

Refresh first when the access token is about to expire; on a 401, refresh once (or take the token another
worker just stored) and retry once. So a read costs one table read and one Sage call when warm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from x3link.budget import Budget
from x3link.errors import Unauthorised, UpstreamError
from x3link.refresh.keeper import TokenKeeper
from x3link.tokens.model import Pairing

T = TypeVar("T")


def with_live_token(
    tenant: str,
    keeper: TokenKeeper,
    call: Callable[[Pairing, str], T],
    budget: Budget | None = None,
    *,
    check: Callable[[Pairing], None] | None = None,
) -> T:
    """`call(pairing, access_token)` with a token Sage should accept; at most one refresh and one retry.

    `check` vets the pairing before Sage is called at all, token refresh included (a folder the customer did
    not grant, say).
    """
    pairing = keeper.usable_pairing(tenant, budget, check=check)
    try:
        return call(pairing, _token(pairing))
    except Unauthorised:
        pairing = keeper.after_unauthorised(pairing, budget)
    try:
        return call(pairing, _token(pairing))
    except Unauthorised:
        raise UpstreamError("Sage X3 refused a freshly refreshed access token.") from None


def _token(pairing: Pairing) -> str:
    if not pairing.access_token:  # the keeper hands out opened pairings only: a broken invariant
        raise UpstreamError("The pairing has no access token to call Sage X3 with.")
    return pairing.access_token
