"""The trainer on prepared synthetic cycles: recipe arithmetic, seeds, selection, resume after a kill, cancel."""
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
from pydantic import ValidationError

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.features.cycle_sets import CycleSet
from lungkd.core.models.registry import create_model
from lungkd.core.recipes import RunSettings, TrainConfig
from lungkd.core.models.inference import predict_logits
from lungkd.core.selection import Selection
from lungkd.core.training.trainer import EpochRecord, Trainer, TrainingError, cosine_lr
from lungkd.core.workspace.layout import STATE_FILE

WORKER = Path(__file__).with_name("train_worker.py")
LAST = RunSettings(selection="last")


@pytest.fixture(scope="module")
def small_train(synthetic_sets):
    """32 training cycles: enough to see the arithmetic, quick on two cores."""
    train = synthetic_sets["train"]
    return CycleSet(train.features[:32], train.labels[:32])


def _tiny(seed=0):
    torch.manual_seed(seed)
    return create_model("cnn6", size="tiny")


def test_synthetic_cycle_sets_have_the_spec_shapes(synthetic_sets):
    assert synthetic_sets["train"].features.shape[1:] == (798, 128)
    assert len(synthetic_sets["train"]) + len(synthetic_sets["test"]) == 70
    assert synthetic_sets["train"].labels.dtype == torch.int64


def test_cycle_sets_are_slices_of_one_prepared_array_each_in_dataset_order(synthetic_sets):
    """The inputs are held once (hundreds of MB for a real dataset): every split is a view of one array, its
    cycles in dataset order (recordings by name, cycles as annotated)."""
    train, test = synthetic_sets["train"], synthetic_sets["test"]
    assert test.features.data_ptr() == train.features.data_ptr() + train.features.nbytes  # the rows after train's
    assert train.features.is_contiguous() and test.features.is_contiguous()
    for cycle_set in (train, test):
        keys = [(cid.split("#")[0], int(cid.split("#")[1])) for cid in cycle_set.cycle_ids]
        assert keys == sorted(keys)


def test_cosine_schedule_reaches_lr_times_1e3_in_the_last_epoch():
    assert cosine_lr(1e-3, 200, 200, 1e-3) == pytest.approx(1e-6)
    assert cosine_lr(1e-3, 100, 200, 1e-3) == pytest.approx(1e-6 + (1e-3 - 1e-6) / 2)
    assert cosine_lr(5e-5, 1, 50, 1e-3) == pytest.approx(5e-8 + (5e-5 - 5e-8) * (1 + math.cos(math.pi / 50)) / 2)


@pytest.mark.slow
def test_lr_per_epoch_and_history(synthetic_sets):
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-3)
    result = Trainer(config, seed=1).fit(_tiny(), synthetic_sets["train"], synthetic_sets["test"])
    assert [r.lr for r in result.history] == pytest.approx([cosine_lr(1e-3, e, 2, 1e-3) for e in (1, 2)])
    assert result.history[-1].lr == pytest.approx(1e-6)
    assert all(r.test is not None and 0 <= r.test["sp"] <= 100 for r in result.history)


def test_weight_averaging_halves_each_step(synthetic_sets):
    """After one step: w = 0.5 * w_before + 0.5 * w_after_plain_step (buffers included)."""
    one_batch = CycleSet(synthetic_sets["train"].features[:8], synthetic_sets["train"].labels[:8])
    base = dict(epochs=1, batch_size=8, lr=1e-2, specaugment=False)
    start = {k: v.clone() for k, v in _tiny().state_dict().items()}
    plain = Trainer(TrainConfig(**base), seed=3, settings=LAST).fit(_tiny(), one_batch).model.state_dict()
    averaged = Trainer(TrainConfig(**base, weight_averaging=0.5), seed=3, settings=LAST).fit(
        _tiny(), one_batch).model.state_dict()
    for name, value in averaged.items():
        if value.is_floating_point():
            torch.testing.assert_close(value, 0.5 * start[name] + 0.5 * plain[name], rtol=1e-5, atol=1e-6)
    running = [n for n in averaged if n.endswith("running_mean")]
    assert running and not torch.equal(averaged[running[0]], plain[running[0]])


@pytest.mark.slow
def test_deterministic_runs_are_bit_identical(small_train, synthetic_sets):
    config = TrainConfig(epochs=2, batch_size=16, lr=1e-3, weight_averaging=0.5)
    settings = RunSettings(deterministic=True)
    a = Trainer(config, seed=7, settings=settings).fit(_tiny(), small_train, synthetic_sets["test"])
    b = Trainer(config, seed=7, settings=settings).fit(_tiny(), small_train, synthetic_sets["test"])
    assert [r.loss for r in a.history] == [r.loss for r in b.history]
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), name
    c = Trainer(config, seed=8, settings=settings).fit(_tiny(), small_train, synthetic_sets["test"])
    assert [r.loss for r in c.history] != [r.loss for r in a.history]


