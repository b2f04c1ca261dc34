"""Reading Markdown files in tests: anchors (GitHub's heading slugs) and relative links."""

from __future__ import annotations

import re
from pathlib import Path

LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def markdown_anchors(text: str) -> set[str]:
    """Explicit ``<a id|name="...">`` anchors and the GitHub slugs of the headings."""
    anchors = set(re.findall(r"<a\s+(?:id|name)=\"([^\"]+)\"", text))
    seen: dict[str, int] = {}
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
        match = None if in_code else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            slug = re.sub(r"[^\w\- ]", "", re.sub(r"<[^>]+>", "", match.group(1)).lower()).replace(" ", "-")
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def links(text: str) -> list[str]:
    """The targets of the inline links of ``text`` outside code blocks and code spans."""
    out: list[str] = []
    in_code = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_code = not in_code
            continue
        if not in_code:
            out += LINK.findall(re.sub(r"`[^`]*`", "", line))
    return out


def broken_links(root: Path, doc: Path) -> list[str]:
    """Relative links of ``doc`` whose file (or heading anchor) does not exist, or that leave ``root``."""
    problems = []
    for target in links(doc.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        file = (doc.parent / path).resolve() if path else doc.resolve()
        where = f"{doc.relative_to(root)}: {target}"
        if not file.is_relative_to(root.resolve()):
            problems.append(f"{where} leaves the repository")
        elif not file.exists():
            problems.append(f"{where} does not exist")
        elif anchor and file.suffix == ".md" and anchor not in markdown_anchors(file.read_text()):
            problems.append(f"{where} has no such heading")
    return problems
