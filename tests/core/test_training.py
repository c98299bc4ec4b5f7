"""The trainer on real prepared cycles: recipe arithmetic, seeds, selection, resume after a kill, cancel."""
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lungkd.core.features.cache import FeatureCache
from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.data.dataset import load_dataset
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.models.registry import create_model
from lungkd.core.training.trainer import (STATE_FILE, CycleSet, TrainConfig, Trainer, TrainingError,
                                  cosine_lr)

WORKER = Path(__file__).with_name("train_worker.py")


@pytest.fixture(scope="module")
def real_sets(icbhi_audio_dir, tmp_path_factory):
    """The 80 real cycles as 16 kHz fbank; one patient's recordings are the test set."""
    index = load_dataset(icbhi_audio_dir.parent)
    index.recordings = [r for r in index.recordings if r.usable_audio]
    index.apply_split({name: "test" if name.startswith("106_") else "train" for name in
                       (r.name for r in index.recordings)})
    return build_cycle_sets(index, "cnn6", cache=FeatureCache(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="module")
def small_train(real_sets):
    """32 training cycles: enough to see the arithmetic, quick on two cores."""
    train = real_sets["train"]
    return CycleSet(train.features[:32], train.labels[:32])


def _tiny(seed=0):
    torch.manual_seed(seed)
    return create_model("cnn6", size="tiny")


def test_real_cycle_sets_have_the_spec_shapes(real_sets):
    assert real_sets["train"].features.shape[1:] == (798, 128)
    assert len(real_sets["train"]) + len(real_sets["test"]) == 80
    assert real_sets["train"].labels.dtype == torch.int64


def test_cosine_schedule_reaches_lr_times_1e3_in_the_last_epoch():
    assert cosine_lr(1e-3, 200, 200, 1e-3) == pytest.approx(1e-6)
    assert cosine_lr(1e-3, 100, 200, 1e-3) == pytest.approx(1e-6 + (1e-3 - 1e-6) / 2)
    assert cosine_lr(5e-5, 1, 50, 1e-3) == pytest.approx(5e-8 + (5e-5 - 5e-8) * (1 + math.cos(math.pi / 50)) / 2)


def test_lr_per_epoch_and_history(real_sets):
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-3, seed=1)
    result = Trainer(config).fit(_tiny(), real_sets["train"], real_sets["test"])
    assert [r.lr for r in result.history] == pytest.approx([cosine_lr(1e-3, e, 2, 1e-3) for e in (1, 2)])
    assert result.history[-1].lr == pytest.approx(1e-6)
    assert all(r.test is not None and 0 <= r.test["sp"] <= 100 for r in result.history)


def test_weight_averaging_halves_each_step(real_sets):
    """After one step: w = 0.5 * w_before + 0.5 * w_after_plain_step (buffers included)."""
    one_batch = CycleSet(real_sets["train"].features[:8], real_sets["train"].labels[:8])
    base = dict(epochs=1, batch_size=8, lr=1e-2, seed=3, specaugment=False, selection="last")
    start = {k: v.clone() for k, v in _tiny().state_dict().items()}
    plain = Trainer(TrainConfig(**base)).fit(_tiny(), one_batch).model.state_dict()
    averaged = Trainer(TrainConfig(**base, weight_averaging=0.5)).fit(_tiny(), one_batch).model.state_dict()
    for name, value in averaged.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.5 * start[name] + 0.5 * plain[name], rtol=1e-5, atol=1e-6)
    running = [n for n in averaged if n.endswith("running_mean")]
    assert running and not torch.equal(averaged[running[0]], plain[running[0]])


def test_deterministic_runs_are_bit_identical(small_train, real_sets):
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-3, seed=7, deterministic=True, weight_averaging=0.5)
    a = Trainer(config).fit(_tiny(), small_train, real_sets["test"])
    b = Trainer(config).fit(_tiny(), small_train, real_sets["test"])
    assert [r.loss for r in a.history] == [r.loss for r in b.history]
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), name
    c = Trainer(TrainConfig(epochs=2, batch_size=16, lr=1e-3, seed=8, deterministic=True)).fit(
        _tiny(), small_train, real_sets["test"])
    assert [r.loss for r in c.history] != [r.loss for r in a.history]


