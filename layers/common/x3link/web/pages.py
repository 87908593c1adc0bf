"""The small HTML pages a person sees at the end of the Sage X3 consent flow. Every value is escaped.

A failure page says one fixed sentence per kind of failure, never text from Sage or from the request: the
callback is public, and what Sage or a forged callback says goes to the log (at DEBUG, scrubbed) only.
"""

from __future__ import annotations

from html import escape

# The error code of each failure the callback can meet → what the person is told.
FAILURE_SENTENCES = {
    "invalid_callback": "Sage X3 sent your browser back without what the pairing needs.",
    "invalid_state": "This pairing link is unknown, already used or expired.",
    "endpoint_not_allowed": "Sage X3 sent your browser back from a gateway this app does not use.",
    "authorisation_denied": "Access was not granted in Sage X3, so nothing was paired.",
    "exchange_refused": "Sage X3 refused to complete the pairing.",
    "upstream_error": "Sage X3 could not complete the pairing.",
    "upstream_timeout": "Sage X3 did not answer in time.",
    "configuration_error": "This app is not yet set up to pair with Sage X3.",
    "service_unavailable": "The pairing could not be saved.",
    "not_found": "There is no such page.",
    "browser_mismatch": "This pairing was started in another browser: open the pairing link in the "
    "browser where you consent at Sage X3.",
    "identity_mismatch": "This Sage X3 is not the one this app is already paired with, so nothing was "
    "changed. If the app means to move to this Sage X3, it must ask for a replacing pairing link.",
    "pairing_link_invalid": "This pairing link cannot be opened: it is unknown, already used or expired.",
}
UNEXPECTED_FAILURE = "Something went wrong on our side."

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} .ok{{color:#1a7f37}} .fail{{color:#b42318}} li{{margin:.2rem 0}}</style></head>
<body><h1 class="{css}">{title}</h1>{content}</body></html>
"""


def success_page(
    tenant: str, folders: list[str], *, endpoint: str, x3_subject: str | None, x3_issuer: str | None
) -> str:
    """Names the X3 the grant reaches (its `sub`, its gateway's `iss`) and the endpoint in use: an
    administrator whose consent was steered to another X3 (a leaked state) sees it here, at once."""
    items = "".join(f"<li>{escape(folder)}</li>" for folder in folders) or "<li>(none)</li>"
    if x3_subject and x3_issuer:
        x3 = (
            f'<p>The Sage X3 paired is <strong id="x3-subject">{escape(x3_subject)}</strong> '
            f'(issued by <span id="x3-issuer">{escape(x3_issuer)}</span>), reached through '
            f'<span id="endpoint">{escape(endpoint)}</span>.</p>'
        )
    else:
        x3 = (
            "<p>Sage X3 did not say which X3 this is. It is reached through "
            f'<span id="endpoint">{escape(endpoint)}</span>.</p>'
        )
    content = (
        f'<p>Sage X3 is now paired with <strong id="tenant">{escape(tenant)}</strong>.</p>{x3}'
        f'<p>Folders granted:</p><ul id="folders">{items}</ul>'
        "<p>If this is not the Sage X3 you meant to pair, tell the app now: it can delete this pairing."
        "</p><p>You can close this window.</p>"
    )
    return _PAGE.format(title="Pairing complete", css="ok", content=content)


def error_page(message: str) -> str:
    content = f'<p id="message">{escape(message)}</p><p>Ask the app to send you a new pairing link.</p>'
    return _PAGE.format(title="Pairing failed", css="fail", content=content)


def failure_page(code: str) -> str:
    """The page for a failure with this error code: its fixed sentence, whatever the error's message."""
    return error_page(FAILURE_SENTENCES.get(code, UNEXPECTED_FAILURE))
