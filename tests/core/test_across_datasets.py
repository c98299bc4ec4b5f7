"""A recipe over two datasets (an ICBHI-layout and an SPRSound-layout synthetic one) trained end to end with tiny
CNN6 models: the report gives each model's Score per dataset and pooled, and its cross-dataset table and
`lungkd evaluate` score the models on an HF_Lung dataset they never trained on."""
import json

import numpy as np
import pytest

from lungkd.core.cli import main
from lungkd.core.data.sources import evaluation_dataset
from lungkd.core.kd.executors import InProcessExecutor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.kd.report import ExperimentReport
from lungkd.core.kd.report_pages import markdown_report
from lungkd.core.models.card import read_model_card
from lungkd.core.recipes import load_experiment
from lungkd.core.workspace.layout import MODEL_FOLDER, REPORT_JSON, REPORT_MARKDOWN, student_run_folder

RECIPE = """
name = "two-datasets"
deterministic = true
selection = "last"

[[data]]
name = "adults"
synthetic = { recordings = 10, seed = 3 }

[[data]]
name = "children"
synthetic = { recordings = 10, seed = 4, layout = "sprsound" }

[[evaluate]]
name = "hf-lung"
synthetic = { recordings = 8, seed = 5, layout = "hf_lung" }

[teachers]
arch = "cnn6"
size = "tiny"
k = 2
together = false

[teachers.train]
epochs = 1
batch_size = 16

[[students]]
arch = "cnn6"
size = "tiny"
labels = "mean_2"
seeds = [1]

[students.train]
epochs = 1
batch_size = 16
"""

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("across")
    (root / "two-datasets.toml").write_text(RECIPE)
    recipe = load_experiment(root / "two-datasets.toml")
    experiment = Experiment(recipe, root / "ws", executor=InProcessExecutor())
    return experiment, experiment.run()


def test_the_report_gives_each_model_s_score_per_dataset_and_pooled(finished):
    experiment, report = finished
    table = report.per_dataset
    assert table.datasets == ["adults", "children"] and table.parts == ["test split", "test split"]
    rows = {row.model: row for row in table.rows}
    assert list(rows) == ["teacher seed 1", "teacher seed 2", "ensemble of the 2 teachers",
                          "student cnn6 mean_2 seed 1"]
    for row in table.rows:
        assert sum(d.cycles for d in row.datasets) == row.pooled.cycles == report.test_cycles
        assert all(d.cycles > 0 for d in row.datasets)
    # pooled is the Score the rest of the report gives
    for teacher in report.teachers:
        assert rows[teacher.name].pooled.score == pytest.approx(teacher.score)
    assert rows["ensemble of the 2 teachers"].pooled.score == pytest.approx(report.ensembles[-1].score)
    assert rows[report.students[0].name].pooled.score == pytest.approx(report.students[0].score)
    text = (experiment.folder / REPORT_MARKDOWN).read_text()
    assert "## Scores per dataset" in text and "| model | adults (test split" in text and "pooled (" in text


def test_the_teacher_logits_carry_each_test_cycle_s_dataset(finished):
    experiment, report = finished
    with np.load(experiment.store.logits_file) as stored:
        datasets, ids = stored["test_datasets"], stored["test_cycle_ids"]
    assert len(datasets) == report.test_cycles and set(datasets) == {"adults", "children"}
    assert all(cycle_id.startswith(f"{dataset}/") for dataset, cycle_id in zip(datasets, ids))


def test_the_cross_dataset_table_scores_every_model_on_a_dataset_never_trained_on(finished):
    experiment, report = finished
    table = report.cross_dataset
    index, part = evaluation_dataset(experiment.recipe.evaluate[0], experiment.store.workspace)
    test_cycles = len(index.cycles("test", need_audio=True))
    assert table.datasets == ["hf-lung"] and table.parts == [part] == ["test split"]
    assert [row.model for row in table.rows] == [row.model for row in report.per_dataset.rows]
    assert all(row.datasets[0].cycles == test_cycles > 0 and row.pooled is None for row in table.rows)
    text = (experiment.folder / REPORT_MARKDOWN).read_text()
    assert "## Cross-dataset: datasets the models never trained on" in text and "hf-lung (test split" in text
    stored = ExperimentReport.read(experiment.folder / REPORT_JSON)
    assert stored.cross_dataset == table and stored.per_dataset == report.per_dataset


def test_lungkd_evaluate_scores_a_student_on_the_unseen_dataset_as_the_table_does(finished, capsys):
    experiment, report = finished
    folder, _ = evaluation_dataset(experiment.recipe.evaluate[0], experiment.store.workspace)
    model = student_run_folder(experiment.folder, "student", "cnn6", "mean_2", 1) / MODEL_FOLDER
    assert main(["evaluate", str(model), str(folder.root), "--json", "--workspace",
                 str(experiment.store.workspace)]) == 0
    result = json.loads(capsys.readouterr().out)
    row = next(r for r in report.cross_dataset.rows if r.model == report.students[0].name)
    assert result["cycles"] == row.datasets[0].cycles and result["score"] == pytest.approx(row.datasets[0].score)
    card = read_model_card(model)  # what the student learnt from: both datasets, pooled
    assert (card.training_data.kind, card.training_data.name) == ("synthetic", "adults + children")
    assert card.test_data.dataset == "adults + children" and card.test_data.cycles == report.test_cycles


def test_a_report_of_one_dataset_has_neither_table(finished):
    _, report = finished
    single = report.model_copy(update={"per_dataset": None, "cross_dataset": None})
    text = markdown_report(single)
    assert "Scores per dataset" not in text and "Cross-dataset" not in text
    legacy = single.to_json()  # the keys a report had before these tables: it reads, and writes, as before
    assert "per_dataset" not in legacy and "cross_dataset" not in legacy
    assert ExperimentReport.model_validate(legacy) == single
