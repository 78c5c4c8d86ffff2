"""Every relative link in the repository's Markdown resolves: its file exists and its #anchor is a heading there.

Anchors follow GitHub's rules: the heading's text without Markdown (code spans keep their text, links their label),
lower-cased, every character that is not a letter, digit, space, hyphen or underscore dropped, spaces turned into
hyphens; a repeated anchor gets -1, -2, ... Links inside code (fenced blocks, `spans`) are not links.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import unquote

import pytest

ROOT = Path(__file__).resolve().parents[1]
SKIPPED_DIRS = {"build", "node_modules", "__pycache__"}

_FENCE = re.compile(r"^\s{0,3}(```|~~~)")
_HEADING = re.compile(r"^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+)(.+?)\1")
_LINK = re.compile(r"!?\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*<?([^)\s>]*)>?(?:\s+\"[^\"]*\")?\s*\)")
_EXTERNAL = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")  # https:, mailto:, ...


def markdown_files(root: Path = ROOT) -> list[Path]:
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS
                         and not d.endswith(".egg-info"))
        found += [Path(folder) / name for name in sorted(files) if name.endswith(".md")]
    return found


def _prose_lines(text: str):
    """(line number, line) outside fenced code blocks."""
    fence = None
    for number, line in enumerate(text.splitlines(), 1):
        match = _FENCE.match(line)
        if match:
            if fence is None:
                fence = match.group(1)
            elif match.group(1) == fence:
                fence = None
            continue
        if fence is None:
            yield number, line


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (without the leading #s)."""
    text = _CODE_SPAN.sub(lambda m: m.group(2).strip(), heading)
    text = _LINK.sub(lambda m: m.group(1), text)
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML
    text = text.strip().lower()
    text = "".join(c for c in text if c.isalnum() or c in " -_")
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    for _number, line in _prose_lines(text):
        match = _HEADING.match(line)
        if not match:
            continue
        base = slug(match.group(2))
        count = seen.get(base, 0)
        seen[base] = count + 1
        result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(text: str):
    """(line number, target) of every Markdown link outside code."""
    for number, line in _prose_lines(text):
        prose = _CODE_SPAN.sub(lambda m: " " * len(m.group(0)), line)
        for match in _LINK.finditer(prose):
            yield number, match.group(2)


def broken_links(path: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, target in links(path.read_text(encoding="utf-8")):
        if not target or _EXTERNAL.match(target):
            continue
        file_part, _, anchor = target.partition("#")
        where = f"{path.relative_to(root)}:{number}: {target}"
        destination = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not destination.exists():
            problems.append(f"{where}: no such file")
            continue
        if root not in destination.parents and destination != root:
            problems.append(f"{where}: outside the repository")
            continue
        if anchor:
            if destination.suffix != ".md" or not destination.is_file():
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif unquote(anchor) not in anchors(destination.read_text(encoding="utf-8")):
                problems.append(f"{where}: no heading with anchor #{anchor} in {destination.relative_to(root)}")
    return problems


def test_the_docs_exist():
    names = {p.relative_to(ROOT).as_posix() for p in markdown_files()}
    assert {"README.md", "docs/aws.md", "docs/azure.md", "docs/training.md", "docs/testing.md"} <= names


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(path):
    problems = broken_links(path)
    assert not problems, "broken links:\n" + "\n".join(problems)


# --- the checker itself ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("heading, expected", [
    ("What `pulumi up --stack aws` creates", "what-pulumi-up---stack-aws-creates"),
    ("Is this host able to train? `deepracer doctor`", "is-this-host-able-to-train-deepracer-doctor"),
    ("Settings (`Pulumi.azure.yaml`)", "settings-pulumiazureyaml"),
    ("Train (on the host)", "train-on-the-host"),
    ("See [the docs](docs/aws.md) now", "see-the-docs-now"),
    ("Überblick & Kosten", "überblick--kosten"),
])
def test_slug_follows_githubs_rules(heading, expected):
    assert slug(heading) == expected


def test_repeated_headings_are_numbered():
    assert anchors("# A\n## A\n### A\n```\n# A\n```\n") == {"a", "a-1", "a-2"}


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "page.md").write_text("# Page\n\n## A `code` heading\n")
    (tmp_path / "README.md").write_text(
        "# Top\n\n"
        "[ok](docs/page.md) [ok](docs/page.md#a-code-heading) [ok](#top) [ok](https://example.com/#nothing)\n"
        "`[in code](missing.md)`\n```\n[in a block](missing.md)\n```\n"
        "[gone](docs/missing.md) [bad anchor](docs/page.md#a-heading) [bad here](#bottom)\n")
    problems = broken_links(tmp_path / "README.md", tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "docs/missing.md: no such file",
        "docs/page.md#a-heading: no heading with anchor #a-heading in docs/page.md",
        "#bottom: no heading with anchor #bottom in README.md",
    ]
