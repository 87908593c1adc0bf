"""The DynamoDB attribute readers every store and stream reader shares (x3link/aws/dynamo_attrs.py)."""

from __future__ import annotations

from typing import Any

import pytest

from x3link.aws.dynamo_attrs import b_or_none, n, n_or_none, s, s_or_none

ITEM: dict[str, Any] = {
    "tenant": {"S": "acme"},
    "version": {"N": "3"},
    "at": {"N": "1.5"},
    "blob": {"B": b"x"},
}


def test_required_attributes_read_as_their_type() -> None:
    assert (s(ITEM, "tenant"), n(ITEM, "version"), n(ITEM, "at")) == ("acme", 3.0, 1.5)


@pytest.mark.parametrize("read", [s, n])
def test_a_missing_required_attribute_is_a_key_error(read: Any) -> None:
    with pytest.raises(KeyError):
        read(ITEM, "absent")


@pytest.mark.parametrize(
    ("item", "name"),
    [(None, "tenant"), (ITEM, "absent"), (ITEM, "version"), ({"tenant": {"NULL": True}}, "tenant")],
)
def test_an_optional_string_absent_or_of_another_type_reads_as_none(item: Any, name: str) -> None:
    assert s_or_none(item, name) is None


def test_optional_readers_read_what_is_there() -> None:
    assert (s_or_none(ITEM, "tenant"), n_or_none(ITEM, "at"), b_or_none(ITEM, "blob")) == ("acme", 1.5, b"x")
    assert (n_or_none(ITEM, "tenant"), n_or_none(None, "at"), b_or_none(ITEM, "tenant")) == (None, None, None)
