"""The DynamoDB attribute readers every store and stream reader shares (x3link/aws/dynamo_attrs.py)."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest

from x3link.aws.dynamo_attrs import (
    b_or_none,
    flag,
    n,
    n_or_none,
    n_text_or_none,
    only,
    plain,
    s,
    s_or_none,
    string_maps,
    strings,
)

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


def test_lists_flags_and_number_texts_read_what_is_there_and_default_when_absent() -> None:
    item = {
        "on": {"BOOL": True},
        "folders": {"L": [{"S": "SEED"}, {"S": "X3"}]},
        "failures": {"L": [{"M": {"tenant": {"S": "acme"}, "outcome": {"S": "refused"}}}]},
        "version": {"N": "3"},
    }
    assert (flag(item, "on"), flag(item, "folders"), flag(None, "on")) == (True, False, False)
    assert (strings(item, "folders"), strings(item, "absent")) == (["SEED", "X3"], [])
    assert string_maps(item, "failures") == [{"tenant": "acme", "outcome": "refused"}]
    assert (string_maps(item, "absent"), n_text_or_none(item, "version"), n_text_or_none(item, "on")) == (
        [],
        "3",
        None,
    )


def test_plain_reads_one_attribute_value_as_python_does() -> None:
    assert [plain(v) for v in ({"S": "a"}, {"N": "2.5"}, {"BOOL": False}, {"NULL": True})] == [
        "a",
        2.5,
        False,
        None,
    ]


@pytest.mark.parametrize(
    ("value", "held"),
    [({"S": "a"}, "a"), ({"N": "1"}, None), ({"S": "a", "N": "1"}, None), ("a", None), ({"S": 5}, 5)],
)
def test_only_holds_a_value_of_exactly_one_attribute_of_the_type(value: object, held: object) -> None:
    assert only(value, "S") == held


# ------------------------------------------------------------------ one home: no type key spelled elsewhere
LAYER = Path(__file__).parents[2] / "layers" / "common" / "x3link"
TYPE_KEYS = {"S", "N", "B", "BOOL", "M", "L", "SS", "NS", "BS", "NULL"}


def _raw_reads(path: Path) -> list[str]:
    """`x["S"]` subscripts and `x.get("S")` calls: an attribute read by its type key."""
    found = []
    key: ast.expr | None
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load):
            key = node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            key = node.args[0] if node.args else None
        else:
            continue
        if isinstance(key, ast.Constant) and key.value in TYPE_KEYS:
            found.append(f"{path.name}:{node.lineno}: {ast.unparse(node)}")
    return sorted(found)


def test_the_layer_reads_typed_attributes_only_through_dynamo_attrs() -> None:
    """A store that spells `item["x"]["S"]` itself drifts from the others (a missing attribute, another
    type): every read goes through x3link/aws/dynamo_attrs.py."""
    modules = [path for path in sorted(LAYER.rglob("*.py")) if path.name != "dynamo_attrs.py"]
    assert len(modules) > 20, "the layer was not found"
    assert [read for path in modules for read in _raw_reads(path)] == []


def test_the_guard_sees_a_raw_read(tmp_path: Path) -> None:
    module = tmp_path / "store.py"
    module.write_text(
        'tenant = item["tenant"]["S"]\nflag = item.get("on", {}).get("BOOL")\nkey = {"S": "a"}\n'
    )
    assert _raw_reads(module) == [
        "store.py:1: item['tenant']['S']",
        "store.py:2: item.get('on', {}).get('BOOL')",
    ]
