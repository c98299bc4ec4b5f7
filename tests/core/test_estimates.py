"""The time estimate of an experiment is worked out from the recipe's own data (its cycles after the split), the
device that will run it, and every part of the experiment; whether it holds is `bench/estimate_check.py`'s to
measure (no test asserts a time)."""
import subprocess

import pytest

from lungkd.core.data.sources import resolve_dataset
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.kd.estimate import estimate_experiment, worker_start_seconds
from lungkd.core.kd.launch import worker_command
from lungkd.core.models.inference import resolve_device
from lungkd.core.models.registry import model_info
from lungkd.core.recipes import TrainConfig, parse_experiment
from lungkd.core.training.estimates import ModelSpeed, device_name, run_seconds
from lungkd.core.workspace.layout import cache_folder

RECIPE = parse_experiment({
    "name": "estimated", "device": "auto",
    "data": {"synthetic": {"recordings": 16, "seed": 4}, "split": "patient", "test_fraction": 0.25},
    "teachers": {"arch": "cnn6", "size": "tiny", "k": 2, "train": {"epochs": 2, "batch_size": 8}},
    # other epochs than the teachers': the baseline is no teacher's twin, so it trains
    "students": [{"arch": "cnn6", "size": "tiny", "labels": "mean_2", "baseline": True,
                  "train": {"epochs": 3, "batch_size": 8}}]})


@pytest.fixture(scope="module")
def estimated(tmp_path_factory):
    workspace = tmp_path_factory.mktemp("estimate") / "ws"
    return workspace, estimate_experiment(RECIPE, workspace)


@pytest.mark.slow  # times real training steps and starts a worker process
def test_the_estimate_counts_the_recipes_own_cycles_after_its_split_on_the_device_that_will_run(estimated):
    workspace, estimate = estimated
    index = resolve_dataset(RECIPE.data, workspace, selection=RECIPE.selection)
    with_audio = index.stats()["cycles_with_audio"]
    assert estimate.cycles == {split: n for split, n in with_audio.items() if split != "all" and n}
    assert {"train", "test"} <= estimate.cycles.keys() and estimate.cycles["train"] != 4142  # not ICBHI's
    assert estimate.device == device_name(resolve_device("auto")) != "auto"
    sentence = estimate.sentence()
    assert f"on {estimate.device}:" in sentence and "auto" not in sentence
    assert f"on {estimate.cycles['train']} training cycles, evaluated on {estimate.cycles['test']} test cycles" \
        in sentence


@pytest.mark.slow  # times real training steps and starts a worker process
def test_the_estimate_covers_the_whole_experiment(estimated):
    _, estimate = estimated
    assert (estimate.teachers, estimate.students, estimate.baselines, estimate.epochs) == (2, 1, 1, (2, 3))
    parts = {part.what: part.seconds for part in estimate.parts}
    assert list(parts) == ["preparing the inputs", "starting the workers", "teachers' training", "teacher logits",
                           "students' training", "evaluation"]
    assert all(seconds > 0 for seconds in parts.values())  # a fresh workspace: nothing prepared yet
    assert estimate.seconds == pytest.approx(sum(parts.values()))
    assert "2 teachers, 1 distilled student, 1 hard-label baseline, 2/3 epochs each" in estimate.sentence()


@pytest.mark.slow  # times real training steps and starts a worker process
def test_once_the_inputs_are_prepared_the_estimate_leaves_their_preparation_out(estimated):
    workspace, _ = estimated
    index = resolve_dataset(RECIPE.data, workspace, selection=RECIPE.selection)
    build_cycle_sets(index, model_info("cnn6").inputs, cache=FeatureCache(cache_folder(workspace)))  # as a run does
    again = {part.what: part.seconds for part in estimate_experiment(RECIPE, workspace).parts}
    assert again["preparing the inputs"] == 0 and again["starting the workers"] > 0


def test_a_run_is_its_training_steps_its_evaluations_and_for_a_teacher_its_logits():
    speed = ModelSpeed(train=100.0, predict=1000.0)
    cycles = {"train": 95, "calibration": 10, "test": 40}
    train = TrainConfig(epochs=5, batch_size=8)
    teacher = run_seconds(cycles, train, speed, teacher=True)
    assert teacher.training == pytest.approx(5 * 96 / 100)  # 12 steps of 8 each epoch
    # each epoch's test Scores; then the selected model's test Scores and test logits, and its calibration
    assert teacher.evaluation == pytest.approx((5 * 40 + 2 * 40 + 10) / 1000)
    assert teacher.teacher_logits == pytest.approx(145 / 1000)
    student = run_seconds(cycles, train, speed, teacher=False)
    assert student.teacher_logits == 0 and student.total == pytest.approx(teacher.total - 0.145)


def test_a_worker_started_with_no_job_ends_at_once_and_well():
    assert subprocess.run(worker_command(), stdin=subprocess.DEVNULL, capture_output=True, timeout=300).returncode == 0
    assert worker_start_seconds() > 0
