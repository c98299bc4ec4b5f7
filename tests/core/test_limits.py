"""A model that knows its limits: temperature scaling and the calibration error (core/training/calibration.py),
the statistics of a model's training inputs and the marks of cycles and recordings unlike them
(core/analysis/limits.py), the calibration split held out of train, what a trained model's card records, the
report's calibration section, and the shipped demo model on real and on synthetic recordings."""
import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lungkd.core.analysis.limits import ModelLimits, load_model_with_limits
from lungkd.core.analysis.predict import analyse_recording, to_json, write_csv
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import (CALIBRATION_SPLIT, DataSpec, SyntheticData, describe_training_data,
                                      ensure_synthetic_dataset, resolve_dataset)
from lungkd.core.features.cycle_sets import CycleSet, build_cycle_sets
from lungkd.core.kd.jobs import FinishedRun
from lungkd.core.kd.report import build_report
from lungkd.core.kd.report_pages import html_report, markdown_report
from lungkd.core.models.card import StatisticsCard, model_notes, read_model_card, update_model_card
from lungkd.core.models.inference import load_saved_model
from lungkd.core.models.inventory import shipped_models_folder
from lungkd.core.models.registry import model_info
from lungkd.core.recipes import load_experiment, load_recipe, shipped_recipes_folder
from lungkd.core.training.calibration import (MIN_HELD_OUT_CYCLES, SUMMARY_BANDS, TrainingStatistics,
                                              expected_calibration_error, fit_limits, fit_temperature, input_summary,
                                              reliability, softmax)
from tiny_model import tiny_model_folder, without_limits
from tiny_recipe import tiny_recipe

ROOT = Path(__file__).resolve().parents[2]
DEMO = shipped_models_folder() / "demo-cnn6"


@pytest.fixture(scope="module")
def tiny(synthetic_dir, tmp_path_factory):
    return load_model_with_limits(tiny_model_folder(synthetic_dir, tmp_path_factory))


@pytest.fixture(scope="module")
def demo():
    return load_model_with_limits(DEMO)


# ---------------------------------------------------------------- the input summary


@pytest.mark.parametrize("shape", [(300, 80, 128), (5, 1, 60, 64), (7, 40, 100)])  # fbank, CLAP, uneven bands
def test_the_input_summary_is_each_bands_level_spread_and_change_over_time(shape):
    """Against the definition, one cycle and one band at a time; cycles beyond one summary batch included."""
    features = torch.from_numpy(np.random.default_rng(3).normal(-5, 3, shape).astype(np.float32))
    x = features.numpy().reshape(shape[0], shape[-2], shape[-1]).astype(np.float64)
    band_of_bin = np.arange(shape[-1]) * SUMMARY_BANDS // shape[-1]
    expected = []
    for cycle in x:
        bands = [cycle[:, band_of_bin == b].mean(axis=1) for b in range(SUMMARY_BANDS)]
        expected.append([b.mean() for b in bands] + [b.std(ddof=1) for b in bands]
                        + [np.abs(np.diff(b)).mean() for b in bands])
    np.testing.assert_allclose(input_summary(features), expected, rtol=0, atol=1e-12)


# ---------------------------------------------------------------- calibration


def test_temperature_scaling_finds_the_temperature_the_labels_were_drawn_with():
    rng = np.random.default_rng(0)
    true_logits = rng.normal(0, 2, (4000, 4))
    labels = np.array([rng.choice(4, p=p) for p in softmax(true_logits)])
    for temperature in (0.5, 1.0, 3.0):  # a model whose logits are `temperature` times too large
        assert fit_temperature(true_logits * temperature, labels) == pytest.approx(temperature, rel=0.08)


def test_calibration_error_is_near_zero_when_confidence_matches_accuracy_and_the_gap_otherwise():
    rng = np.random.default_rng(1)
    logits = rng.normal(0, 2, (20000, 4))
    probabilities = softmax(logits)
    labels = np.array([rng.choice(4, p=p) for p in probabilities])
    bins = reliability(probabilities, labels)
    assert sum(b["count"] for b in bins) == 20000 and [b["low"] for b in bins[:2]] == [0.0, 0.1]
    assert expected_calibration_error(bins) < 0.015
    overconfident = softmax(logits * 4)  # sure of the same ranking, four times too sharply
    gap = overconfident.max(1).mean() - (overconfident.argmax(1) == labels).mean()
    assert expected_calibration_error(reliability(overconfident, labels)) == pytest.approx(gap, abs=0.02)
    assert gap > 0.1


