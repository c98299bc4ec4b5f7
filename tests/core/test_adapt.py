"""Adapting a trained model to new recordings (core/kd/adapt.py, `lungkd adapt`): the tiny test model adapted to
24 other generated recordings (tests/conftest.py's adaptation_dir)."""
import shutil

import numpy as np
import pytest
import torch

from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.analysis.predict import analyse_recording
from lungkd.core.cli import main
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import DataSpec
from lungkd.core.errors import DataError, LungKDError
from lungkd.core.features.cache import FeatureCache
from lungkd.core.kd.adapt import (AdaptSettings, adapt_model, adaptation_split, distillation_targets,
                                  trainable_modules)
from lungkd.core.kd.store import teachers_for_model
from lungkd.core.models.card import read_model_card
from lungkd.core.models.inference import load_saved_model, predict_logits
from lungkd.core.storage import file_sha256
from recorded_experiment import recorded_experiment
from tiny_model import tiny_model_folder


@pytest.fixture(scope="module")
def base(synthetic_dir, tmp_path_factory):
    return tiny_model_folder(synthetic_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def new_recordings(adaptation_dir):
    return adaptation_dir


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return FeatureCache(tmp_path_factory.mktemp("adapt-cache"))


def adapt(base, folder, out, cache, **settings):
    index = load_dataset(folder)
    adaptation_split(index)
    return adapt_model(base, index, out, AdaptSettings(epochs=1, device="cpu", **settings), DataSpec(path=str(folder)),
                       cache=cache)


def test_the_split_is_patient_wise_with_patients_held_out_to_calibrate_and_test(new_recordings):
    index = load_dataset(new_recordings)
    adaptation_split(index)
    patients = {split: {r.patient for r in index.recordings if r.split == split}
                for split in ("train", "calibration", "test")}
    assert all(patients.values()) and sum(map(len, patients.values())) == len({r.patient for r in index.recordings})
    assert not (patients["train"] & patients["calibration"]) and not (patients["train"] & patients["test"])


def test_recordings_of_too_few_patients_are_refused_naming_the_folder(new_recordings, tmp_path):
    folder = tmp_path / "two-patients"
    folder.mkdir()
    for wav in sorted(new_recordings.glob("10[34]_*.wav")):
        for path in (wav, wav.with_suffix(".txt")):
            shutil.copy(path, folder)
    with pytest.raises(DataError, match="at least 3 patients") as error:
        adaptation_split(load_dataset(folder))
    assert str(folder) in str(error.value) and "annotate recordings of more patients" in str(error.value)


@pytest.mark.slow
def test_adapting_the_last_layers_leaves_the_other_weights_bit_identical_and_names_the_parent(base, new_recordings,
                                                                                               cache, tmp_path):
    done = adapt(base, new_recordings, tmp_path / "adapted", cache, layers="last")
    parent, base_card = load_saved_model(base)
    adapted, card = load_saved_model(done.folder)
    learnt = {name for name, module in adapted.named_modules()
              if any(module is m for m in trainable_modules(adapted, "last"))}
    before, after = parent.state_dict(), adapted.state_dict()
    kept = [k for k in before if not k.startswith(tuple(f"{m}." for m in learnt))]
    assert kept and all(torch.equal(before[k], after[k]) for k in kept)  # BatchNorm statistics included
    assert not torch.equal(before["head.weight"], after["head.weight"])
    last_block = "backbone.conv_block4.conv1.weight"
    assert last_block not in kept and not torch.equal(before[last_block], after[last_block])
    assert card.parent.card_sha256 == file_sha256(base / "lungkd.json") and card.parent.name == "tiny-cnn6"
    assert "the head and the last block" in card.parent.how and card.pretrained == str(base)
    assert card.inputs == base_card.inputs and card.architecture == base_card.architecture
    assert card.training_data.path == str(new_recordings) and card.training_data.train.recordings > 0
    assert card.test_data.cycles == done.cycles["test"] and card.test.score == pytest.approx(done.after.scores.score)


@pytest.mark.slow
def test_the_adapted_model_has_limits_of_its_new_data_and_loads_and_predicts(base, new_recordings, cache, tmp_path):
    done = adapt(base, new_recordings, tmp_path / "adapted", cache, layers="head")
    card = done.card
    assert card.calibration.fitted_on.split == "calibration"
    assert card.calibration.fitted_on.cycles == done.cycles["calibration"] >= 20
    assert card.training_statistics.train_cycles == done.cycles["train"]
    assert read_model_card(done.folder) == card and done.after.unlike_share is not None
    model = load_model_with_limits(done.folder)
    recording = sorted(new_recordings.glob("*.wav"))[0]
    analysis = analyse_recording(recording, model)
    assert analysis.cycles and all(abs(sum(c.probabilities) - 1) < 1e-6 for c in analysis.cycles)


@pytest.mark.slow
def test_adapting_the_whole_model_changes_the_first_block_too(base, new_recordings, cache, tmp_path):
    done = adapt(base, new_recordings, tmp_path / "adapted", cache, layers="all")
    first = "backbone.conv_block1.conv1.weight"
    assert not torch.equal(load_saved_model(base)[0].state_dict()[first], load_saved_model(done.folder)[0].state_dict()[first])


@pytest.mark.slow
def test_distilling_mixes_the_teachers_ensemble_with_the_annotation(base, new_recordings, cache, tmp_path):
    experiment = recorded_experiment(tmp_path / "workspace", base)
    student = next(experiment.glob("students/*/model"))
    teachers = teachers_for_model(student)
    assert len(teachers) == 1
    index = load_dataset(new_recordings)
    adaptation_split(index)
    done = adapt(student, new_recordings, tmp_path / "adapted", cache, distil=True)
    assert done.card.training_labels == "hard+mean_1" and "half of each target from its teacher" in done.card.parent.how
    teacher, card = load_saved_model(teachers[0])
    from lungkd.core.features.cycle_sets import build_cycle_sets

    train = build_cycle_sets(index, card.inputs.spec(), cache=cache)["train"]
    targets = distillation_targets(teachers, index, train, cache, None).numpy()
    soft = torch.softmax(predict_logits(teacher, train), dim=1).numpy()
    onehot = np.eye(4)[train.labels.numpy()]
    np.testing.assert_allclose(targets, 0.5 * soft + 0.5 * onehot, atol=1e-5)


def test_distilling_a_model_without_teachers_is_refused(base, new_recordings, tmp_path):
    with pytest.raises(LungKDError, match="no teachers"):
        adapt(base, new_recordings, tmp_path / "adapted", None, distil=True)
    assert not (tmp_path / "adapted").exists()


@pytest.mark.slow
def test_lungkd_adapt_writes_the_model_into_the_workspace_and_refuses_the_name_twice(base, new_recordings, tmp_path,
                                                                                     capsys):
    workspace = tmp_path / "ws"
    argv = ["adapt", str(base), str(new_recordings), "--epochs", "1", "--layers", "head", "--out", "clinic",
            "--workspace", str(workspace)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Adapted: the head trained 1 epoch on" in out and "\nBefore: Sp" in out and "\nAfter: Sp" in out
    assert f"model saved to {workspace / 'adapted' / 'clinic'}" in out
    assert read_model_card(workspace / "adapted" / "clinic").parent.name == "tiny-cnn6"
    assert main(argv) == 2
    assert "exists already" in capsys.readouterr().err
