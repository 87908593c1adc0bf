"""The pages the callback answers with: every value escaped, one fixed sentence per kind of failure, a
whole HTML document each time (the flows that lead to them: tests/component/test_callback.py)."""

from __future__ import annotations

from typing import Any

from x3link.web.pages import FAILURE_SENTENCES, error_page, failure_page, success_page

# The X3 a pairing reached, as the callback hands it to the page.
X3: dict[str, Any] = {
    "endpoint": "https://api.eu-prod-sagex3.com/v1",
    "x3_subject": "8f14e45f-ceea-467a-9a36-dedd4bea2543",
    "x3_issuer": "api.eu-prod-sagex3.com",
}


# ---------------------------------------------------------------------------------------------- pages
def test_success_page_names_the_x3_paired_and_the_gateway_in_use() -> None:
    """A consent steered to another X3 (a leaked state) shows here, at once, to the admin who consented."""
    page = success_page("acme", ["SEED"], **X3)
    assert '<strong id="x3-subject">8f14e45f-ceea-467a-9a36-dedd4bea2543</strong>' in page
    assert '<span id="x3-issuer">api.eu-prod-sagex3.com</span>' in page
    assert '<span id="endpoint">https://api.eu-prod-sagex3.com/v1</span>' in page
    assert "If this is not the Sage X3 you meant to pair" in page


def test_success_page_escapes_the_x3_it_names() -> None:
    page = success_page(
        "acme", [], endpoint="https://x?a=1&b=<i>", x3_subject="<script>x</script>", x3_issuer='"iss"'
    )
    assert "<script>" not in page and "<i>" not in page
    assert '<strong id="x3-subject">&lt;script&gt;x&lt;/script&gt;</strong>' in page
    assert '<span id="x3-issuer">&quot;iss&quot;</span>' in page
    assert '<span id="endpoint">https://x?a=1&amp;b=&lt;i&gt;</span>' in page


def test_success_page_says_so_when_sage_named_no_x3() -> None:
    page = success_page(
        "acme", [], endpoint="https://api.eu-prod-sagex3.com/v1", x3_subject=None, x3_issuer=None
    )
    assert "Sage X3 did not say which X3 this is" in page
    assert 'id="x3-subject"' not in page
    assert '<span id="endpoint">https://api.eu-prod-sagex3.com/v1</span>' in page


def test_success_page_escapes_tenant_and_folders() -> None:
    page = success_page('<b id="t">&co</b>', ["<i>F</i>", "A&B", "'q'"], **X3)
    assert "<b id=" not in page and "<i>" not in page
    assert "&lt;b id=&quot;t&quot;&gt;&amp;co&lt;/b&gt;" in page
    assert "<li>&lt;i&gt;F&lt;/i&gt;</li>" in page
    assert "<li>A&amp;B</li>" in page
    assert "<li>&#x27;q&#x27;</li>" in page


def test_success_page_without_folders_says_none() -> None:
    page = success_page("acme", [], **X3)
    assert "<li>(none)</li>" in page
    assert '<strong id="tenant">acme</strong>' in page


def test_error_page_escapes_the_message() -> None:
    page = error_page('"><script>alert(1)</script>')
    assert "<script>" not in page
    assert "&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "Pairing failed" in page


def test_failure_pages_say_a_fixed_sentence_per_kind_of_failure() -> None:
    assert len(set(FAILURE_SENTENCES.values())) == len(FAILURE_SENTENCES)
    for code, sentence in FAILURE_SENTENCES.items():
        assert f'<p id="message">{sentence}</p>' in failure_page(code)
    assert '<p id="message">Something went wrong on our side.</p>' in failure_page("no_such_kind")


def test_pages_are_complete_html_documents() -> None:
    for page in (success_page("acme", ["SEED"], **X3), error_page("no"), failure_page("invalid_state")):
        assert page.lstrip().lower().startswith("<!doctype html>")
        assert page.rstrip().endswith("</html>")
        assert '<meta charset="utf-8">' in page
