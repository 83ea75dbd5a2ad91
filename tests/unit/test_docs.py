"""The documentation (README.md and docs/*.md) holds together: every relative link and #anchor
resolves, every page starts with a table of contents, the README links every page and lists every
command, and the code paths the pages name exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
DOCS = REPO / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_CODE = re.compile(r"`[^`]*`")
LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE = re.compile(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
CODE_PATH = re.compile(r"`((?:streams|tests|deploy|schemas|docs)/[\w./-]*)(?:::(\w+))?`")
CODE_MODULE = re.compile(r"`(streams(?:\.\w+)+)`")


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
        elif not fenced:
            lines.append(line)
    return lines


def github_anchor(heading: str) -> str:
    """GitHub's fragment for a heading: lower case, punctuation other than '-' and '_' dropped,
    spaces to '-' (inline code and link markup contribute their text only)."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)
    text = text.replace("`", "").strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def headings(path: Path) -> list[tuple[int, str]]:
    """(level, anchor) of every heading, repeated anchors numbered the way GitHub does (-1, -2)."""
    found, seen = [], {}
    for line in prose_lines(path.read_text()):
        match = HEADING.match(line)
        if match:
            anchor = github_anchor(match.group(2))
            count = seen.get(anchor, 0)
            seen[anchor] = count + 1
            found.append((len(match.group(1)), f"{anchor}-{count}" if count else anchor))
    return found


def links(path: Path) -> list[str]:
    """Every link target in the page's prose (inline links, images and reference definitions)."""
    targets = []
    for line in prose_lines(path.read_text()):
        reference = REFERENCE.match(line)
        if reference:
            targets.append(reference.group(1))
        targets.extend(LINK.findall(INLINE_CODE.sub("", line)))
    return targets


def is_external(target: str) -> bool:
    return re.match(r"^[a-z][a-z0-9+.-]*:", target) is not None


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_and_anchor_resolves(page: Path) -> None:
    broken = []
    for target in links(page):
        if is_external(target):
            continue
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
            continue
        if anchor:
            if linked.suffix != ".md":
                broken.append(f"{target}: an anchor into a file that is not Markdown")
            elif anchor not in {a for _, a in headings(linked)}:
                broken.append(f"{target}: no heading with that anchor in {linked.relative_to(REPO)}")
    assert not broken, f"{page.relative_to(REPO)}: broken links: " + "; ".join(broken)


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_page_starts_with_a_table_of_contents(page: Path) -> None:
    text = page.read_text()
    lines = prose_lines(text)
    first_section = next(i for i, line in enumerate(lines) if line.startswith("## "))
    toc = {target[1:] for target in LINK.findall("\n".join(lines[:first_section])) if target.startswith("#")}
    sections = {anchor for level, anchor in headings(page) if level == 2}
    assert text.startswith("# ") and sections <= toc, f"sections missing from the contents: {sections - toc}"


def test_the_readme_links_every_page() -> None:
    linked = {(REPO / target.partition("#")[0]).resolve() for target in links(README) if not is_external(target)}
    pages = set(DOCS.glob("*.md"))
    assert pages - linked == set(), "pages the README does not link"


def test_the_readme_and_the_commands_page_cover_every_command() -> None:
    from streams.cli import main

    commands = {name for name, command in main.commands.items() if not command.hidden}
    readme = README.read_text()
    sections = {anchor for level, anchor in headings(DOCS / "commands.md") if level == 2}
    assert {c for c in commands if f"- `streams {c}" not in readme} == set(), "commands missing from the README"
    assert {c for c in commands if f"streams-{c}" not in sections} == set(), "commands without a section"


def test_the_readme_starts_with_the_two_set_up_commands() -> None:
    first_block = README.read_text().split("```")[1]
    assert first_block.splitlines()[1:] == [
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[local]' && .venv/bin/streams demo",
        "python3 -m venv .venv && .venv/bin/pip install -q -e '.[test]' && .venv/bin/pytest",
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_code_the_pages_name_exists(page: Path) -> None:
    """`streams/...` paths (with `::test_name`), and `streams.module.name` references."""
    missing = []
    for line in prose_lines(page.read_text()):
        for path, name in CODE_PATH.findall(line):
            target = REPO / path
            if not target.exists():
                missing.append(path)
            elif name and not re.search(rf"\bdef {name}\b", target.read_text()):
                missing.append(f"{path}::{name}")
        for dotted in CODE_MODULE.findall(line):
            parts = dotted.split(".")
            for cut in range(len(parts), 0, -1):
                base = REPO.joinpath(*parts[:cut])
                module = base.with_suffix(".py") if base.with_suffix(".py").exists() else base / "__init__.py"
                if module.exists():
                    break
            else:
                missing.append(dotted)
                continue
            if cut < len(parts) and not re.search(rf"^(?:class |def |async def )?{parts[cut]}\b", module.read_text(), re.M):
                missing.append(dotted)
    assert not missing, f"{page.relative_to(REPO)} names code that does not exist: " + ", ".join(missing)
