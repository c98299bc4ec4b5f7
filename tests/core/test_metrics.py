"""The ICBHI metric on hand-computed cases, and its spread over seeds and patients."""
import math

import numpy as np
import pytest

from lungkd.core.metrics import (confusion_matrix, icbhi_scores, mean_std, patient_bootstrap_ci,
                                 scores_from_logits)

# 4 normals (3 right), 2 crackles (1 right, 1 called wheeze), 2 wheezes (right), 2 both (1 right, 1 called normal).
Y_TRUE = [0, 0, 0, 0, 1, 1, 2, 2, 3, 3]
Y_PRED = [0, 0, 0, 1, 1, 2, 2, 2, 3, 0]


def test_hand_computed_case():
    s = icbhi_scores(Y_TRUE, Y_PRED)
    assert s.confusion.tolist() == [[3, 1, 0, 0],
                                    [0, 1, 1, 0],
                                    [0, 0, 2, 0],
                                    [1, 0, 0, 1]]
    assert s.sp == pytest.approx(75.0)
    assert s.se == pytest.approx(100 * 4 / 6)
    assert s.score == pytest.approx((75.0 + 100 * 4 / 6) / 2)  # 70.8333
    assert s.recall.tolist() == pytest.approx([75.0, 50.0, 100.0, 50.0])
    # F1 = 2TP / (2TP + FP + FN): normal 6/8, crackle 2/4, wheeze 4/5, both 2/3
    assert s.macro_f1 == pytest.approx(100 * (6 / 8 + 2 / 4 + 4 / 5 + 2 / 3) / 4)  # 67.9167
    assert s.counts.tolist() == [4, 2, 2, 2]
    assert s.n == 10
    assert str(s) == "Sp 75.00  Se 66.67  Score 70.83"


def test_an_abnormal_cycle_predicted_as_another_abnormal_class_is_a_miss():
    # Every abnormal cycle is called abnormal, but only the crackle gets its own class.
    s = icbhi_scores([1, 2, 3], [1, 1, 2])
    assert s.se == pytest.approx(100 / 3)  # a lenient "any abnormal" Se would give 100


def test_all_normal_predictions_give_sp_100_se_0():
    s = icbhi_scores([0, 0, 1, 2, 3], [0, 0, 0, 0, 0])
    assert (s.sp, s.se, s.score) == (100.0, 0.0, 50.0)
    assert s.recall.tolist() == [100.0, 0.0, 0.0, 0.0]
    # normal: 2TP=4, FP=3 -> 4/7; the other three classes have F1 0
    assert s.macro_f1 == pytest.approx(100 * (4 / 7) / 4)
    assert s.confusion[:, 0].tolist() == [2, 1, 1, 1]


def test_no_normal_cycles_leave_sp_and_score_undefined():
    s = icbhi_scores([1, 2], [1, 1])
    assert math.isnan(s.sp) and math.isnan(s.score)
    assert s.se == 50.0
    assert np.isnan(s.recall[0]) and np.isnan(s.recall[3])
    assert s.recall[1:3].tolist() == [100.0, 0.0]
    # normal and both occur nowhere and are left out; crackle 2/3, wheeze 0
    assert s.macro_f1 == pytest.approx(100 * (2 / 3) / 2)
    assert s.to_dict()["sp"] is None and s.to_dict()["score"] is None


def test_no_abnormal_cycles_leave_se_undefined():
    s = icbhi_scores([0, 0], [0, 3])
    assert s.sp == 50.0
    assert math.isnan(s.se) and math.isnan(s.score)


def test_empty_input_gives_nan_and_a_zero_confusion_matrix():
    s = icbhi_scores([], [])
    assert math.isnan(s.sp) and math.isnan(s.se) and math.isnan(s.macro_f1)
    assert s.confusion.sum() == 0 and s.n == 0


def test_bad_labels_and_lengths_are_rejected():
    with pytest.raises(ValueError, match="0..3"):
        icbhi_scores([0, 4], [0, 0])
    with pytest.raises(ValueError, match="0..3"):
        icbhi_scores([0.5], [0])
    with pytest.raises(ValueError, match="2 labels but y_pred has 1"):
        confusion_matrix([0, 1], [0])


