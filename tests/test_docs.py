"""The documents the project cites are the ones it carries: every `docs/method.md section N` the code, the
recipes and the README cite exists, every docs/ link of the README resolves, and nothing cites the design
notes that stay outside the repository (SPEC, DESIGN.md)."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CITING = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")),
          *(p for folder in ("core", "app", "resources", "bench", "tests") for p in sorted((ROOT / folder).rglob("*"))
            if p.suffix in (".py", ".toml", ".md") and p.name != "test_docs.py")]


def _texts():
    return {path: path.read_text(encoding="utf-8") for path in CITING}


def test_every_cited_section_of_the_method_exists():
    sections = set(re.findall(r"^## (\d+)\. ", (ROOT / "docs" / "method.md").read_text(), re.MULTILINE))
    cited = {(path.relative_to(ROOT), number) for path, text in _texts().items()
             for number in re.findall(r"docs/method\.md\)? section (\d+)", text)}
    assert cited, "nothing cites docs/method.md"
    assert {number for _, number in cited} <= sections, sorted(c for c in cited if c[1] not in sections)


def test_the_readme_links_documents_that_exist():
    links = re.findall(r"\]\((docs/[^)#]+)\)", (ROOT / "README.md").read_text())
    assert {"docs/method.md", "docs/design.md", "docs/recipes.md"} <= set(links)
    assert [link for link in links if not (ROOT / link).exists()] == []


def test_nothing_cites_notes_the_repository_does_not_carry():
    stale = {path.relative_to(ROOT) for path, text in _texts().items() if re.search(r"\bSPEC section|DESIGN\.md", text)}
    assert stale == set()