@pytest.mark.slow
def test_soft_targets_matrix_and_per_epoch_provider(synthetic_sets):
    train = synthetic_sets["train"]
    uniform = torch.full((len(train), 4), 0.25)
    result = Trainer(TrainConfig(epochs=1, batch_size=32), settings=LAST).fit(_tiny(), train, targets=uniform)
    assert result.history[0].loss == pytest.approx(math.log(4), abs=0.3)

    class Provider:
        epochs_seen = []

        def for_epoch(self, epoch):
            self.epochs_seen.append(epoch)
            return torch.nn.functional.one_hot(train.labels, 4).float()

    provider = Provider()
    Trainer(TrainConfig(epochs=2, batch_size=32), settings=LAST).fit(_tiny(), train, targets=provider)
    assert provider.epochs_seen == [1, 2]


def _record(epoch, se, score, where="test"):
    return EpochRecord(epoch, loss=1.0, lr=1e-3, **{where: {"sp": 2 * score - se, "se": se, "score": score}})


def _value(record, selection):
    return Selection(selection).epoch_value(record.test, record.val)


def test_selection_value_ignores_epochs_with_se_at_most_5_percent():
    assert _value(_record(1, se=5.0, score=52.0), "best_test") == -math.inf
    assert _value(_record(2, se=5.1, score=48.0), "best_test") == 48.0
    assert _value(_record(3, se=30.0, score=60.0, where="val"), "best_val") == 60.0
    assert _value(_record(3, se=30.0, score=60.0, where="val"), "best_test") == -math.inf


@pytest.mark.slow
def test_the_trainer_keeps_the_checkpoint_of_the_best_eligible_epoch(synthetic_sets):
    result = Trainer(TrainConfig(epochs=3, batch_size=32), seed=2).fit(_tiny(), synthetic_sets["train"],
                                                                        synthetic_sets["test"])
    values = [_value(r, "best_test") for r in result.history]
    first_best = values.index(max(values)) + 1  # ties: the earliest; all ineligible: the first epoch
    assert result.selected_epoch == first_best
    assert result.scores is not None
    assert result.scores.to_dict()["score"] == pytest.approx(result.history[result.selected_epoch - 1].test["score"])


def test_best_val_needs_a_validation_set(synthetic_sets):
    with pytest.raises(TrainingError, match="best_val needs a validation set"):
        Trainer(TrainConfig(epochs=1), settings=RunSettings(selection="best_val")).fit(
            _tiny(), synthetic_sets["train"], synthetic_sets["test"])


def test_unknown_selection_is_refused():
    with pytest.raises(ValidationError, match="best_test"):
        RunSettings(selection="best")


@pytest.mark.slow
def test_cancel_stops_within_a_step_and_the_run_resumes(small_train, synthetic_sets, tmp_path):
    cancel = CancelToken()
    steps = []

    def progress(p):
        if p.stage == "train":
            steps.append((p.epoch, p.step))
            if p.epoch == 2 and p.step == 1:
                cancel.cancel()

    config, settings = TrainConfig(epochs=3, batch_size=16), RunSettings(deterministic=True)
    with pytest.raises(Cancelled):
        Trainer(config, settings=settings, run_dir=tmp_path, on_progress=progress, cancel=cancel).fit(
            _tiny(), small_train, synthetic_sets["test"])
    assert steps[-1] == (2, 1)  # no step ran after the cancel
    state = torch.load(tmp_path / STATE_FILE, weights_only=True)
    assert state["epoch"] == 1
    resumed = Trainer(config, settings=settings, run_dir=tmp_path).fit(_tiny(), small_train, synthetic_sets["test"])
    uninterrupted = Trainer(config, settings=settings).fit(_tiny(), small_train, synthetic_sets["test"])
    assert [r.loss for r in resumed.history] == [r.loss for r in uninterrupted.history]


def test_a_run_folder_with_other_settings_is_refused(small_train, tmp_path):
    Trainer(TrainConfig(epochs=1, batch_size=32), settings=LAST, run_dir=tmp_path).fit(_tiny(), small_train)
    with pytest.raises(TrainingError, match="other settings"):
        Trainer(TrainConfig(epochs=2, batch_size=32), settings=LAST, run_dir=tmp_path).fit(_tiny(), small_train)
    with pytest.raises(TrainingError, match="other settings"):  # the seed decides the run as much as the recipe
        Trainer(TrainConfig(epochs=1, batch_size=32), seed=2, settings=LAST, run_dir=tmp_path).fit(_tiny(),
                                                                                                  small_train)


