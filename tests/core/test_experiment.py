"""The KD experiment engine end to end on tiny models and a small synthetic dataset, killed and resumed."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.workspace.catalog import Catalog
from lungkd.core.analysis.review import teachers_for_model
from lungkd.core.kd.experiment import Experiment, ExperimentError, experiment_teacher_models
from lungkd.core.events import read_events
from lungkd.core.recipes import RecipeError, load_experiment, parse_experiment

WORKER = Path(__file__).with_name("experiment_worker.py")
RECIPE = """
name = "{name}"
selection = "best_test"
deterministic = true

[data]
synthetic = {{ recordings = {recordings}, seed = 3, label_noise = 0.1 }}

[teachers]
arch = "cnn6"
size = "tiny"
k = 3

[teachers.train]
epochs = 2
batch_size = 16

[ensembles]
curated_k = 2

[[students]]
arch = "cnn6"
size = "tiny"
labels = "{labels}"
seeds = [1, 2]
baseline = true

[students.train]
epochs = 2
batch_size = 16

[second_generation]
student = 1
"""


def _recipe(tmp_path, name="tiny", labels="mean_3", recordings=16):
    path = tmp_path / f"{name}.toml"
    path.write_text(RECIPE.format(name=name, labels=labels, recordings=recordings))
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted run of the tiny experiment, shared by the assertions below."""
    root = tmp_path_factory.mktemp("kd")
    events = []
    experiment = Experiment(load_experiment(_recipe(root)), root / "ws", on_event=events.append)
    report = experiment.run()
    return experiment, report, events, root


def test_report_has_every_stage_in_the_promised_structure(finished):
    experiment, report, _, _ = finished
    assert report["selection"] == "best_test"
    assert [t["seed"] for t in report["teachers"]] == [1, 2, 3]
    assert all({"seed", "sp", "se", "score"} <= set(t) for t in report["teachers"])
    assert [e["k"] for e in report["ensembles"]] == [1, 2, 3]
    assert all({"k", "sp", "se", "score"} <= set(e) for e in report["ensembles"])
    assert report["ensembles"][0]["score"] == pytest.approx(report["teachers"][0]["score"])  # k=1 is teacher 1
    assert {(s["labels"], s["seed"]) for s in report["students"]} == {("mean_3", 1), ("mean_3", 2), ("hard", 1),
                                                                       ("hard", 2)}
    assert all({"arch", "labels", "seed", "sp", "se", "score"} <= set(s) for s in report["students"])
    group = report["student_groups"][0]
    assert group["gain"] == pytest.approx(group["distilled"]["mean"] - group["baseline"]["mean"])
    assert report["curated"]["k"] == 2 and report["second_generation"]["k"] == 2
    assert json.loads((experiment.folder / "report.json").read_text()) == json.loads(json.dumps(report))
    markdown = (experiment.folder / "report.md").read_text()
    assert "Checkpoint selection: **best_test**" in markdown and "| student | distilled Score" in markdown
    assert "<svg" in (experiment.folder / "report.html").read_text()


def test_every_stage_reported_events_mirrored_to_the_log(finished):
    experiment, _, events, _ = finished
    stages = {(e.stage, e.kind) for e in events}
    for stage in ("teachers", "logits", "ensembles", "students", "second_generation"):
        assert (stage, "started") in stages and (stage, "finished") in stages
    assert ("experiment", "finished") in stages and ("report", "artifact") in stages
    assert any(e.kind == "progress" and e.eta_s is not None for e in events)
    logged = read_events(experiment.folder / "events.jsonl")
    assert [(e.stage, e.kind, e.run) for e in logged if e.kind != "progress"] == \
        [(e.stage, e.kind, e.run) for e in events if e.kind != "progress"]