def test_too_few_held_out_cycles_leave_a_model_uncalibrated_and_say_why(tiny, synthetic_sets):
    model = tiny.model
    few = synthetic_sets["test"]
    sets = {"train": synthetic_sets["train"], "calibration": CycleSet(few.features[:5], few.labels[:5])}
    limits = fit_limits(model, sets)
    assert limits["calibration"]["temperature"] is None and "5 cycles held out" in limits["calibration"]["reason"]
    assert "precision" not in limits["training_statistics"] and f"at least {MIN_HELD_OUT_CYCLES}" in \
        limits["training_statistics"]["reason"]
    unknown = ModelLimits.from_card(tiny.card.replace(**limits))
    assert not unknown.calibrated and unknown.limit is None
    assert any("Uncalibrated" in w for w in unknown.notes.warnings())
    assert unknown.unlike(1e9) is None  # cannot tell, rather than "like"


# ---------------------------------------------------------------- training statistics and marks


def test_training_statistics_put_held_out_cycles_inside_the_limit_and_a_tone_far_beyond(demo, synthetic_sets,
                                                                                       tone_recording):
    stats = TrainingStatistics.fit(synthetic_sets["train"].features, synthetic_sets["test"].features, "test")
    held = stats.distances(synthetic_sets["test"].features)
    assert stats.limit == pytest.approx(np.percentile(held, 99)) and (held > stats.limit).mean() <= 0.05
    again = TrainingStatistics.from_card(StatisticsCard.model_validate_json(json.dumps(stats.to_card())))
    np.testing.assert_array_equal(again.distances(synthetic_sets["train"].features),
                                  stats.distances(synthetic_sets["train"].features))
    limits = demo.limits  # a model trained on 1194 cycles: the tiny one's 46 are too few for a tight limit
    analysis = analyse_recording(tone_recording, demo)
    assert analysis.unlike_training and all(c.unlike_training for c in analysis.cycles)
    assert analysis.training_distance > 1.5 * limits.limit and analysis.distance_limit == limits.limit


