"""The documents the project cites are the ones it carries: every `docs/method.md section N` the code, the
recipes and the README cite exists, every link between the documents resolves, every test and benchmark they
name exists, and nothing cites the design notes that stay outside the repository (SPEC, DESIGN.md). The README
stays a front door for users: short, without test counts or one machine's diary, pointing to the rest."""
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


# ---------------------------------------------------------------- one home per fact: the README is a front door

MARKDOWN = [*sorted(ROOT.glob("*.md")), *(p for folder in ("docs", "bench", "packaging")
                                         for p in sorted((ROOT / folder).glob("*.md")))]
README = ROOT / "README.md"


def _anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation other than - and _ dropped, spaces as -."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    headings = re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", path.read_text(), flags=re.DOTALL), re.MULTILINE)
    return {_anchor(heading) for heading in headings}


def test_every_link_between_the_documents_resolves_to_a_file_and_a_heading():
    broken = []
    for path in MARKDOWN:
        for target in re.findall(r"\]\(([^)\s]+)\)", path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            file, _, anchor = target.partition("#")
            linked = (path.parent / file).resolve() if file else path
            if not linked.exists() or (anchor and linked.suffix == ".md" and anchor not in _anchors(linked)):
                broken.append(f"{path.relative_to(ROOT)}: {target}")
    assert broken == []


def test_every_test_the_documents_name_exists():
    named = {(path.relative_to(ROOT), file, test) for path in MARKDOWN
             for file, test in re.findall(r"`(tests/[\w/]+\.py)(?:::(\w+))?`", path.read_text())}
    assert any(test for *_, test in named), "no document names a test"
    missing = [(str(doc), file, test) for doc, file, test in named
               if not (ROOT / file).exists() or (test and f"def {test}(" not in (ROOT / file).read_text())]
    assert missing == []


def test_the_readme_is_a_front_door_that_points_to_the_rest():
    text = README.read_text()
    assert len(text.splitlines()) <= 250
    assert not re.search(r"this (VM|machine)\b", text, re.IGNORECASE), "diary wording belongs in bench/README.md"
    assert not re.search(r"\b\d+ (tests|passed)\b|passed in\b", text), "test counts go stale"
    assert not re.findall(r"\b(?=[0-9a-f]*\d)(?=[0-9a-f]*[a-f])[0-9a-f]{7,40}\b", text), "commit ids: history is git's"
    links = set(re.findall(r"\]\(([^)#]+)", text))
    assert {"CONTRIBUTING.md", "bench/README.md", "docs/studio.md", "docs/reliability.md"} <= links


def test_every_benchmark_the_documents_cite_is_a_module_of_bench():
    cited = {(path.relative_to(ROOT), name) for path in MARKDOWN
             for name in re.findall(r"python3? -m bench\.(\w+)", path.read_text())}
    assert cited, "no document cites a benchmark"
    assert [c for c in cited if not (ROOT / "bench" / f"{c[1]}.py").exists()] == []
    as_files = [path.relative_to(ROOT) for path in MARKDOWN if re.search(r"python3? bench/\w+\.py", path.read_text())]
    assert as_files == [], "benchmarks run as modules: python -m bench.NAME"
