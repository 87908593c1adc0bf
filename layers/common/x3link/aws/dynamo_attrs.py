"""Reading DynamoDB's typed attributes (`{"S": ...}`, `{"N": ...}`) out of an item or a stream image.

One home for what every store and every stream reader needs, so that none of them spells a type key by hand
(tests/unit/test_dynamo_attrs.py fails on a `["S"]`-style read anywhere else in the layer): `s`/`n` for an
attribute the item must hold, `s_or_none`/`n_or_none` for one it may lack (a missing item, attribute or
another type all read as None), and `only` for a value that came back from outside (a cursor's key) and
must be exactly one attribute of one type.
"""

from __future__ import annotations

from collections.abc import Mapping

# Any: an item's attribute values differ by source (client, stream image, cursor): each reader checks its own.
from typing import Any

# An item as the client returns it, a stream image as the event carries it, or a key decoded from a
# cursor: the attribute values' shapes differ between those, and each reader below checks the one it reads.
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


def n_text_or_none(item: Item | None, name: str) -> str | None:
    """A number attribute as DynamoDB spells it (`"3"`, never `3.0`): for ids built from it."""
    value = (item or {}).get(name)
    return str(value["N"]) if value and "N" in value else None


def b_or_none(item: Item | None, name: str) -> bytes | None:
    value = (item or {}).get(name)
    return bytes(value["B"]) if value and "B" in value else None


def flag(item: Item | None, name: str) -> bool:
    """A boolean attribute the item may lack (False then, as for another type)."""
    value = (item or {}).get(name)
    return bool(value["BOOL"]) if value and "BOOL" in value else False


def strings(item: Item | None, name: str) -> list[str]:
    """A list attribute of strings the item may lack (empty then)."""
    value = (item or {}).get(name)
    return [entry["S"] for entry in value["L"]] if value and "L" in value else []


def string_maps(item: Item | None, name: str) -> list[dict[str, str]]:
    """A list attribute of maps whose attributes are all strings, the item may lack (empty then)."""
    value = (item or {}).get(name)
    entries = value["L"] if value and "L" in value else []
    return [{key: field["S"] for key, field in entry["M"].items()} for entry in entries]


def plain(value: Mapping[str, Any]) -> str | float | bool | None:
    """One attribute value as Python reads it: an S as str, an N as float, a BOOL as bool, else None."""
    if "N" in value:
        return float(value["N"])
    if "BOOL" in value:
        return bool(value["BOOL"])
    return value.get("S")


def only(value: object, type_key: str) -> object:
    """What an untrusted attribute value holds when it is exactly `{type_key: ...}` (a key a cursor brought
    back), else None: the caller then checks what it holds."""
    if isinstance(value, dict) and set(value) == {type_key}:
        held: object = value[type_key]
        return held
    return None
