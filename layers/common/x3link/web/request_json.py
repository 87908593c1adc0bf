"""JSON read from a request body, within bounds: a body too large or nested too deep is refused like any
body that is not JSON, never left to raise `RecursionError` (a 500) in the parser."""

from __future__ import annotations

import json

# Any: JSON of any shape: the caller checks what it reads.
from typing import Any

MAX_BYTES = 16 * 1024
MAX_DEPTH = 20


class NotAcceptableJson(ValueError):
    """The body is not JSON, or not JSON this bundle reads; the message is a sentence for the caller."""


def loads(text: str | bytes, *, max_bytes: int = MAX_BYTES) -> Any:
    """The document in `text`; NotAcceptableJson when it is not JSON, larger than `max_bytes`, or nested too
    deep."""
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    if len(raw) > max_bytes:
        raise NotAcceptableJson(f"The body is larger than {max_bytes // 1024} KiB.")
    if _too_deep(raw):
        raise NotAcceptableJson(f"The body is nested more than {MAX_DEPTH} levels deep.")
    try:
        return json.loads(raw)
    except RecursionError:  # cannot happen within MAX_DEPTH; kept so that no body can ever make a 500
        raise NotAcceptableJson(f"The body is nested more than {MAX_DEPTH} levels deep.") from None
    except ValueError:  # includes UnicodeDecodeError
        raise NotAcceptableJson("The body is not valid JSON.") from None


def _too_deep(raw: bytes) -> bool:
    """Whether arrays and objects nest more than MAX_DEPTH deep in `raw`, brackets in strings aside."""
    if raw.count(b"[") + raw.count(b"{") <= MAX_DEPTH:
        return False
    depth = 0
    in_string = escaped = False
    for byte in raw:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > MAX_DEPTH:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False
