"""The review order, the teachers' votes and spread, and their logit-mean ensemble, with numbers."""
import numpy as np
import pytest
import torch

from lungkd.core.analysis.review import (ReviewCandidate, likely_wrong, review_order, review_reason,
                                         teacher_spread)
from lungkd.core.kd.soft_labels import ensemble_probabilities


def candidate(name, annotated, probabilities, teachers=(), recording="a", start=None):
    start = start if start is not None else float(ord(name[0]))
    return ReviewCandidate(recording, start, start + 1, annotated, probabilities, teachers)


def order(candidates):
    return [candidates[i].recording + ":" + str(candidates[i].start) for i in review_order(candidates)]


def test_the_lowest_probability_of_the_cycles_class_first():
    cycles = {
        "sure normal": candidate("a", 0, [0.90, 0.05, 0.03, 0.02]),
        "confidently contradicted": candidate("b", 1, [0.95, 0.03, 0.01, 0.01]),
        "unsure crackle": candidate("c", 1, [0.30, 0.40, 0.20, 0.10]),
        "narrowly contradicted": candidate("d", 1, [0.50, 0.46, 0.03, 0.01]),
        "no class, unsure": candidate("e", None, [0.30, 0.31, 0.29, 0.10]),
        "fairly sure wheeze": candidate("f", 2, [0.10, 0.10, 0.70, 0.10]),
        "not predicted": candidate("g", 0, None),
    }
    names = list(cycles)
    ranked = [names[i] for i in review_order(list(cycles.values()))]
    # the confidently contradicted label before the narrowly contradicted one, and an agreeing but unsure one
    # (40 %) before the narrow contradiction (46 %): the order before this one put every contradiction first,
    # the least confident first
    assert ranked == ["confidently contradicted", "no class, unsure", "unsure crackle", "narrowly contradicted",
                      "fairly sure wheeze", "sure normal", "not predicted"]


def test_a_label_is_likely_wrong_below_even_odds_and_every_contradiction_is():
    assert likely_wrong(candidate("a", 1, [0.50, 0.46, 0.03, 0.01]))  # contradicted, however narrowly
    assert likely_wrong(candidate("a", 1, [0.30, 0.40, 0.20, 0.10]))  # its own class, but at 40 %
    assert not likely_wrong(candidate("a", 1, [0.30, 0.50, 0.10, 0.10]))
    assert not likely_wrong(candidate("a", None, [0.30, 0.31, 0.29, 0.10]))  # no label to be wrong
    assert not likely_wrong(candidate("a", 1, None))  # not predicted yet


def test_teacher_disagreement_decides_between_equally_confident_cycles():
    probabilities = [0.2, 0.6, 0.1, 0.1]
    unanimous = [[0.1, 0.8, 0.05, 0.05]] * 5
    split_3_2 = [[0.1, 0.8, 0.05, 0.05]] * 3 + [[0.8, 0.1, 0.05, 0.05]] * 2
    split_2_2_1 = [[0.1, 0.8, 0.05, 0.05]] * 2 + [[0.8, 0.1, 0.05, 0.05]] * 2 + [[0.1, 0.1, 0.75, 0.05]]
    cycles = [candidate("a", 1, probabilities, unanimous), candidate("b", 1, probabilities, split_3_2),
              candidate("c", 1, [0.2, 0.604, 0.096, 0.1], split_2_2_1),  # 60 % as shown, like the others
              candidate("d", 1, [0.3, 0.59, 0.01, 0.1], unanimous)]  # 59 %: less sure, so first regardless
    assert [cycles[i].start for i in review_order(cycles)] == [ord("d"), ord("c"), ord("b"), ord("a")]


def test_equal_cycles_keep_recording_and_time_order():
    p = [0.7, 0.1, 0.1, 0.1]
    cycles = [candidate("x", 0, p, recording="b", start=1.0), candidate("x", 0, p, recording="a", start=5.0),
              candidate("x", 0, p, recording="a", start=2.0)]
    assert order(cycles) == ["a:2.0", "a:5.0", "b:1.0"]


def test_teacher_spread_is_the_share_voting_against_the_majority():
    assert teacher_spread([]) == 0.0
    assert teacher_spread([2, 2, 2, 2, 2]) == 0.0
    assert teacher_spread([1, 1, 1, 0, 0]) == pytest.approx(0.4)
    assert teacher_spread([1, 1, 0, 0, 2]) == pytest.approx(0.6)
    assert teacher_spread([0, 1, 2, 3]) == pytest.approx(0.75)


def test_the_ensemble_is_the_softmax_of_the_mean_logit():
    logits = torch.tensor([[2.0, 0.5, -1.0, 0.0], [0.1, 1.5, 0.3, -2.0], [-0.5, 0.2, 3.0, 0.1]])
    probabilities = torch.softmax(logits, dim=1).numpy()
    expected = torch.softmax(logits.mean(dim=0), dim=0).numpy()
    np.testing.assert_allclose(ensemble_probabilities(probabilities), expected, rtol=1e-6)
    assert not np.allclose(ensemble_probabilities(probabilities), probabilities.mean(axis=0), atol=1e-3)


def test_the_reason_says_why_a_cycle_is_queued():
    teachers = [[0.1, 0.8, 0.05, 0.05]] * 3 + [[0.8, 0.1, 0.05, 0.05]] * 2
    assert review_reason(candidate("a", 1, [0.9, 0.05, 0.03, 0.02], teachers)) == \
        "annotated crackle, which the model gives 5%: likely wrong · model: normal 90% · 2 of 5 teachers vote " \
        "against the others"
    assert review_reason(candidate("a", 1, [0.3, 0.6, 0.05, 0.05])) == "model: crackle 60%"
    assert review_reason(candidate("a", None, [0.1, 0.1, 0.7, 0.1])) == "no class yet · model: wheeze 70%"
