"""docs/PAPER.md is the one document the code cites: every cited anchor exists, and nothing cites a document that is
not in the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "docs" / "PAPER.md"
TEXT_SUFFIXES = {".py", ".md", ".ipynb", ".yaml", ".yml", ".toml", ".sh", ".cfg", ".txt"}
SKIP_DIRS = {".git", ".venv", "runs", "__pycache__", ".ipynb_checkpoints", ".pytest_cache", "node_modules"}
CODE_DIRS = ("fl1_core", "notebooks", "tests", "benchmarks", "scripts", "configs", "docs", "data/FORMATS.md",
             "data/WORLD.md", "README.md")

ANCHOR = re.compile(r'^<a id="([a-z0-9-]+)"></a>$', re.MULTILINE)
CITATION = re.compile(r"PAPER\.md#([A-Za-z0-9_-]+)")
# Documents outside the repository that code once cited (built from parts so this file does not match itself).
FOREIGN = re.compile(r"\b" + "SP" + r"EC\b|\b" + "DES" + r"IGN\b")


def _text_files(*tops: Path):
    for top in tops:
        if top.is_file():
            yield top
            continue
        for path in sorted(top.rglob("*")):
            rel = path.relative_to(ROOT).parts
            if any(part in SKIP_DIRS for part in rel) or path.suffix not in TEXT_SUFFIXES or not path.is_file():
                continue
            if path.stat().st_size > 2_000_000:
                continue
            yield path


def _anchors() -> list[str]:
    return ANCHOR.findall(PAPER.read_text(encoding="utf-8"))


def test_anchors_are_unique_each_opens_a_section_and_the_table_lists_them():
    text = PAPER.read_text(encoding="utf-8")
    anchors = _anchors()
    assert len(anchors) == len(set(anchors)), sorted(a for a in anchors if anchors.count(a) > 1)
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = ANCHOR.fullmatch(line)
        if m:
            assert i + 1 < len(lines) and lines[i + 1].startswith("#"), f"anchor {m.group(1)!r} is not before a heading"
    table = set(re.findall(r"^\| \[`([a-z0-9-]+)`\]\(#\1\) \|", text, re.MULTILINE))
    assert table == set(anchors), f"table only: {sorted(table - set(anchors))}, section only: {sorted(set(anchors) - table)}"


def test_paper_gives_the_arxiv_id_and_the_release_repository():
    text = PAPER.read_text(encoding="utf-8")
    assert "2606.05769" in text
    assert "OpenGVLab/Future-L1" in text


def test_every_cited_anchor_exists():
    anchors = set(_anchors())
    cited: dict[str, list[str]] = {}
    for path in _text_files(ROOT):
        for anchor in CITATION.findall(path.read_text(encoding="utf-8", errors="replace")):
            cited.setdefault(anchor, []).append(str(path.relative_to(ROOT)))
    code_citations = sum(f.startswith("fl1_core") for files in cited.values() for f in files)
    assert code_citations >= 50, f"only {code_citations} citations of docs/PAPER.md found in fl1_core"
    missing = {a: sorted(set(files)) for a, files in cited.items() if a not in anchors}
    assert not missing, f"cited anchors that docs/PAPER.md does not define: {missing}"


def test_no_citation_of_a_document_outside_the_repository():
    hits = []
    for path in _text_files(*(ROOT / d for d in CODE_DIRS)):
        for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            if FOREIGN.search(line):
                hits.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()[:100]}")
    assert not hits, "\n".join(hits)