def test_scores_from_logits_use_argmax_and_accept_tensors():
    torch = pytest.importorskip("torch")
    logits = np.full((len(Y_PRED), 4), -1.0)
    logits[np.arange(len(Y_PRED)), Y_PRED] = 2.0
    expected = icbhi_scores(Y_TRUE, Y_PRED)
    for got in (scores_from_logits(logits, Y_TRUE),
                scores_from_logits(torch.tensor(logits, dtype=torch.bfloat16), torch.tensor(Y_TRUE))):
        assert got.score == expected.score
        assert (got.confusion == expected.confusion).all()
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        scores_from_logits(np.zeros((3, 2)), [0, 0, 0])


def test_mean_std_uses_the_sample_standard_deviation():
    m = mean_std([1.0, 2.0, 3.0, 4.0])
    assert m.mean == 2.5
    assert m.std == pytest.approx(math.sqrt(5 / 3))
    assert str(m) == "2.50 ± 1.29"
    one = mean_std([62.0])
    assert one.n == 1 and math.isnan(one.std) and str(one) == "62.00 ± n/a"


def test_bootstrap_resamples_patients_not_cycles():
    # Patient A is all right (Score 100), patient B all wrong (Score 0). Drawing two patients gives
    # AA, AB or BB -> Score 100, 50 or 0 with probabilities 1/4, 1/2, 1/4 and nothing else.
    y_true = [0, 1, 0, 1]
    y_pred = [0, 1, 1, 0]
    pids = ["A", "A", "B", "B"]
    ci = patient_bootstrap_ci(y_true, y_pred, pids, n_boot=4000, seed=1)
    values, counts = np.unique(ci.replicates, return_counts=True)
    assert values.tolist() == [0.0, 50.0, 100.0]
    assert counts / ci.n_boot == pytest.approx([0.25, 0.5, 0.25], abs=0.03)
    assert (ci.score, ci.low, ci.high, ci.n_patients, ci.n_valid) == (50.0, 0.0, 100.0, 2, 4000)
    assert ci.to_dict() == {"score": 50.0, "low": 0.0, "high": 100.0, "alpha": 0.05, "n_boot": 4000,
                            "n_valid": 4000, "n_patients": 2}


def test_bootstrap_of_identical_patients_has_zero_width():
    pids = np.repeat(np.arange(10), 3)
    ci = patient_bootstrap_ci(np.tile([0, 0, 1], 10), np.tile([0, 1, 1], 10), pids, n_boot=200)
    assert ci.score == ci.low == ci.high == 75.0


def test_bootstrap_matches_a_loop_over_resampled_patients():
    rng = np.random.default_rng(5)
    pids = rng.integers(0, 40, size=600)
    y_true = rng.integers(0, 4, size=600)
    y_pred = np.where(rng.random(600) < 0.6, y_true, rng.integers(0, 4, size=600))
    ci = patient_bootstrap_ci(y_true, y_pred, pids, n_boot=2000, seed=3)

    patients = np.unique(pids)
    loop = []
    for _ in range(2000):
        chosen = rng.choice(patients, size=patients.size, replace=True)
        idx = np.concatenate([np.flatnonzero(pids == p) for p in chosen])
        loop.append(icbhi_scores(y_true[idx], y_pred[idx]).score)
    assert ci.score == pytest.approx(icbhi_scores(y_true, y_pred).score)
    assert ci.low == pytest.approx(np.percentile(loop, 2.5), abs=1.0)
    assert ci.high == pytest.approx(np.percentile(loop, 97.5), abs=1.0)
    assert ci.low < ci.score < ci.high


def test_bootstrap_is_reproducible_and_skips_replicates_without_normals():
    y_true, y_pred, pids = [0, 1, 1], [0, 1, 0], ["A", "B", "B"]
    a = patient_bootstrap_ci(y_true, y_pred, pids, n_boot=500, seed=7)
    b = patient_bootstrap_ci(y_true, y_pred, pids, n_boot=500, seed=7)
    assert (a.low, a.high) == (b.low, b.high)
    # AA has no abnormal cycle and BB no normal one: only AB (half the replicates) has a Score
    assert a.n_valid == np.isfinite(a.replicates).sum()
    assert 0.4 < a.n_valid / a.n_boot < 0.6
    assert a.low == a.high == 75.0
    assert "95% CI" in str(a)