def test_out_of_memory_names_the_batch_size(synthetic_sets):
    model = _tiny()

    def exhausted(*_):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    model.forward = exhausted
    with pytest.raises(TrainingError) as caught:
        Trainer(TrainConfig(epochs=1, batch_size=32)).fit(model, synthetic_sets["train"], synthetic_sets["test"])
    assert "batch size 32" in str(caught.value) and "batch_size (e.g. to 16)" in str(caught.value)


@pytest.mark.slow
def test_killed_process_resumes_with_the_same_metrics(synthetic_sets, tmp_path):
    """kill -9 a real training process mid-epoch; the same command finishes with identical metrics."""
    features = tmp_path / "features.npz"
    train, test = synthetic_sets["train"], synthetic_sets["test"]
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


# ---------------------------------------------------------------- k models trained as one batched model

SEEDS = [1, 2, 3]


def _members():
    return [_tiny(seed) for seed in SEEDS]  # each member initialised with its own seed, as a teacher job does


@pytest.mark.slow
def test_teachers_trained_together_equal_the_same_teachers_trained_alone(small_train, synthetic_sets):
    """Tiny CNN6, deterministic CPU, 2 epochs with SpecAugment and weight averaging: each member of the
    batched model ends where the same teacher trained alone ends (weights, losses, test logits)."""
    config, settings = TrainConfig(epochs=2, batch_size=16, lr=1e-3, weight_averaging=0.5), \
        RunSettings(deterministic=True)
    together = Trainer(config, settings=settings).fit_together(_members(), SEEDS, small_train, synthetic_sets["test"])
    for seed, member in zip(SEEDS, together):
        alone = Trainer(config, seed=seed, settings=settings).fit(_tiny(seed), small_train, synthetic_sets["test"])
        # A grouped convolution rounds differently; Adam divides each gradient by its own running size, so on the
        # few weights whose gradient is near zero that rounding can move the step by up to lr. Compared tensor by
        # tensor, the weights agree to 1e-3 of their size, and the models compute the same function.
        for (name, expected), actual in zip(alone.model.state_dict().items(), member.model.state_dict().values()):
            if expected.is_floating_point():
                gap = (actual - expected).norm() / expected.norm().clamp_min(1e-12)
                assert gap < 1e-3, f"seed {seed}: {name} differs by {gap:.1e} of its size"
            else:
                assert torch.equal(actual, expected), name
        assert [r.loss for r in member.history] == pytest.approx([r.loss for r in alone.history], rel=1e-4)
        torch.testing.assert_close(predict_logits(member.model, synthetic_sets["test"]),
                                   predict_logits(alone.model, synthetic_sets["test"]), rtol=0, atol=1e-5)
        assert member.selected_epoch == alone.selected_epoch
    # three different teachers, not one copied three times
    assert not torch.equal(together[0].model.head.weight, together[1].model.head.weight)


@pytest.mark.slow
def test_teachers_trained_together_cancel_and_resume_as_one(small_train, synthetic_sets, tmp_path):
    cancel, config, settings = CancelToken(), TrainConfig(epochs=3, batch_size=16), RunSettings(deterministic=True)

    def progress(p):
        if p.stage == "train" and p.epoch == 2:
            cancel.cancel()

    with pytest.raises(Cancelled):
        Trainer(config, settings=settings, run_dir=tmp_path, on_progress=progress, cancel=cancel).fit_together(
            _members(), SEEDS, small_train, synthetic_sets["test"])
    assert torch.load(tmp_path / STATE_FILE, weights_only=True)["epoch"] == 1
    epochs_run = []
    resumed = Trainer(config, settings=settings, run_dir=tmp_path,
                      on_progress=lambda p: p.stage == "epoch" and epochs_run.append((p.member, p.epoch))).fit_together(
        _members(), SEEDS, small_train, synthetic_sets["test"])
    assert sorted(epochs_run) == [(m, e) for m in range(3) for e in (2, 3)]  # epoch 1 was not trained again
    uninterrupted = Trainer(config, settings=settings).fit_together(_members(), SEEDS, small_train,
                                                                    synthetic_sets["test"])
    for a, b in zip(resumed, uninterrupted):
        assert [r.loss for r in a.history] == [r.loss for r in b.history]
