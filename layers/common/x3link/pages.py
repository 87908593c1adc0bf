"""The small HTML pages a person sees at the end of the Sage X3 consent flow. Every value is escaped."""

from __future__ import annotations

from html import escape

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:4rem auto;padding:0 1rem;color:#222}}
h1{{font-size:1.4rem}} .ok{{color:#1a7f37}} .fail{{color:#b42318}} li{{margin:.2rem 0}}</style></head>
<body><h1 class="{css}">{title}</h1>{content}</body></html>
"""


def success_page(tenant: str, folders: list[str]) -> str:
    items = "".join(f"<li>{escape(folder)}</li>" for folder in folders) or "<li>(none)</li>"
    content = (
        f'<p>Sage X3 is now paired with <strong id="tenant">{escape(tenant)}</strong>.</p>'
        f'<p>Folders granted:</p><ul id="folders">{items}</ul><p>You can close this window.</p>'
    )
    return _PAGE.format(title="Pairing complete", css="ok", content=content)


def error_page(message: str) -> str:
    content = f'<p id="message">{escape(message)}</p><p>Ask the app to send you a new pairing link.</p>'
    return _PAGE.format(title="Pairing failed", css="fail", content=content)
