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
from lungkd.core.events import read_events
from lungkd.core.kd.executors import InProcessExecutor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.kd.jobs import ExperimentError
from lungkd.core.kd.store import experiment_teacher_models, teachers_for_model
from lungkd.core.models.inventory import find_models
from lungkd.core.recipes import load_experiment
from lungkd.core.workspace.catalog import Catalog
from lungkd.core.workspace.layout import TEACHER_LOGITS_FILE
from tiny_recipe import tiny_recipe

pytestmark = pytest.mark.slow  # every test here trains, or shares the module's finished experiment
WORKER = Path(__file__).with_name("experiment_worker.py")
@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One uninterrupted run of the tiny experiment, shared by the assertions below."""
    root = tmp_path_factory.mktemp("kd")
    events = []
    experiment = Experiment(load_experiment(tiny_recipe(root)), root / "ws", on_event=events.append,
                            executor=InProcessExecutor())
    report = experiment.run().to_json()  # what report.json holds: the promised structure
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
    # the model picker's inventory finds the model folders the catalog lists: five, since each baseline is the
    # teacher of its seed (the same model, recipe and seed on the same data)
    assert sorted(m.path for m in find_models(root / "ws")) == sorted({r.checkpoint for r in runs})
    checkpoint = {(r.role, r.seed): r.checkpoint for r in runs}
    assert checkpoint["baseline", 1] == checkpoint["teacher", 1] and checkpoint["baseline", 2] == checkpoint[
        "teacher", 2]
    listing = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "runs", "--workspace", str(root / "ws")],
                             capture_output=True, text=True, check=True).stdout
    assert "tiny" in listing and "finished" in listing
    epochs = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "runs", "tiny", "--epochs", "--workspace",
                             str(root / "ws")], capture_output=True, text=True, check=True).stdout.splitlines()
    assert sum(line.startswith(("teacher ", "student ", "baseline ")) for line in epochs) == len(runs)
    assert sum(line.lstrip().startswith("epoch ") for line in epochs) == 2 * 5  # two epochs of each trained run


def test_a_baseline_identical_to_a_teacher_is_reused_not_retrained(finished):
    experiment, report, events, _ = finished
    baselines = [e for e in events if e.stage == "students" and (e.run or "").startswith("baseline")]
    assert {(e.kind, e.message) for e in baselines} == {("finished", "already trained")}
    teachers = {t["seed"]: t for t in report["teachers"]}
    for row in (s for s in report["students"] if s["role"] == "baseline"):
        assert (row["labels"], row["score"], row["epoch"]) == ("hard", teachers[row["seed"]]["score"],
                                                               teachers[row["seed"]]["epoch"])
    assert not (experiment.folder / "baselines").exists()


def test_the_time_left_covers_the_whole_experiment(finished):
    _, _, events, _ = finished
    clock = [e for e in events if e.stage == "experiment" and e.kind == "progress"]
    assert clock and {e.total for e in clock} == {5}  # 3 teachers and 2 students; the baselines train nothing
    assert [e.step for e in clock] == sorted(e.step for e in clock) and all(e.eta_s >= 0 for e in clock)
    first_run = next(e for e in events if e.kind == "progress" and e.stage == "teachers")
    first_clock = next(e for e in clock if e.time >= first_run.time)
    assert first_clock.eta_s > first_run.eta_s  # more than the teacher in training: the runs after it too


def test_run_ends_with_the_headline_and_the_report(finished):
    experiment, report, _, root = finished
    recipe = root / "tiny.toml"  # written by the fixture; the same command again recomputes nothing
    result = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "run", str(recipe), "--workspace",
                             str(root / "ws")], capture_output=True, text=True, check=True)
    lines = result.stdout.splitlines()
    start = lines.index(f"Result of tiny (best_test, {report['test_cycles']} test cycles):")
    headline = lines[start + 1:]
    best = max(report["teachers"], key=lambda t: t["score"])
    assert headline[0].startswith(f"  best teacher: seed {best['seed']}, Score {best['score']:.2f}")
    assert headline[1].startswith("  best ensemble: the first ")
    group = report["student_groups"][0]
    assert headline[2].startswith(f"  student cnn6 (mean_3): Score {group['distilled']['mean']:.2f} ± ")
    assert f"gain {group['gain']:+.2f}" in headline[2]
    assert lines[-1] == f"report: {experiment.folder / 'report.md'} (and report.html beside it)"
    assert "{" not in result.stdout  # sentences, not raw events


def test_teacher_logits_are_stored_with_ids_and_fingerprint(finished):
    experiment, report, _, _ = finished
    stored = np.load(experiment.folder / "teacher_logits.npz")
    assert stored["train_logits"].shape == (report["train_cycles"], 3, 4)
    assert list(stored["teacher_ids"]) == ["teacher seed 1", "teacher seed 2", "teacher seed 3"]
    assert all(Path(folder, "model", "lungkd.json").exists() for folder in stored["teacher_folders"])
    assert str(stored["data_fingerprint"]) == report["data_fingerprint"]
    ids = list(stored["train_cycle_ids"])
    assert ids == sorted(ids, key=lambda s: (s.split("#")[0], int(s.split("#")[1])))  # dataset order


def _teacher_logit_files(experiment) -> dict:
    stored = np.load(experiment.folder / "teacher_logits.npz")
    return {folder: Path(folder, TEACHER_LOGITS_FILE).stat().st_mtime_ns for folder in stored["teacher_folders"]}


def test_a_second_run_recomputes_nothing(finished):
    experiment, report, _, root = finished
    logits_before = _teacher_logit_files(experiment)
    events = []
    again = Experiment(experiment.recipe, root / "ws", on_event=events.append, executor=InProcessExecutor()).run()
    assert not [e for e in events if e.stage in ("teachers", "students") and e.run and e.kind in ("metrics", "started")]
    assert sum(e.message == "already trained" for e in events) == 3 + 4
    assert _teacher_logit_files(experiment) == logits_before  # each teacher's logits were computed once
    assert again.to_json()["students"] == report["students"]


def test_teachers_are_shared_by_experiments_with_the_same_teachers_and_data(finished, tmp_path):
    _, _, _, root = finished
    events = []
    other = load_experiment(tiny_recipe(tmp_path, name="other-students", labels="random_2"))
    Experiment(other, root / "ws", on_event=events.append, executor=InProcessExecutor()).run()
    assert sum(e.stage == "teachers" and e.message == "already trained" for e in events) == 3
    assert not [e for e in events if e.stage == "teachers" and e.run and e.kind == "started"]
    assert {e.run for e in events if e.stage == "students" and e.kind == "started"} == {
        "student cnn6 random_2 seed 1", "student cnn6 random_2 seed 2"}  # the baselines are the teachers


def test_a_student_leads_to_its_experiments_teachers(finished):
    experiment, report, _, root = finished
    stored = np.load(experiment.folder / "teacher_logits.npz")
    expected = [Path(folder) / "model" for folder in stored["teacher_folders"]]
    assert experiment_teacher_models(experiment.folder) == expected == \
        [experiment.store.teachers_root / f"seed-{seed}" / "model" for seed in (1, 2, 3)]
    student = experiment.folder / "students" / "cnn6-mean_3-seed-1" / "model"
    assert teachers_for_model(student) == expected
    assert teachers_for_model(expected[0]) == []  # a teacher belongs to no experiment folder


def test_a_changed_recipe_is_refused_with_the_difference(finished, tmp_path):
    experiment, _, _, root = finished
    changed = load_experiment(tiny_recipe(tmp_path, labels="random_3"))
    with pytest.raises(ExperimentError) as caught:
        Experiment(changed, root / "ws", executor=InProcessExecutor()).run()
    assert "student 1 labels was mean_3, now random_3" in str(caught.value) and "new name" in str(caught.value)


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
            Experiment(experiment.recipe, root / "ws", executor=InProcessExecutor()).run()
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
        Experiment(load_experiment(tiny_recipe(tmp_path, name="cancelled")), tmp_path / "ws", on_event, cancel,
                   InProcessExecutor()).run()
    assert steps == [1]
    log = read_events(tmp_path / "ws" / "experiments" / "cancelled" / "events.jsonl")
    assert log[-1].stage == "experiment" and log[-1].kind == "cancelled"


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


@pytest.mark.parametrize("together", [True, False], ids=["teachers together", "teachers one by one"])
def test_killed_mid_teacher_and_mid_student_resumes_to_the_same_report(finished, tmp_path, together):
    _, reference, _, _ = finished
    recipe = tiny_recipe(tmp_path, together=together)  # the tiny recipe, in another workspace
    command = [sys.executable, str(WORKER), str(recipe), str(tmp_path / "ws")]
    _run_until(command, lambda e: e["stage"] == "teachers" and e["run"] == "teacher seed 2" and e["kind"] == "metrics")
    second = _run_until(command, lambda e: e["stage"] == "students" and e["kind"] == "metrics")
    assert any(e["message"] == "Resuming from epoch 1." for e in second)
    resumed = ("teacher seed 1", "teacher seed 2", "teacher seed 3") if together else ("teacher seed 2",)
    assert not any(e["kind"] == "metrics" and e["run"] in resumed and e["data"]["epoch"] == 1
                   for e in second)  # the interrupted teachers did not train their finished epoch again
    if not together:  # one after another: teacher 1 was finished before the kill
        assert any(e["message"] == "already trained" and e["run"] == "teacher seed 1" for e in second)
    final = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
    events = [json.loads(line) for line in final]
    assert [e for e in events if e["kind"] == "metrics" and e["stage"] == "teachers"] == []
    report = json.loads((tmp_path / "ws" / "experiments" / "tiny" / "report.json").read_text())
    if not together:  # the reference is the same recipe run without interruption
        fresh = Experiment(load_experiment(recipe), tmp_path / "fresh", executor=InProcessExecutor())
        reference = fresh.run().to_json()
    for key in ("teachers", "ensembles", "students", "second_generation"):
        for ours, theirs in zip(report[key] if isinstance(report[key], list) else [report[key]],
                                reference[key] if isinstance(reference[key], list) else [reference[key]]):
            assert {k: v for k, v in ours.items() if k != "bootstrap"} == \
                {k: v for k, v in theirs.items() if k != "bootstrap"}
