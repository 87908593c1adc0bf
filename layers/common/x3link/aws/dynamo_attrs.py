"""Reading DynamoDB's typed attributes (`{"S": ...}`, `{"N": ...}`) out of an item or a stream image.

One home for what every store and every stream reader needs, so that none of them spells a type key by hand:
`s`/`n` for an attribute the item must hold, `s_or_none`/`n_or_none` for one it may lack (a missing item,
attribute or another type all read as None).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Item = Mapping[str, Any]


def s(item: Item, name: str) -> str:
    """A string attribute the item must hold (KeyError when it does not)."""
    value: str = item[name]["S"]
    return value


def n(item: Item, name: str) -> float:
    """A number attribute the item must hold (KeyError when it does not)."""
    return float(item[name]["N"])


def s_or_none(item: Item | None, name: str) -> str | None:
    value = (item or {}).get(name)
    return value["S"] if value and "S" in value else None


def n_or_none(item: Item | None, name: str) -> float | None:
    value = (item or {}).get(name)
    return float(value["N"]) if value and "N" in value else None


def b_or_none(item: Item | None, name: str) -> bytes | None:
    value = (item or {}).get(name)
    return bytes(value["B"]) if value and "B" in value else None
