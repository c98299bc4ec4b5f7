"""Names cannot escape the workspace and cannot inject (issue 10): experiment names are checked when a recipe
loads and wherever a command takes one; names quoted in reports, spreadsheets and JSON are shown as text;
output into a closed pipe ends quietly."""
import json
import math
import subprocess
import sys

import pytest

from lungkd.core.kd.jobs import FinishedRun
from lungkd.core.kd.report import ExperimentReport, build_report
from lungkd.core.kd.report_pages import html_report, markdown_report
from lungkd.core.models.card import ModelCard
from lungkd.core.recipes import RecipeError, parse_experiment
from lungkd.core.storage import json_text, write_json_atomic
from lungkd.core.text import markdown_text, printable, spreadsheet_cell

BASE = {"data": {"synthetic": {"recordings": 8}}, "teachers": {"arch": "cnn6", "k": 2}}
ESCAPING_NAMES = ["../../x", "/etc/passwd", "", "..", ".", "a/b", "a\\b", "x" * 300, "C:\\x", "-rf", "a\nb",
                  "<b>x</b>"]


def lungkd(*args):
    return subprocess.run([sys.executable, "-m", "lungkd.core.cli", *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("name", ESCAPING_NAMES, ids=repr)
def test_a_name_that_could_leave_the_experiments_folder_is_refused_when_the_recipe_loads(name):
    with pytest.raises(RecipeError) as caught:
        parse_experiment({**BASE, "name": name})
    assert caught.value.problem.message.startswith(f"name = {json.dumps(name)}: names are 1 to 64 letters, digits")
    assert "(they become folder names)" in str(caught.value)


def test_report_reads_only_experiments_of_the_workspace(tmp_path):
    workspace = tmp_path / "ws"
    planted = tmp_path / "outside"
    planted.mkdir()
    (planted / "report.md").write_text("SECRET\n")
    (workspace / "experiments").mkdir(parents=True)
    for name in ("../outside", "../../outside", str(planted), ".."):
        result = lungkd("report", name, "--workspace", workspace)
        assert result.returncode == 2 and "SECRET" not in result.stdout
        assert f"'{name}' is not a valid experiment name" in result.stderr and "Fix: use 1 to 64 letters" in result.stderr
    missing = lungkd("report", "not-there", "--workspace", workspace)
    assert missing.returncode == 2 and "there is no experiment 'not-there'" in missing.stderr


def _report(name: str) -> ExperimentReport:
    """A report built by the engine's own function from plain finished runs, under another name."""
    recipe = parse_experiment({**BASE, "name": "plain", "students": [{"arch": "cnn6", "labels": "mean_2"}]})
    card = ModelCard(architecture="cnn6", seed=1, selected_epoch=3, test={"sp": 80.0, "se": 40.0, "score": 60.0})
    student = FinishedRun(role="student", arch="cnn6", seed=1, labels="mean_2", folder="s", card=card)
    teacher = student.model_copy(update={"role": "teacher", "labels": "hard", "folder": "t"})
    ensembles = {"first_k": [{"k": 1, "sp": 80.0, "se": 40.0, "score": 60.0}], "curated": None}
    report = build_report(recipe, "f00d", [teacher], ensembles, [[student]], None, train_cycles=10, test_cycles=5)
    return report.model_copy(update={"name": name, "teacher_arch": "*cnn6*"})


def test_report_md_and_html_show_quoted_names_as_text():
    # a student without baseline runs of its own (baseline = false, as in the paper recipes) reports too
    assert _report("plain").student_groups[0].baseline_source == "the teachers"
    name = "<img src=x onerror=alert(1)> *bold* | `code` [link](http://x) _x_"
    markdown = markdown_report(_report(name))
    title = markdown.splitlines()[0]
    assert title == ("# LungKD experiment \\<img src=x onerror=alert(1)\\> \\*bold\\* \\| \\`code\\` "
                     "\\[link\\](http://x) \\_x\\_")
    assert "## Teachers (\\*cnn6\\*)" in markdown
    page = html_report(_report(name))
    assert "<h1>LungKD experiment &lt;img src=x onerror=alert(1)&gt; *bold* | `code` [link](http://x) _x_</h1>" in page
    assert page.count("<img") == 0


def test_text_helpers_make_names_safe_for_spreadsheets_terminals_and_markdown():
    assert [spreadsheet_cell(t) for t in ("=1+2", "+1", "-1", "@SUM(A1)", "\tx", "plain", "a=b")] == \
        ["'=1+2", "'+1", "'-1", "'@SUM(A1)", "'\tx", "plain", "a=b"]
    not_utf8 = b"caf\xe9".decode("utf-8", "surrogateescape")
    assert printable(not_utf8) == "caf\ufffd" and printable("café") == "café"
    assert markdown_text("a_b*c") == "a\\_b\\*c"


def test_json_written_or_printed_is_always_valid_json(tmp_path):
    value = {"score": math.nan, "rows": [math.inf, -math.inf, 1.5], "name": "x"}
    assert json.loads(json_text(value)) == {"score": None, "rows": [None, None, 1.5], "name": "x"}
    write_json_atomic(tmp_path / "r.json", value)
    assert "NaN" not in (tmp_path / "r.json").read_text() and "Infinity" not in (tmp_path / "r.json").read_text()


@pytest.mark.parametrize("args", [["models"], ["data", "stats", "{data}", "--json"]], ids=["models", "data stats"])
def test_output_into_a_closed_pipe_ends_quietly(args, synthetic_dir):
    """`lungkd ... | head` closes the pipe early: no traceback, no 'Exception ignored' on exit."""
    command = [sys.executable, "-m", "lungkd.core.cli", *(a.format(data=synthetic_dir) for a in args)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    process.stdout.close()  # the reader is gone before the first line is written
    stderr = process.stderr.read().decode()
    assert process.wait() == 141 and stderr == ""
