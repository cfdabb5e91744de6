"""The documentation a newcomer walks: README.md and docs/*.md.

Every relative link resolves to a file of the repository (and an ``#anchor`` to a heading
of it), every repository path named in backticks exists, the README stays a README for
users (at most 250 lines), and the layout tree names every sub-package of the package.
Standard library and pytest only: no model, no Snakemake.
"""
from __future__ import annotations

import glob
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").glob("*.md"))
PAGES = [README] + DOCS
PACKAGE = REPO / "workflow" / "swift_study"

MAX_README_LINES = 250
# paths in backticks starting with these are repository paths and must exist
PATH_PREFIXES = ("workflow/", "config/", "docs/", "tests/", "benchmarks/", "models/")

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
CODE_SPAN = re.compile(r"(`+)((?:(?!\n[ \t]*\n).)+?)\1", re.DOTALL)  # may wrap lines, not paragraphs
INLINE_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
REF_DEF = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+.*)?$")
HTML_ID = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) of every line outside fenced code blocks."""
    out, fenced = [], False
    for no, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((no, line))
    return out


def prose(path: Path) -> str:
    """The page with its fenced code blocks blanked out (line numbers kept)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    keep = dict(prose_lines("\n".join(lines)))
    return "\n".join(keep.get(no, "") for no in range(1, len(lines) + 1))


def code_spans(text: str):
    """(offset, content) of every inline code span."""
    for m in CODE_SPAN.finditer(text):
        yield m.start(), m.group(2)


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading: its text
    text = re.sub(r"<[^>]+>", "", text).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor a link may name in ``path`` (duplicates get -1, -2, ... as on GitHub)."""
    seen: dict[str, int] = {}
    out = set()
    for _, line in prose_lines(path.read_text(encoding="utf-8")):
        out.update(HTML_ID.findall(line))
        m = HEADING.match(line)
        if not m:
            continue
        base = slug(m.group(2))
        n = seen.get(base, 0)
        seen[base] = n + 1
        out.add(base if n == 0 else f"{base}-{n}")
    return out


def links(path: Path) -> list[tuple[int, str]]:
    """(line, target) of every inline link, image and reference definition outside code."""
    def blank(m: re.Match) -> str:  # a code span's text is not a link; keep offsets and lines
        return "".join("\n" if c == "\n" else " " for c in m.group(0))

    text = CODE_SPAN.sub(blank, prose(path))
    out = [(line_of(text, m.start()), m.group(1)) for m in INLINE_LINK.finditer(text)]
    for no, line in enumerate(text.splitlines(), 1):
        m = REF_DEF.match(line)
        if m:
            out.append((no, m.group(1)))
    return out


def code_paths(path: Path) -> list[tuple[int, str]]:
    """(line, path) of every backticked repository path (its first word) outside fenced code."""
    text = prose(path)
    out = []
    for start, span in code_spans(text):
        words = span.split()
        if words and words[0].startswith(PATH_PREFIXES):
            out.append((line_of(text, start), words[0].rstrip(".,;:")))
    return out


def rel(path: Path) -> str:
    return str(path.relative_to(REPO))


def test_pages_exist():
    assert README.is_file()
    names = {p.name for p in DOCS}
    assert {"method.md", "data-format.md", "results.md", "layout.md"} <= names, names


def test_readme_is_short():
    n = len(README.read_text(encoding="utf-8").splitlines())
    assert n <= MAX_README_LINES, f"README.md has {n} lines (at most {MAX_README_LINES}: move detail to docs/)"


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_relative_links_resolve(page):
    broken = []
    for no, target in links(page):
        if not target or SCHEME.match(target):  # http:, https:, mailto:: not ours to check
            continue
        file_part, _, anchor = target.partition("#")
        dest = page if not file_part else (page.parent / file_part).resolve()
        if not dest.exists():
            broken.append(f"{rel(page)}:{no}: {target} (no such file)")
            continue
        try:
            dest.relative_to(REPO)
        except ValueError:
            broken.append(f"{rel(page)}:{no}: {target} (outside the repository)")
            continue
        if anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            broken.append(f"{rel(page)}:{no}: {target} (no heading #{anchor} in {rel(dest)})")
    assert not broken, "broken links:\n" + "\n".join(broken)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_backticked_paths_exist(page):
    missing = []
    for no, p in code_paths(page):
        if any(c in p for c in "<>{}"):  # a placeholder such as workflow/<x>
            continue
        if not glob.glob(str(REPO / p)):
            missing.append(f"{rel(page)}:{no}: `{p}`")
    assert not missing, "paths named in backticks that do not exist:\n" + "\n".join(missing)


def layout_tree(page: Path) -> list[str]:
    """The lines of the first fenced block after the page's "Layout" heading."""
    lines = page.read_text(encoding="utf-8").splitlines()
    start = next(i for i, l in enumerate(lines) if re.match(r"^#{1,2}\s+Layout\s*$", l))
    open_ = next(i for i in range(start, len(lines)) if FENCE.match(lines[i]))
    close = next(i for i in range(open_ + 1, len(lines)) if FENCE.match(lines[i]))
    return lines[open_ + 1:close]


@pytest.mark.parametrize("page", [README, REPO / "docs" / "layout.md"], ids=rel)
def test_layout_names_every_subpackage(page):
    tree = layout_tree(page)
    listed = [m.group(1) for l in tree if (m := re.match(r"^  (\w+)/\s", l))]
    subpackages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    assert sorted(listed) == subpackages, f"{rel(page)} layout lists {listed}, the package has {subpackages}"
    # and every top-level entry of the tree exists
    for l in tree:
        m = re.match(r"^(\S+)\s", l)
        if m:
            assert glob.glob(str(REPO / m.group(1))), f"{rel(page)} layout names {m.group(1)}, which is missing"


def test_readme_and_layout_page_share_the_tree():
    assert layout_tree(README) == layout_tree(REPO / "docs" / "layout.md")


def test_slug_matches_github():
    assert slug("What varies, and what must not") == "what-varies-and-what-must-not"
    assert slug("Strategy-level LDS (`snakemake --cores all lds`)") == "strategy-level-lds-snakemake---cores-all-lds"
    assert slug("Is the swift study worth it? (baselines)") == "is-the-swift-study-worth-it-baselines"
