"""Every failure the CLI reports, as one sentence and exit code 1 (click keeps 2 for usage errors).

The sentences are built by pure functions from what the API answered, so they are tested without a socket.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import click

# API Gateway's own refusals carry `x-amzn-ErrorType`; the bundle's carry `{"error", "message"}`.
_SIGNATURE_TYPES = {
    "InvalidSignatureException",
    "UnrecognizedClientException",
    "IncompleteSignatureException",
    "ExpiredTokenException",
}


class CliError(click.ClickException):
    """An API, network or setup failure: one sentence on stderr, exit code 1."""

    exit_code = 1


def _sentence(text: str) -> str:
    text = " ".join(text.split())
    return text if text.endswith((".", "!", "?")) else f"{text}."


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None


def api_error(status: int, headers: Mapping[str, str], body: bytes) -> str:
    """The sentence for an API answer that is not a success (`headers` with lower-case names)."""
    answer = _json(body)
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        message = answer.get("message")
        if isinstance(message, str) and message.strip():
            return _sentence(message)
        return f"The API refused the request ({answer['error']}, HTTP {status})."
    error_type = headers.get("x-amzn-errortype", "").split(":")[0]
    if status == 403 and error_type in _SIGNATURE_TYPES:
        return (
            "The API refused the request's signature: check the AWS credentials (profile, role or "
            f"environment) and the region it was signed with ({error_type})."
        )
    if status == 403 and error_type == "AccessDeniedException":
        return "Your AWS identity is not allowed to call this API (execute-api:Invoke is denied to it)."
    if status == 403 and error_type == "MissingAuthenticationTokenException":
        return "The API has no such route: check the URL (an AWS one ends with its stage, as in /prod)."
    if status == 403:
        return "The API refused the request (HTTP 403): check the AWS credentials it was signed with."
    gateway = answer.get("message") if isinstance(answer, dict) else None
    if isinstance(gateway, str) and gateway.strip():
        return f"The API failed with HTTP {status}: {_sentence(gateway)}"
    return f"The API answered HTTP {status}, which the command does not understand."


def transfer_error(status: int, body: bytes, what: str) -> str:
    """The sentence for a download or upload link (S3's, or Sage's emulator) that refused: its XML
    `<Code>` and `<Message>` when it gave them. `what` is "download" or "upload"."""
    text = body.decode("utf-8", "replace")
    code = re.search(r"<Code>([^<]*)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    detail = ": ".join(part.group(1).strip() for part in (code, message) if part and part.group(1).strip())
    if detail:
        return f"The {what} link refused the transfer with HTTP {status} ({_sentence(detail)[:-1]})."
    return f"The {what} link refused the transfer with HTTP {status}."


def unreachable(url: str, reason: BaseException) -> str:
    """The sentence for a request that got no answer at all: it names the host only, since a presigned
    link's query is a credential."""
    kind = type(reason).__name__
    host = urlsplit(url).netloc or url
    return f"Could not reach {host} ({kind}): check that it is running and that the URL is right."
