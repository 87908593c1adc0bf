"""The documentation stands alone: every relative link and anchor in it resolves inside the repository, and
no file of the repository cites a page that lives outside it."""

from __future__ import annotations

import os
import re
from pathlib import Path

ROOT = Path(__file__).parents[2]
DOCUMENTS = [
    ROOT / "README.md",
    ROOT / "SECURITY.md",
    ROOT / "CONTRIBUTING.md",
    *sorted((ROOT / "docs").glob("*.md")),
]
# Folders nothing of ours lives in: virtualenvs, build outputs, what the tests write, git itself.
NOT_OURS = {
    ".git",
    ".venv",
    ".venv-checkov",
    ".aws-sam",
    ".local",
    "test-artifacts",
    "node_modules",
    "__pycache__",
}
TEXT_SUFFIXES = {
    ".py",
    ".md",
    ".yaml",
    ".yml",
    ".toml",
    ".txt",
    ".mk",
    ".sh",
    ".json",
    ".cfg",
    ".ini",
    ".html",
}
# Split so that this file does not cite them itself.
OUTSIDE = ("sage-x3-" + "api.md", "../" + "shared", "shared/" + "docs", "contract" + ".md")

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
HTML_ANCHOR = re.compile(r"<a\s+(?:id|name)=\"([^\"]+)\"")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`[^`]*`")


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces become hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading anchors on its text
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def _prose(path: Path) -> list[str]:
    """The lines outside fenced code blocks, where a link or a heading means what it says."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    for line in _prose(path):
        found.update(HTML_ANCHOR.findall(line))
        heading = HEADING.match(line)
        if heading:
            base = slug(heading[2])
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(path: Path) -> list[str]:
    return [target for line in _prose(path) for target in LINK.findall(CODE_SPAN.sub("", line))]


def broken_links(path: Path) -> list[str]:
    broken = []
    for target in links(path):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check offline
            continue
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / file_part).resolve() if file_part else path
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target}: no such anchor in {os.path.relpath(linked, path.parent)}")
    return broken


def test_the_checker_knows_githubs_anchors() -> None:
    assert slug("When to raise `RefreshConcurrency`") == "when-to-raise-refreshconcurrency"
    assert slug("How a refresh stays safe") == "how-a-refresh-stays-safe"
    assert slug("Root and folders") == "root-and-folders"
    assert slug("Sage X3: what its documentation says, and what it leaves open") == (
        "sage-x3-what-its-documentation-says-and-what-it-leaves-open"
    )


def test_the_checker_finds_a_broken_link_and_anchor(tmp_path: Path) -> None:
    (tmp_path / "b.md").write_text("# Here\n\n## There\n")
    page = tmp_path / "a.md"
    page.write_text(
        "# A\n\n[ok](b.md#there) [ok](#a) [gone](c.md) [bad](b.md#nowhere) [bad](#nowhere)\n"
        "`[code](nowhere.md)`\n```\n[fenced](nowhere.md)\n```\n[web](https://example.com/x#y)\n"
    )
    assert broken_links(page) == [
        "c.md: no such file",
        "b.md#nowhere: no such anchor in b.md",
        "#nowhere: no such anchor in a.md",
    ]


def test_every_relative_link_and_anchor_in_the_docs_resolves() -> None:
    assert (ROOT / "docs" / "sage-x3.md").is_file()
    broken = {str(path.relative_to(ROOT)): broken_links(path) for path in DOCUMENTS if path.is_file()}
    assert {page: found for page, found in broken.items() if found} == {}


def _our_text_files() -> list[Path]:
    found = []
    for path in ROOT.rglob("*"):
        parts = path.relative_to(ROOT).parts
        if any(part in NOT_OURS for part in parts) or not path.is_file():
            continue
        if path.suffix in TEXT_SUFFIXES or path.name in {"Makefile", "LICENSE"}:
            found.append(path)
    return found


def test_no_file_cites_a_page_outside_the_repository() -> None:
    citing = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in _our_text_files()
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1)
        if any(name in line for name in OUTSIDE)
    ]
    assert citing == []
