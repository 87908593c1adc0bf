"""The HTML the X3 user's browser sees: the consent page, the auto-submitted callback, notices.

Why: a real browser (headless Chromium in the e2e tests) walks the pairing exactly as an X3 user would;
every value is HTML-escaped because all of them come from the app's query string.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

DECISION_PATH = "/v1/token/authorise/decision"

_STYLE = (
    "body{font-family:sans-serif;max-width:40rem;margin:2rem auto;}"
    ".error{color:#b00020;} dt{font-weight:bold;} fieldset{margin:1rem 0;}"
)


def _document(title: str, body: str) -> str:
    return (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )


def consent_page(
    *,
    request_id: str,
    client_id: str,
    scope: str,
    customer_url: str,
    folders: Iterable[str],
    checked: Iterable[str] = (),
    error: str | None = None,
) -> str:
    """The "pending application approval" page: one checkbox per folder, Accept and Reject."""
    ticked = set(checked)
    boxes = "\n".join(
        f'<div><input type="checkbox" name="folder" value="{escape(name)}" id="folder-{index}"'
        f"{' checked' if name in ticked else ''}>"
        f' <label for="folder-{index}">{escape(name)}</label></div>'
        for index, name in enumerate(folders)
    )
    notice = f'<p class="error" role="alert">{escape(error)}</p>\n' if error else ""
    body = (
        "<h1>Pending application approval</h1>\n"
        f"{notice}"
        "<p>An application asks to access this Sage X3 cloud configuration.</p>\n"
        "<dl>\n"
        f'<dt>Application</dt><dd id="client-id">{escape(client_id)}</dd>\n'
        f'<dt>Scope</dt><dd id="scope">{escape(scope)}</dd>\n'
        f'<dt>Customer</dt><dd id="customer">{escape(customer_url)}</dd>\n'
        "</dl>\n"
        f'<form method="post" action="{DECISION_PATH}">\n'
        f'<input type="hidden" name="request_id" value="{escape(request_id)}">\n'
        f"<fieldset><legend>Folders the application may access</legend>\n{boxes}\n</fieldset>\n"
        '<button type="submit" name="decision" value="accept">Accept</button>\n'
        '<button type="submit" name="decision" value="reject">Reject</button>\n'
        "</form>"
    )
    return _document("Pending application approval", body)


def callback_page(redirect_uri: str, params: Mapping[str, str]) -> str:
    """A form POSTing `params` to the app's redirect URI, submitted on load (a button without JS)."""
    fields = "\n".join(
        f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'
        for name, value in params.items()
    )
    body = (
        "<h1>Returning to the application</h1>\n"
        f'<form method="post" action="{escape(redirect_uri)}">\n{fields}\n'
        '<button type="submit">Continue</button>\n</form>\n'
        '<script>window.addEventListener("load", function () { document.forms[0].submit(); });</script>'
    )
    return _document("Returning to the application", body)


def notice_page(title: str, message: str) -> str:
    """A plain page for dead ends (expired or unknown pairing request)."""
    return _document(title, f'<h1>{escape(title)}</h1>\n<p class="error">{escape(message)}</p>')
