"""The pages the callback answers with: every value escaped, one fixed sentence per kind of failure, a
whole HTML document each time (the flows that lead to them: tests/component/test_callback.py)."""

from __future__ import annotations

from x3link.pages import FAILURE_SENTENCES, error_page, failure_page, success_page


# ---------------------------------------------------------------------------------------------- pages
def test_success_page_escapes_tenant_and_folders() -> None:
    page = success_page('<b id="t">&co</b>', ["<i>F</i>", "A&B", "'q'"])
    assert "<b id=" not in page and "<i>" not in page
    assert "&lt;b id=&quot;t&quot;&gt;&amp;co&lt;/b&gt;" in page
    assert "<li>&lt;i&gt;F&lt;/i&gt;</li>" in page
    assert "<li>A&amp;B</li>" in page
    assert "<li>&#x27;q&#x27;</li>" in page


def test_success_page_without_folders_says_none() -> None:
    page = success_page("acme", [])
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
    for page in (success_page("acme", ["SEED"]), error_page("no"), failure_page("invalid_state")):
        assert page.lstrip().lower().startswith("<!doctype html>")
        assert page.rstrip().endswith("</html>")
        assert '<meta charset="utf-8">' in page
