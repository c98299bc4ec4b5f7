"""Soft-label arithmetic against hand-computed logits (docs/method.md section 9)."""
import math

import numpy as np
import pytest
import torch

from lungkd.core.recipes import RecipeError, SoftLabelSpec
from lungkd.core.kd.soft_labels import (RandomTeacherTargets, SoftLabelError, build_targets,
                                     curated_members, ensemble_logits, mean_teacher_targets, noisy_onehot_targets)

# Two cycles, three teachers, four classes.
LOGITS = np.array([
    [[2.0, 0.0, 0.0, 0.0], [0.0, 2.0, 0.0, 0.0], [1.0, 1.0, 0.0, -2.0]],
    [[0.0, 0.0, 3.0, 0.0], [0.0, 0.0, 0.0, 3.0], [0.0, 0.0, 0.0, 0.0]],
])


def _softmax(v):
    e = [math.exp(x) for x in v]
    return [x / sum(e) for x in e]


def test_mean_teacher_is_softmax_of_the_mean_logit_not_the_mean_probability():
    targets = mean_teacher_targets(LOGITS, [0, 1])
    assert targets[0] == pytest.approx(_softmax([1.0, 1.0, 0.0, 0.0]))
    assert targets[1] == pytest.approx(_softmax([0.0, 0.0, 1.5, 1.5]))
    mean_of_probabilities = (np.array(_softmax([2, 0, 0, 0])) + np.array(_softmax([0, 2, 0, 0]))) / 2
    assert not np.allclose(targets[0], mean_of_probabilities)
    e = math.exp(1.0)
    assert targets[0][0] == pytest.approx(e / (2 * e + 2))  # 0.3655...


def test_k_counts_the_first_k_teachers():
    three = mean_teacher_targets(LOGITS, [0, 1, 2])
    assert three[0] == pytest.approx(_softmax([1.0, 1.0, 0.0, -2.0 / 3.0]))
    spec = SoftLabelSpec.parse("mean_2")
    assert torch.allclose(build_targets(spec, LOGITS, np.array([0, 2])), torch.tensor(mean_teacher_targets(LOGITS, [0, 1]),
                                                                                     dtype=torch.float32))


def test_single_teacher_is_mean_1():
    spec = SoftLabelSpec.parse("single")
    assert (spec.mode, spec.k) == ("mean", 1)
    assert build_targets(spec, LOGITS, np.array([0, 2]))[1].tolist() == pytest.approx(_softmax([0, 0, 3, 0]))


def test_random_teacher_draws_per_cycle_and_per_epoch():
    many = np.repeat(LOGITS[:1], 2000, axis=0)  # 2000 identical cycles
    provider = RandomTeacherTargets(many, [0, 1, 2], seed=5)
    epoch1, epoch2 = provider.draws(1), provider.draws(2)
    assert set(epoch1) == {0, 1, 2}
    assert np.bincount(epoch1, minlength=3) / 2000 == pytest.approx([1 / 3] * 3, abs=0.05)  # uniform
    assert (epoch1 != epoch2).mean() == pytest.approx(2 / 3, abs=0.05)  # drawn anew every epoch
    assert np.array_equal(epoch1, RandomTeacherTargets(many, [0, 1, 2], seed=5).draws(1))  # reproducible
    targets = provider.for_epoch(1).numpy()
    for row, teacher in zip(targets[:20], epoch1[:20]):
        assert row == pytest.approx(_softmax(LOGITS[0, teacher]), abs=1e-6)


def test_random_k_uses_only_the_first_k_teachers():
    provider = build_targets(SoftLabelSpec.parse("random_2", seed=1), np.repeat(LOGITS, 500, axis=0), np.zeros(1000, int))
    assert set(provider.draws(3)) == {0, 1}


def test_curated_picks_the_best_scoring_teachers():
    assert curated_members([60.0, 64.0, 62.0], 2) == [1, 2]
    assert curated_members([60.0, 60.0, 50.0], 1) == [0]  # ties go to the lower seed
    targets = build_targets(SoftLabelSpec.parse("curated_2"), LOGITS, np.array([0, 2]), [60.0, 64.0, 62.0])
    assert targets[0].tolist() == pytest.approx(_softmax([0.5, 1.5, 0.0, -1.0]))
    with pytest.raises(SoftLabelError, match="Scores"):
        build_targets(SoftLabelSpec.parse("curated_2"), LOGITS, np.array([0, 2]))


def test_ensemble_prediction_averages_raw_logits():
    mean = ensemble_logits(LOGITS, [0, 1, 2])
    assert mean[1].tolist() == pytest.approx([0.0, 0.0, 1.0, 1.0])
    assert mean[0].argmax() == 0  # logits [1, 1, 0, -2/3]: ties resolve to the first class


def test_more_teachers_than_trained_is_refused():
    with pytest.raises(SoftLabelError, match="needs 5 teachers but only 3"):
        build_targets(SoftLabelSpec.parse("mean_5"), LOGITS, np.array([0, 2]))


def test_unknown_mode_names_the_allowed_ones():
    with pytest.raises(RecipeError, match="unknown soft-label mode 'median_3'") as caught:
        SoftLabelSpec.parse("median_3")
    assert "random_K" in str(caught.value)


def test_noised_one_hot_is_a_distribution_around_the_label():
    labels = np.array([0, 1, 2, 3] * 500)
    targets = noisy_onehot_targets(labels, 0.1, seed=0)
    assert targets.sum(axis=1) == pytest.approx(np.ones(2000))
    assert (targets >= 0).all()
    assert (targets.argmax(axis=1) == labels).mean() > 0.99
    off = targets[labels == 0][:, 1]
    assert off.mean() == pytest.approx(0.1 / math.sqrt(2 * math.pi), abs=0.01)  # E[max(0, N(0, 0.1))] before renorm
    assert np.array_equal(targets, noisy_onehot_targets(labels, 0.1, seed=0))


def test_teacher_variance_noise_scales_with_teacher_disagreement():
    agree = np.repeat(np.array([[[3.0, 0, 0, 0]] * 3]), 400, axis=0)
    disagree = np.repeat(LOGITS[:1], 400, axis=0)
    labels = np.zeros(400, int)
    calm = build_targets(SoftLabelSpec.parse("onehot_teacher_noise"), agree, labels).numpy()
    noisy = build_targets(SoftLabelSpec.parse("onehot_teacher_noise"), disagree, labels).numpy()
    assert np.allclose(calm, np.eye(4)[labels])  # teachers agree: no spread, no noise
    assert noisy[:, 0].std() > 0.01