def test_marks_reach_the_csv_and_json_and_probabilities_are_the_calibrated_ones(demo, synthetic_dir, tone_recording,
                                                                             tmp_path):
    limits = demo.limits
    recording = sorted(synthetic_dir.glob("*.wav"))[0]
    like = analyse_recording(recording, demo)
    unlike = analyse_recording(tone_recording, demo)
    assert like.unlike_training is False and like.calibrated
    write_csv([like, unlike], tmp_path / "cycles.csv")
    with open(tmp_path / "cycles.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {r["unlike_training"] for r in rows if r["recording"] == "tone"} == {"yes"}
    assert float(rows[0]["training_distance"]) == pytest.approx(like.cycles[0].training_distance, abs=0.01)
    parsed = {a["path"]: a for a in json.loads(to_json([like, unlike]))}
    assert parsed[str(tone_recording)]["unlike_training"] is True
    assert parsed[str(recording)]["cycles"][0]["unlike_training"] is False
    plain = analyse_recording(recording, without_limits(demo))  # the plain softmax, nothing marked
    assert not plain.calibrated and plain.unlike_training is None and plain.cycles[0].training_distance is None
    calibrated, raw = np.array(like.cycles[0].probabilities), np.array(plain.cycles[0].probabilities)
    logits = np.log(raw)  # softmax is shift-invariant: log-probabilities stand for the logits
    np.testing.assert_allclose(calibrated, softmax(logits[None], limits.temperature)[0], atol=1e-5)
    assert calibrated.argmax() == raw.argmax()


# ---------------------------------------------------------------- the shipped demo model


def test_the_demo_card_says_it_learnt_from_synthetic_recordings_and_holds_its_limits():
    card = read_model_card(DEMO)
    data = card.training_data
    assert data.kind == "synthetic" and data.generator == {"recordings": 360, "seed": 0, "label_noise": 0.0}
    assert sum(data.train.cycles.values()) == 1194 and data.calibration.patients == 15
    notes = model_notes(card)
    assert notes.synthetic_only and notes.calibrated and notes.marks_unlike
    assert notes.trained_on.startswith("synthetic recordings only: 201 recordings, 1194 cycles, 4 device(s)")
    assert card.calibration.fitted_on.model_dump() == {"split": "calibration", "cycles": 422}
    assert card.calibration.measured_on.model_dump() == {"split": "test", "cycles": 545}


def test_the_demo_model_is_a_distilled_student_made_by_the_shipped_recipe():
    """The first start shows the product's own method: the card names the command and the shipped recipe that
    made the model, its teachers and their ensemble, and the data it learnt from is that recipe's data."""
    card = read_model_card(DEMO)
    made_by = card.made_by
    recipe = load_experiment(shipped_recipes_folder() / "demo-model.toml")
    assert made_by["recipe"] == recipe.model_dump(mode="json")
    target, makefile = made_by["command"].removeprefix("make "), (ROOT / "Makefile").read_text()
    assert f"\n{target}:" in makefile and "build_demo_model.py" in makefile
    assert (card.role, card.training_labels) == ("student", f"mean_{recipe.teachers.k}")  # distilled, not hard
    assert len(made_by["teachers"]) == recipe.teachers.k
    assert card.training_data.generator == recipe.data.synthetic.model_dump(mode="json")
    assert card.test_data.cycles == made_by["test_cycles"]
    assert card.score > 65 and made_by["ensemble_test_score"] > 65


@pytest.mark.slow
def test_the_demo_model_marks_the_real_recordings_as_unlike_its_training_data(demo, icbhi_audio_dir):
    recordings = sorted(icbhi_audio_dir.glob("*.wav"))
    assert len(recordings) == 10
    for path in recordings:
        analysis = analyse_recording(path, demo)
        assert analysis.unlike_training, f"{path.name}: median distance {analysis.training_distance:.1f}"
        assert analysis.calibrated and any("synthetic recordings only" in w for w in analysis.model_warnings)


@pytest.mark.slow
def test_the_demo_model_does_not_mark_synthetic_recordings_of_its_generator_settings(demo, synthetic_dir):
    """The session's synthetic recordings: the generator and settings the demo was trained with (no label
    noise), other patients (seed 1, not the demo's 0 or its held-out 100)."""
    analyses = [analyse_recording(path, demo) for path in sorted(synthetic_dir.glob("*.wav"))]
    assert len(analyses) == 14 and not any(a.unlike_training for a in analyses)
    cycles = [c for a in analyses for c in a.cycles]
    assert sum(c.unlike_training for c in cycles) <= 0.05 * len(cycles)


# ---------------------------------------------------------------- where training ends


@pytest.fixture(scope="module")
def thirty(tmp_path_factory):
    """30 synthetic recordings of 9 patients, 6 of them in train: enough to hold some out."""
    return ensure_synthetic_dataset(tmp_path_factory.getbasetemp() / "synthetic-30",
                                    SyntheticData(recordings=30, seed=1))


def test_calibration_patients_are_held_out_of_train_only_when_there_are_enough(thirty, synthetic_dir, tmp_path):
    index = resolve_dataset(DataSpec(path=str(thirty), calibration_fraction=0.3), tmp_path, selection="last")
    patients = {split: {r.patient for r in index.recordings if r.split == split} for split in
                ("train", CALIBRATION_SPLIT, "test")}
    official = {r.name: r.split for r in load_dataset(thirty).recordings}
    assert patients[CALIBRATION_SPLIT] and not patients[CALIBRATION_SPLIT] & patients["train"]
    assert all(official[r.name] == "train" for r in index.recordings if r.split == CALIBRATION_SPLIT)
    assert {r.name for r in index.recordings if r.split == "test"} == {n for n, s in official.items() if s == "test"}
    described = describe_training_data(DataSpec(path=str(thirty)), index)
    assert described["kind"] == "dataset" and set(described) >= {"train", CALIBRATION_SPLIT}
    assert described[CALIBRATION_SPLIT]["patients"] == len(patients[CALIBRATION_SPLIT])
    with_val = resolve_dataset(DataSpec(path=str(thirty)), tmp_path, selection="best_val")
    assert {r.split for r in with_val.recordings} == {"train", "val", "test"}  # the validation split calibrates
    small = resolve_dataset(DataSpec(path=str(synthetic_dir)), tmp_path, selection="best_test")
    assert CALIBRATION_SPLIT not in {r.split for r in small.recordings}
    assert any("training patients: none is held out" in w.message for w in small.warnings)


TRAIN_RECIPE = """
name = "calibrated"
selection = "last"
[data]
path = "{path}"
calibration_fraction = 0.3
[model]
arch = "cnn6"
size = "tiny"
[train]
epochs = 1
batch_size = 16
"""


@pytest.mark.slow
def test_a_trained_model_card_records_its_data_and_limits_and_the_report_shows_them(thirty, tmp_path):
    from lungkd.core.training.single_run import train_from_recipe

    recipe_path = tmp_path / "calibrated.toml"
    recipe_path.write_text(TRAIN_RECIPE.format(path=thirty))
    result, folder = train_from_recipe(load_recipe(recipe_path), tmp_path / "ws")
    card = read_model_card(folder)
    assert card.training_data.kind == "dataset" and card.training_data.train.recordings > 0
    calibration = card.calibration
    assert calibration.fitted_on.split == CALIBRATION_SPLIT and calibration.fitted_on.cycles >= 20
    assert calibration.measured_on.split == "test" and 0.05 <= calibration.temperature <= 20
    assert 0 <= calibration.ece_after <= 1 and len(calibration.reliability_after) == 10
    usable = load_model_with_limits(folder)
    model, limits = usable.model, usable.limits
    assert limits.calibrated and limits.limit == card.training_statistics.limit
    model.eval()
    test_set = build_cycle_sets(resolve_dataset(load_recipe(recipe_path).data, tmp_path / "ws", selection="last"),
                                model_info("cnn6").inputs)["test"]
    with torch.inference_mode():
        logits = model(test_set.features)
    ece = expected_calibration_error(reliability(limits.probabilities(logits), test_set.labels.numpy()))
    assert ece == pytest.approx(calibration.ece_after, abs=1e-6)  # measured as stored

    experiment = load_experiment(tiny_recipe(tmp_path))  # its cards: this model's, as a teacher and as a student
    teacher = FinishedRun(role="teacher", arch="cnn6", seed=1, labels="hard", folder=str(folder.parent), card=card)
    student = teacher.model_copy(update={"role": "student", "labels": "mean_3"})
    baseline = teacher.model_copy(update={"role": "baseline"})
    report = build_report(experiment, "fingerprint", [teacher], {"first_k": [], "curated": None},
                          [[student, baseline]], None, train_cycles=1, test_cycles=1)
    assert [d.name for d in report.reliability] == ["cnn6 teachers", "cnn6 students (mean_3)"]
    assert report.reliability[0].ece_after == pytest.approx(calibration.ece_after)
    text = markdown_report(report)
    assert "## Calibration" in text and f"| teacher seed 1 | {calibration.temperature:.2f} |" in text
    assert html_report(report).count("<figure><svg") == 2


def test_an_older_model_folder_gets_its_card_updated_and_keeps_its_weights(tiny, synthetic_dir, tmp_path_factory,
                                                                           tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(tiny_model_folder(synthetic_dir, tmp_path_factory), folder)
    before = (folder / "head.safetensors").read_bytes()
    card = update_model_card(folder, calibration={"temperature": 2.0})
    assert read_model_card(folder) == card and card.calibration.model_dump(exclude_defaults=True) == {"temperature": 2.0}
    assert (folder / "head.safetensors").read_bytes() == before
    assert load_saved_model(folder)[1].temperature == 2.0


def test_lungkd_models_fit_limits_gives_an_older_model_its_limits_and_keeps_its_weights(synthetic_dir,
                                                                                       tmp_path_factory, tmp_path,
                                                                                       capsys):
    """What `bench/fit_model_limits.py` did is a command now: the limits of a model trained before cards held
    them, from the data it was trained on and recordings it never saw."""
    import shutil

    from lungkd.core.cli import main

    folder = tmp_path / "older"
    shutil.copytree(tiny_model_folder(synthetic_dir, tmp_path_factory), folder)
    update_model_card(folder, calibration=None, training_statistics=None, training_data=None)
    weights = (folder / "model.safetensors").read_bytes()
    assert not load_model_with_limits(folder).limits.calibrated
    code = main(["models", "fit-limits", str(folder), "--data", str(synthetic_dir), "--held-out", "20",
                 "--held-out-seed", "2", "--workspace", str(tmp_path / "ws")])
    assert code == 0
    card = read_model_card(folder)
    assert card.training_data.kind == "dataset" and card.training_data.limits_fitted_by.startswith("lungkd models")
    assert card.calibration.fitted_on.split == CALIBRATION_SPLIT and card.calibration.fitted_on.cycles >= 20
    assert card.training_statistics.fitted and card.training_data.held_out_source.startswith("LungKD synthetic")
    assert load_model_with_limits(folder).limits.calibrated and (folder / "model.safetensors").read_bytes() == weights
    assert main(["models", "fit-limits", str(folder), "--data", str(synthetic_dir)]) == 2
    assert "needs the data the model was trained on and recordings it never saw" in capsys.readouterr().err