def test_the_catalog_holds_the_experiment_its_runs_epochs_and_models(finished):
    experiment, report, _, root = finished
    with Catalog.for_workspace(root / "ws") as catalog:
        (row,) = [e for e in catalog.experiments() if e.name == "tiny"]
        assert row.status == "finished" and row.summary["ensemble"]["k"] in (1, 2, 3)
        assert row.summary["students"][0]["gain"] == pytest.approx(report["student_groups"][0]["gain"])
        runs = catalog.runs(row.id)
        assert sorted((r.role, r.seed) for r in runs) == [("baseline", 1), ("baseline", 2), ("student", 1),
                                                          ("student", 2), ("teacher", 1), ("teacher", 2),
                                                          ("teacher", 3)]
        assert all(r.status == "finished" and r.checkpoint.is_dir() for r in runs)
        assert [e.epoch for e in catalog.epochs(runs[0].id)] == [1, 2]
        assert len(catalog.models("cnn6")) == 7
        assert {a.kind for a in catalog.artifacts(row.id)} == {"logits", "report"}
    listing = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "runs", "--workspace", str(root / "ws")],
                             capture_output=True, text=True, check=True).stdout
    assert "tiny" in listing and "finished" in listing


def test_teacher_logits_are_stored_with_ids_and_fingerprint(finished):
    experiment, report, _, _ = finished
    stored = np.load(experiment.folder / "teacher_logits.npz")
    assert stored["train_logits"].shape == (report["train_cycles"], 3, 4)
    assert list(stored["teacher_ids"]) == ["teacher seed 1", "teacher seed 2", "teacher seed 3"]
    assert all(Path(folder, "model", "lungkd.json").exists() for folder in stored["teacher_folders"])
    assert str(stored["data_fingerprint"]) == report["data_fingerprint"]
    ids = list(stored["train_cycle_ids"])
    assert ids == sorted(ids, key=lambda s: (s.split("#")[0], int(s.split("#")[1])))  # dataset order


def test_a_second_run_recomputes_nothing(finished):
    experiment, report, _, root = finished
    events = []
    again = Experiment(experiment.recipe, root / "ws", on_event=events.append).run()
    assert not [e for e in events if e.stage in ("teachers", "students") and e.kind == "metrics"]
    assert sum(e.message == "already trained" for e in events) == 3 + 4
    assert sum(e.stage == "logits" and e.message == "reused" for e in events) == 3
    assert again["students"] == report["students"]


def test_teachers_are_shared_by_experiments_with_the_same_teachers_and_data(finished, tmp_path):
    _, _, _, root = finished
    events = []
    other = load_experiment(_recipe(tmp_path, name="other-students", labels="random_2"))
    Experiment(other, root / "ws", on_event=events.append).run()
    assert sum(e.stage == "teachers" and e.message == "already trained" for e in events) == 3
    assert sum(e.stage == "logits" and e.message == "reused" for e in events) == 3
    assert {e.run for e in events if e.stage == "students" and e.kind == "started"} == {
        "student cnn6 random_2 seed 1", "student cnn6 random_2 seed 2",  # baselines belong to an experiment
        "baseline cnn6 hard seed 1", "baseline cnn6 hard seed 2"}


def test_a_student_leads_to_its_experiments_teachers(finished):
    experiment, report, _, root = finished
    stored = np.load(experiment.folder / "teacher_logits.npz")
    expected = [Path(folder) / "model" for folder in stored["teacher_folders"]]
    assert experiment_teacher_models(experiment.folder) == expected == \
        [experiment.teacher_root / f"seed-{seed}" / "model" for seed in (1, 2, 3)]
    student = experiment.folder / "students" / "cnn6-mean_3-seed-1" / "model"
    assert teachers_for_model(student) == expected
    assert teachers_for_model(expected[0]) == []  # a teacher belongs to no experiment folder


def test_a_changed_recipe_is_refused_with_the_difference(finished, tmp_path):
    experiment, _, _, root = finished
    changed = load_experiment(_recipe(tmp_path, labels="random_3"))
    with pytest.raises(ExperimentError) as caught:
        Experiment(changed, root / "ws").run()
    assert "labels" in str(caught.value) and "'mean_3'" in str(caught.value) and "new name" in str(caught.value)


def test_a_changed_dataset_is_refused(finished, tmp_path):
    experiment, _, _, root = finished
    data = next((root / "ws" / "datasets").iterdir())
    annotation = sorted(data.glob("1*_*_*_*_*.txt"))[-1]
    original = annotation.read_text()
    lines = original.splitlines()
    start, end, crackle, wheeze = lines[0].split("\t")
    annotation.write_text("\n".join([f"{start}\t{end}\t{1 - int(crackle)}\t{wheeze}", *lines[1:]]) + "\n")
    try:
        with pytest.raises(ExperimentError, match="dataset changed"):
            Experiment(experiment.recipe, root / "ws").run()
    finally:
        annotation.write_text(original)


