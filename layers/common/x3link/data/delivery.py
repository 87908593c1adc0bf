"""Data delivery: the files Sage X3 exported into a granted folder, listed a page at a time, each fetched
through a presigned link and deleted once fetched (docs/sage-x3.md#data-delivery).

The protocol is pure functions (URLs, a list page, the cursor, a link's expiry); each operation then costs
one Sage call with a live token (`with_live_token`: one table read and one Sage call when warm).

The cursor is Sage's own `$next`, relative to `{endpoint}/datadelivery/` ("SEED?page=2"), in base64url:
Sage's paging is followed, never rebuilt, and a cursor that would lead out of its folder, or to another
gateway, is refused before anything is called.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

# Any: Sage's JSON answers, untrusted: each field is checked as it is read; the page answered is JSON.
from typing import Any
from urllib.parse import parse_qsl, urljoin, urlsplit

from x3link.budget import Budget
from x3link.data.integration import absolute_link, file_name, folder_name, granted, link_expiry, quoted
from x3link.data.session import with_live_token
from x3link.errors import (
    BadRequest,
    FileNotFound,
    FolderNotGranted,
    UpstreamError,
    UpstreamRefused,
    X3LinkError,
)
from x3link.refresh.keeper import TokenKeeper
from x3link.sage.client import SageX3Client
from x3link.tokens.model import Pairing, iso
from x3link.web import cursors

_PRINTABLE_REF = re.compile(r"[\x21-\x7e]{1,1024}")
# Only to check a cursor before the pairing (and so its gateway) is read: the relative reference a cursor
# holds resolves inside its folder against any gateway's `/datadelivery/` if it does against this one.
_ANY_GATEWAY = "https://gateway.invalid/v1/datadelivery/"
_BAD_CURSOR = "cursor is not one that this folder's listing handed out."


# ------------------------------------------------------------------ requests
def delivery_root(endpoint: str) -> str:
    """What Sage's `$next` is relative to."""
    return f"{endpoint}/datadelivery/"


def folder_url(endpoint: str, folder: str) -> str:
    return f"{delivery_root(endpoint)}{quoted(folder)}/"


def file_url(endpoint: str, folder: str, filename: str) -> str:
    """`GET` answers a redirect to the file's presigned link; `DELETE` removes the file."""
    return f"{folder_url(endpoint, folder)}?filename={quoted(filename)}"


def page_ref(ref: str, root: str, folder: str) -> str | None:
    """`ref` as a page of `folder`'s listing relative to `root` ("SEED?page=2"), or None when, resolved
    against `root`, it leaves the gateway or the folder, names a file, or is no plain URL reference."""
    if not _PRINTABLE_REF.fullmatch(ref):
        return None
    try:
        target, base = urlsplit(urljoin(root, ref)), urlsplit(root)
    except ValueError:
        return None
    if (target.scheme, target.netloc) != (base.scheme, base.netloc) or target.fragment:
        return None
    if not target.path.startswith(base.path) or target.path[len(base.path) :] not in (
        quoted(folder),
        f"{quoted(folder)}/",
    ):
        return None
    if any(name.lower() == "filename" for name, _ in parse_qsl(target.query, keep_blank_values=True)):
        return None  # a download, not a page
    relative = target.path[len(base.path) :]
    return f"{relative}?{target.query}" if target.query else relative


def encode_cursor(ref: str) -> str:
    return cursors.encode({"next": ref})


def decode_cursor(cursor: str, folder: str) -> str:
    """The page reference a cursor holds; BadRequest unless it is one this folder's listing handed out."""
    document = cursors.decode(cursor, _BAD_CURSOR)
    ref = document.get("next") if isinstance(document, dict) and set(document) == {"next"} else None
    if not isinstance(ref, str) or page_ref(ref, _ANY_GATEWAY, folder) != ref:
        raise BadRequest(_BAD_CURSOR)
    return ref


