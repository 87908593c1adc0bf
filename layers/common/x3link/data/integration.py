"""What Sage X3's data delivery and data ingestion share: the folder and file names a request may put in
Sage's URLs, the pairing's grant of a folder, and how long a presigned link lives.

A name reaches a URL only after it was checked here, and then only percent-encoded (`quoted`): no name can
step out of its folder or its query parameter, whatever Sage's own checks are.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import parse_qsl, quote, urlsplit

from x3link.errors import BadRequest, FolderNotGranted, UpstreamError
from x3link.tokens.model import Pairing

# Sage's folder names (`folder.SEED` in a grant's scope): letters, digits, `_`, `.` and `-`.
FOLDER_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_FILENAME = 255
# Sage documents its presigned links as valid one hour (docs/sage-x3.md#data-delivery, #data-ingestion).
PRESIGNED_LIFETIME = 3600.0
# S3 caps a SigV4 presigned URL's X-Amz-Expires at 7 days: a larger value is not S3's.
_MAX_AMZ_EXPIRES = 7 * 86400
# Unicode's control characters, unpaired surrogates and line/paragraph separators.
_NOT_IN_NAMES = {"Cc", "Cs", "Zl", "Zp"}


def quoted(name: str) -> str:
    """A checked name as one URL path segment or query value: every reserved character encoded."""
    return quote(name, safe="")


def folder_name(value: str) -> str:
    if not FOLDER_PATTERN.fullmatch(value):
        raise BadRequest(
            "folder must be 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit."
        )
    return value


def file_name(value: object) -> str:
    """A file name that stays in its folder: no `/`, `\\`, control character, `.` or `..`; 1 to 255 long."""
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_FILENAME
        or value in {".", ".."}
        or any(ch in "/\\" or unicodedata.category(ch) in _NOT_IN_NAMES for ch in value)
    ):
        raise BadRequest(
            "filename must be 1 to 255 characters, not '.' or '..', with no '/', '\\' or control character."
        )
    return value


def granted(folder: str) -> Callable[[Pairing], None]:
    """A `with_live_token` check: the customer granted the pairing this folder (its scope names it)."""

    def check(pairing: Pairing) -> None:
        if folder not in pairing.folders:
            raise FolderNotGranted(f"The customer did not grant this pairing the folder {folder!r}.")

    return check


def absolute_link(url: str) -> str:
    """A presigned link as Sage hands it out: an absolute http(s) URL, else Sage's answer is unusable."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = urlsplit("")
    if parts.scheme not in ("https", "http") or not parts.hostname or not url.isprintable():
        raise UpstreamError("Sage X3 handed out a link that is not an absolute http(s) URL.")
    return url


def link_expiry(url: str, now: float) -> float:
    """When a presigned link stops working: what its signature says (S3's `X-Amz-Date` + `X-Amz-Expires`,
    or an epoch `Expires`), else Sage's documented hour from now."""
    query = {name.lower(): value for name, value in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    signed_at, lifetime = query.get("x-amz-date", ""), query.get("x-amz-expires", "")
    if lifetime.isdigit() and int(lifetime) <= _MAX_AMZ_EXPIRES:
        try:
            start = datetime.strptime(signed_at, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC).timestamp()
        except ValueError:
            pass
        else:
            return start + int(lifetime)
    expires = query.get("expires", "")
    if expires.isdigit() and len(expires) <= 12:
        return float(expires)
    return now + PRESIGNED_LIFETIME