def test_cancel_stops_within_one_step(tmp_path):
    cancel = CancelToken()
    steps = []

    def on_event(event):
        if event.kind == "progress" and event.stage == "teachers":
            steps.append(event.step)
            cancel.cancel()

    with pytest.raises(Cancelled):
        Experiment(load_experiment(_recipe(tmp_path, name="cancelled")), tmp_path / "ws", on_event, cancel).run()
    assert steps == [1]
    log = read_events(tmp_path / "ws" / "experiments" / "cancelled" / "events.jsonl")
    assert log[-1].stage == "experiment" and log[-1].kind == "failed"


def _run_until(command, predicate):
    """Start the worker, SIGKILL it when an event matches, return the events seen."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    seen = []
    for line in process.stdout:
        event = json.loads(line)
        seen.append(event)
        if predicate(event):
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run ended before the kill point"
    return seen


def test_killed_mid_teacher_and_mid_student_resumes_to_the_same_report(finished, tmp_path):
    _, reference, _, _ = finished
    recipe = _recipe(tmp_path)  # the same recipe as the uninterrupted run, in another workspace
    command = [sys.executable, str(WORKER), str(recipe), str(tmp_path / "ws")]
    _run_until(command, lambda e: e["stage"] == "teachers" and e["run"] == "teacher seed 2" and e["kind"] == "metrics")
    second = _run_until(command, lambda e: e["stage"] == "students" and e["kind"] == "metrics")
    assert any(e["message"] == "already trained" and e["run"] == "teacher seed 1" for e in second)
    assert not any(e["kind"] == "metrics" and e["run"] == "teacher seed 2" and e["data"]["epoch"] == 1
                   for e in second)  # teacher 2 resumed from its finished epoch, epoch 1 not retrained
    final = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
    events = [json.loads(line) for line in final]
    assert [e for e in events if e["kind"] == "metrics" and e["stage"] == "teachers"] == []
    report = json.loads((tmp_path / "ws" / "experiments" / "tiny" / "report.json").read_text())
    for key in ("teachers", "ensembles", "students", "second_generation"):
        for ours, theirs in zip(report[key] if isinstance(report[key], list) else [report[key]],
                                reference[key] if isinstance(reference[key], list) else [reference[key]]):
            assert {k: v for k, v in ours.items() if k != "bootstrap"} == \
                {k: v for k, v in theirs.items() if k != "bootstrap"}


def test_recipe_errors_name_the_key_and_the_allowed_values(tmp_path):
    base = {"data": {"synthetic": {"recordings": 8}}, "teachers": {"arch": "cnn6", "k": 2}}
    with pytest.raises(RecipeError, match=r"\[teachers\] arch = 'vgg' is not allowed.*cnn6, resnet18"):
        parse_experiment({**base, "teachers": {"arch": "vgg"}})
    with pytest.raises(RecipeError, match=r"labels = 'mean_5' needs 5 teachers, but \[teachers\] k = 2"):
        parse_experiment({**base, "students": [{"arch": "cnn6", "labels": "mean_5"}]})
    with pytest.raises(RecipeError, match=r"selection = 'best' is not allowed.*best_test, best_val, last"):
        parse_experiment({**base, "selection": "best"})
    with pytest.raises(RecipeError, match=r"\[teachers.train\] sets seed"):
        parse_experiment({**base, "teachers": {"arch": "cnn6", "k": 2, "train": {"seed": 3}}})
    with pytest.raises(RecipeError, match=r"unknown key \[teachers.train\] epoch\b"):
        parse_experiment({**base, "teachers": {"arch": "cnn6", "k": 2, "train": {"epoch": 3}}})
    with pytest.raises(RecipeError, match=r"\[teachers.train\] lr must be a number"):
        parse_experiment({**base, "teachers": {"arch": "cnn6", "k": 2, "train": {"lr": "fast"}}})


def test_every_shipped_recipe_loads():
    recipes = sorted((Path(__file__).resolve().parents[2] / "resources" / "recipes").glob("*.toml"))
    assert recipes
    for path in recipes:
        load_experiment(path)