# ------------------------------------------------------------------ answers
def _size(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def parse_file(item: Any) -> dict[str, Any]:
    """One listed file, in the bundle's words; Sage's relative download and delete URLs stay behind."""
    if not isinstance(item, dict) or not isinstance(item.get("key"), str) or not item["key"]:
        raise UpstreamError("Sage X3's file list holds an item with no key.")
    return {
        "name": item["key"],
        "size": _size(item.get("size")),
        "last_modified": _text(item.get("lastModified")),
        "checksum": _text(item.get("checksum")),
    }


def parse_page(document: Any, endpoint: str, folder: str) -> dict[str, Any]:
    """A list page: its files, and a cursor for Sage's `$next` when there is one."""
    items = document.get("items") if isinstance(document, dict) else None
    if not isinstance(items, list):
        raise UpstreamError("Sage X3's file list has no items.")
    page: dict[str, Any] = {"files": [parse_file(item) for item in items]}
    following = document.get("$next")
    if isinstance(following, str) and following and document.get("isTruncated") is not False:
        ref = page_ref(following, delivery_root(endpoint), folder)
        if ref is None:
            raise UpstreamError("Sage X3's next page is not in the folder listed.")
        page["cursor"] = encode_cursor(ref)
    return page


def _refused(refused: UpstreamRefused, folder: str, *, about_a_file: bool = True) -> X3LinkError:
    """What Sage's refusal of a folder or file request means to the app."""
    if refused.upstream_status == 403:
        return FolderNotGranted(f"Sage X3 refuses the folder {folder!r} to this pairing.")
    if refused.upstream_status == 404 and about_a_file:
        return FileNotFound("Sage X3 has no such file in this folder.")
    return refused


# ------------------------------------------------------------------ operations
def list_files(
    tenant: str,
    folder: str,
    cursor: str | None,
    keeper: TokenKeeper,
    sage: SageX3Client,
    budget: Budget | None = None,
) -> dict[str, Any]:
    """One page of the files in a granted folder: `{"files": [...], "cursor"?}`."""
    folder = folder_name(folder)
    ref = decode_cursor(cursor, folder) if cursor is not None else None

    def read(pairing: Pairing, token: str) -> dict[str, Any]:
        url = folder_url(pairing.endpoint, folder)
        if ref is not None:
            url = urljoin(delivery_root(pairing.endpoint), ref)
        try:
            return parse_page(sage.get_json(url, token, tenant=tenant), pairing.endpoint, folder)
        except UpstreamRefused as refused:
            raise _refused(refused, folder, about_a_file=False) from None

    return with_live_token(tenant, keeper, read, budget, check=granted(folder))


def download_link(
    tenant: str,
    folder: str,
    filename: str,
    keeper: TokenKeeper,
    sage: SageX3Client,
    budget: Budget | None = None,
    clock: Callable[[], float] = time.time,
) -> dict[str, Any]:
    """The file's presigned link, as Sage's redirect names it (never followed), and when it stops working."""
    folder, filename = folder_name(folder), file_name(filename)

    def locate(pairing: Pairing, token: str) -> str:
        try:
            return absolute_link(
                sage.get_location(file_url(pairing.endpoint, folder, filename), token, tenant=tenant)
            )
        except UpstreamRefused as refused:
            raise _refused(refused, folder) from None

    url = with_live_token(tenant, keeper, locate, budget, check=granted(folder))
    return {"url": url, "expires_at": iso(link_expiry(url, clock()))}


def delete_file(
    tenant: str,
    folder: str,
    filename: str,
    keeper: TokenKeeper,
    sage: SageX3Client,
    budget: Budget | None = None,
) -> None:
    folder, filename = folder_name(folder), file_name(filename)

    def delete(pairing: Pairing, token: str) -> None:
        try:
            sage.delete(file_url(pairing.endpoint, folder, filename), token, tenant=tenant)
        except UpstreamRefused as refused:
            raise _refused(refused, folder) from None

    with_live_token(tenant, keeper, delete, budget, check=granted(folder))