def test_soft_targets_matrix_and_per_epoch_provider(real_sets):
    train = real_sets["train"]
    uniform = torch.full((len(train), 4), 0.25)
    result = Trainer(TrainConfig(epochs=1, batch_size=32, seed=1, selection="last")).fit(_tiny(), train, targets=uniform)
    assert result.history[0].loss == pytest.approx(math.log(4), abs=0.3)

    class Provider:
        epochs_seen = []

        def for_epoch(self, epoch):
            self.epochs_seen.append(epoch)
            return torch.nn.functional.one_hot(train.labels, 4).float()

    provider = Provider()
    Trainer(TrainConfig(epochs=2, batch_size=32, seed=1, selection="last")).fit(_tiny(), train, targets=provider)
    assert provider.epochs_seen == [1, 2]


def test_selection_best_test_ignores_epochs_with_low_se(real_sets):
    result = Trainer(TrainConfig(epochs=3, batch_size=32, seed=2)).fit(_tiny(), real_sets["train"], real_sets["test"])
    eligible = [r for r in result.history if r.test["se"] > 5.0]
    if eligible:
        best = max(eligible, key=lambda r: r.test["score"])
        assert result.selected_epoch == best.epoch
    assert result.scores is not None
    assert result.scores.to_dict()["score"] == pytest.approx(result.history[result.selected_epoch - 1].test["score"])


def test_best_val_needs_a_validation_set(real_sets):
    with pytest.raises(TrainingError, match="best_val needs a validation set"):
        Trainer(TrainConfig(epochs=1, selection="best_val")).fit(_tiny(), real_sets["train"], real_sets["test"])


def test_unknown_selection_is_refused():
    with pytest.raises(TrainingError, match="best_test"):
        TrainConfig(selection="best")


def test_cancel_stops_within_a_step_and_the_run_resumes(small_train, real_sets, tmp_path):
    cancel = CancelToken()
    steps = []

    def progress(p):
        if p.stage == "train":
            steps.append((p.epoch, p.step))
            if p.epoch == 2 and p.step == 1:
                cancel.cancel()

    config = TrainConfig(epochs=3, batch_size=16, seed=1, deterministic=True)
    with pytest.raises(Cancelled):
        Trainer(config, tmp_path, progress, cancel).fit(_tiny(), small_train, real_sets["test"])
    assert steps[-1] == (2, 1)  # no step ran after the cancel
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert state["epoch"] == 1
    resumed = Trainer(config, tmp_path).fit(_tiny(), small_train, real_sets["test"])
    uninterrupted = Trainer(config).fit(_tiny(), small_train, real_sets["test"])
    assert [r.loss for r in resumed.history] == [r.loss for r in uninterrupted.history]


def test_a_run_folder_with_other_settings_is_refused(small_train, tmp_path):
    Trainer(TrainConfig(epochs=1, batch_size=32, selection="last"), tmp_path).fit(_tiny(), small_train)
    with pytest.raises(TrainingError, match="other settings"):
        Trainer(TrainConfig(epochs=2, batch_size=32, selection="last"), tmp_path).fit(_tiny(), small_train)


def test_out_of_memory_names_the_batch_size(real_sets):
    model = _tiny()

    def exhausted(_):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.forward = exhausted
    with pytest.raises(TrainingError) as caught:
        Trainer(TrainConfig(epochs=1, batch_size=32)).fit(model, real_sets["train"], real_sets["test"])
    assert "batch size 32" in str(caught.value) and "batch_size (e.g. to 16)" in str(caught.value)


def test_killed_process_resumes_with_the_same_metrics(real_sets, tmp_path):
    """kill -9 a real training process mid-epoch; the same command finishes with identical metrics."""
    features = tmp_path / "features.npz"
    train, test = real_sets["train"], real_sets["test"]
    np.savez(features, train_x=train.features[:48].numpy(), train_y=train.labels[:48].numpy(),
             test_x=test.features.numpy(), test_y=test.labels.numpy())
    command = [sys.executable, str(WORKER), str(features), str(tmp_path / "killed"), "4"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    for line in process.stdout:
        if line.strip() == "EPOCH 2":
            os.kill(process.pid, signal.SIGKILL)  # it is already training epoch 3
            break
    process.wait()
    assert process.returncode == -signal.SIGKILL
    assert torch.load(tmp_path / "killed" / STATE_FILE, weights_only=True)["epoch"] == 2
    resumed = subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()
    assert resumed[:2] == ["EPOCH 3", "EPOCH 4"]  # epochs 1-2 were not recomputed
    fresh = subprocess.run(command[:3] + [str(tmp_path / "fresh"), "4"], capture_output=True, text=True,
                           check=True).stdout.splitlines()
    assert json.loads(resumed[-1]) == json.loads(fresh[-1])
