"""The README is a user's document: at most 12 KiB (12,288 bytes), its first commands are the Makefile's two targets, and
every relative link in it (and in docs/) points at a file of this repository."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\]\(([^)\s]+)\)")
DOCS = [
    "README.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")),
]


def missing_links(path: Path) -> list[str]:
    """Targets of the relative Markdown links `[text](target)` in `path` that do not exist (URLs and in-page
    anchors are skipped)."""
    targets = [t.split("#")[0] for t in LINK.findall(path.read_text()) if not re.match(r"[a-z]+:|#", t)]
    return [t for t in targets if not (path.parent / t).exists()]


def test_missing_links_finds_only_the_missing_file(tmp_path: Path) -> None:
    (tmp_path / "here.md").write_text("x")
    doc = tmp_path / "doc.md"
    doc.write_text("[a](missing.md) [b](https://example.org/x) [c](#anchor) [d](here.md#part) [e](sub/gone.txt)")
    assert missing_links(doc) == ["missing.md", "sub/gone.txt"]


def test_readme_size() -> None:
    assert (ROOT / "README.md").stat().st_size <= 12_288


def test_readme_opens_with_make_demo_and_make_test() -> None:
    text = (ROOT / "README.md").read_text()
    start = text.index("```bash")
    first_block = text[start : text.index("```", start + 3)].splitlines()[1:3]
    assert [line.split()[:2] for line in first_block] == [
        ["make", "demo"],
        ["make", "test"],
    ]
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.MULTILINE) and re.search(r"^test:", makefile, re.MULTILINE)


@pytest.mark.parametrize("doc", DOCS)
def test_relative_links_exist(doc: str) -> None:
    assert missing_links(ROOT / doc) == []
