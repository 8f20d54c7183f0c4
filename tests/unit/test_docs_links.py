"""Every relative link and every repository path cited in README.md and docs/*.md exists.

A link is ``[text](target)``: its file must exist, and its ``#anchor``, if any, must be a heading
of that page (GitHub's slugs). A cited path is a backticked ``src/...``, ``tests/...`` (any top-level
folder of the repository) without placeholders (``<stage>``, ``*``, ``{a,b}``).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
TOP_LEVEL = ("src", "tests", "docs", "infra", "functions", "benchmarks", "scripts", "requirements", ".ci")
# Created by the setup scripts, not committed: cited because the prerequisites name what they install.
GENERATED = {"infra/checks/node_modules", "infra/checks/node_modules/"}

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
CODE_SPAN = re.compile(r"`([^`\n]+)`")
FENCE = re.compile(r"^```.*?^```", re.MULTILINE | re.DOTALL)
HEADING = re.compile(r"^#{1,6} +(.+?) *$", re.MULTILINE)


def prose(page: Path) -> str:
    """The page without its fenced code blocks (shell sessions and diagrams cite no files)."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation but `-` and `_` dropped, each space a hyphen."""
    text = re.sub(r"[`*]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {slug(h) for h in HEADING.findall(prose(page))}


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page)) if not re.match(r"[a-z]+:", t)]


def cited_paths(page: Path) -> list[str]:
    spans = (s.strip() for s in CODE_SPAN.findall(prose(page)))
    return [s for s in spans if s.split("/", 1)[0] in TOP_LEVEL and "/" in s and not re.search(r"[<>*{}\s…]|\.\.\.", s)]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        if not file.exists():
            broken.append(f"{target}: no such file")
        elif anchor and file.suffix == ".md" and anchor not in anchors(file):
            broken.append(f"{target}: no heading #{anchor} in {file.relative_to(REPO)}")
    assert broken == []


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_every_cited_repository_path_exists(page: Path) -> None:
    assert [p for p in cited_paths(page) if p not in GENERATED and not (REPO / p).exists()] == []


def test_the_checks_see_links_and_paths() -> None:
    """The patterns find what the pages hold (a regex that matches nothing would pass everything)."""
    assert "docs/configuration.md" in relative_links(REPO / "README.md")
    assert "src/spotify_pipeline/config.py" in cited_paths(REPO / "docs" / "configuration.md")
    assert slug("The run request (Pub/Sub message → extract)") == "the-run-request-pubsub-message--extract"
    assert slug("Sizing (Terraform `function_sizing`)") == "sizing-terraform-function_sizing"
