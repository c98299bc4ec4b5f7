"""The pooled bootstrap of bench/kd_effect.py (bench/pooled_bootstrap.py) on small hand-made score tables whose
answers are worked out by hand: row 0 of a table is the whole test set, further rows patient resamples, columns
training seeds."""
import numpy as np
import pytest

from bench.pooled_bootstrap import (disjoint_pairs, ensemble_members, ensemble_sd_ratio, mean_difference, sd_ratio,
                                    verdict)

MANY = 20_000  # draws, so that frequencies land within a percent of their probabilities


def frequencies(replicates: np.ndarray, values: list[float]) -> list[float]:
    assert set(np.round(replicates, 9)) <= set(values)
    return [float(np.mean(np.isclose(replicates, v))) for v in values]


def test_one_dataset_draws_its_seeds_and_patients_only():
    # two seeds whose gains are 2 and 6 (no patient resamples): the mean of two seeds drawn with replacement is
    # 2, 4 or 6 with probabilities 1/4, 1/2, 1/4
    distilled, hard = np.array([[72.0, 76.0]]), np.array([[70.0, 70.0]])
    single = mean_difference([(distilled, hard)], draws=MANY)
    assert (single.point, single.low, single.high) == (4.0, 2.0, 6.0)
    assert frequencies(single.replicates, [2, 4, 6]) == pytest.approx([0.25, 0.5, 0.25], abs=0.01)


def test_identical_datasets_give_the_single_dataset_answer():
    # the same gains, and the datasets do not differ: the dataset level adds nothing, and each replicate
    # averages three independent draws of the single dataset's (variance 2, the two-seed mean above)
    rng = np.random.default_rng(5)
    hard = rng.normal(70, 5, (40, 6)).round(1)
    distilled = hard + rng.normal(3, 2, (40, 6)).round(1)
    single = mean_difference([(distilled, hard)], draws=MANY)
    tripled = mean_difference([(distilled, hard)] * 3, draws=MANY)
    assert tripled.point == pytest.approx(single.point)
    assert tripled.replicates.mean() == pytest.approx(single.replicates.mean(), abs=0.02)
    assert tripled.replicates.var() == pytest.approx(single.replicates.var() / 3, rel=0.05)
    assert single.low < tripled.low < tripled.point < tripled.high < single.high


def test_a_constant_gain_gives_a_zero_width_interval_at_that_gain():
    rng = np.random.default_rng(1)
    datasets = []
    for patients_resamples, seeds in ((30, 8), (50, 5)):
        hard = rng.integers(55, 90, (1 + patients_resamples, seeds)).astype(float)
        datasets.append((hard + 3.0, hard))
    pooled = mean_difference(datasets)
    assert (pooled.point, pooled.low, pooled.high) == (3.0, 3.0, 3.0)
    assert verdict(pooled) == "the interval excludes 0"


def test_two_datasets_computed_by_hand():
    # dataset X: gain 1 on the whole test set, 0 or 2 on its two patient resamples; dataset Y: 3, and 2 or 4.
    # Drawn XX (1/4): mean of two of {0, 2}; YY (1/4): of two of {2, 4}; XY or YX (1/2): x/2 + y/2. In all,
    # 0, 1, 2, 3, 4 with probabilities 1, 4, 6, 4, 1 sixteenths.
    zeros = np.zeros((3, 1))
    x, y = np.array([[1.0], [0.0], [2.0]]), np.array([[3.0], [2.0], [4.0]])
    pooled = mean_difference([(x, zeros), (y, zeros)], draws=MANY)
    assert (pooled.point, pooled.low, pooled.high) == (2.0, 0.0, 4.0)
    assert frequencies(pooled.replicates, [0, 1, 2, 3, 4]) == pytest.approx(np.array([1, 4, 6, 4, 1]) / 16, abs=0.01)


def test_resampling_datasets_widens_the_interval_when_datasets_disagree():
    # datasets that disagree without any seed or patient noise: +2 and -2, so only the dataset level moves the
    # mean (-2, 0, +2 with probabilities 1/4, 1/2, 1/4); agreeing datasets with the same spread stay at 0
    flat = np.zeros((1, 4))
    disagree = mean_difference([(flat + 2, flat), (flat - 2, flat)], draws=MANY)
    agree = mean_difference([(flat, flat), (flat, flat)], draws=MANY)
    assert (disagree.point, disagree.low, disagree.high) == (0.0, -2.0, 2.0)
    assert frequencies(disagree.replicates, [-2, 0, 2]) == pytest.approx([0.25, 0.5, 0.25], abs=0.01)
    assert (agree.low, agree.high) == (0.0, 0.0)
    assert verdict(disagree).startswith("inconclusive")
    assert verdict(agree) == "the interval is narrower than ±1.5"


def test_an_ensemble_is_compared_with_its_members_drawn_on_their_own():
    # an ensemble at 80 against members at 74 and 78: members drawn with replacement average 74, 76 or 78
    ensemble, members = np.array([[80.0]]), np.array([[74.0, 78.0]])
    gap = mean_difference([(ensemble, members)], paired=False, draws=MANY)
    assert (gap.point, gap.low, gap.high) == (4.0, 2.0, 6.0)


def test_the_sd_ratio_on_hand_computed_seeds():
    # dataset 1: hard-label deviations four times the distilled ones (SD 4 against 1), dataset 2: twice (2
    # against 1). Any draw of seed pairs keeps each dataset's ratio; pooled, the variances average:
    # sqrt((16 + 4) / (1 + 1)) = sqrt(10), and replicates mixing the two datasets fall between 2 and 4.
    distilled = np.array([[75.0, 76.0, 77.0]])
    first, second = (distilled, np.array([[72.0, 76.0, 80.0]])), (distilled, np.array([[74.0, 76.0, 78.0]]))
    hard_over_distilled = [(hard, soft) for soft, hard in (first, second)]
    one = sd_ratio(hard_over_distilled[:1])
    two = sd_ratio(hard_over_distilled[1:])
    pooled = sd_ratio(hard_over_distilled, draws=MANY)
    assert (one.point, one.low, one.high) == pytest.approx((4.0, 4.0, 4.0))
    assert (two.point, two.low, two.high) == pytest.approx((2.0, 2.0, 2.0))
    assert pooled.point == pytest.approx(np.sqrt(10))
    assert 2.0 - 1e-9 <= pooled.low < pooled.point < pooled.high <= 4.0 + 1e-9


def test_a_draw_of_one_seed_only_has_no_spread_and_is_left_out():
    # three seeds: a ninth of the draws repeat one seed three times, where the ratio is 0 / 0
    soft, hard = np.array([[75.0, 76.0, 77.0]]), np.array([[72.0, 76.0, 80.0]])
    ratio = sd_ratio([(hard, soft)], draws=MANY)
    assert np.isnan(ratio.replicates).mean() == pytest.approx(1 / 9, abs=0.01)
    assert (ratio.low, ratio.high) == pytest.approx((4.0, 4.0))


def test_one_seed_has_no_spread_to_compare():
    ratio = sd_ratio([(np.array([[70.0], [71.0]]), np.array([[75.0], [74.0]]))])
    assert np.isnan([ratio.point, ratio.low, ratio.high]).all()


def test_the_ensemble_sd_ratio_by_hand():
    # four single models, ensembles of two: (0,1) (0,2) (0,3) (1,2) (1,3) (2,3); the pairs without a model in
    # common are the first and last, the second and fifth, the third and fourth
    members = ensemble_members(4, 2)
    assert members == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)]
    assert disjoint_pairs(members).tolist() == [[0, 5], [1, 4], [2, 3]]
    # singles 70, 72, 74, 76: variance 20/3. Ensemble gaps 73-73, 74-72, 71-75: (0 + 4 + 16) / 3 / 2 = 10/3.
    singles, ensembles = np.array([[70.0, 72.0, 74.0, 76.0]]), np.array([[73.0, 74.0, 71.0, 75.0, 72.0, 73.0]])
    ratio = ensemble_sd_ratio([(singles, ensembles)], k=2)
    assert ratio.point == pytest.approx(np.sqrt(2))
    assert (ratio.low, ratio.high) == pytest.approx((np.sqrt(2), np.sqrt(2)))


def test_the_ensemble_sd_ratio_needs_two_ensembles_without_a_common_model():
    with pytest.raises(ValueError, match="at least 6"):
        ensemble_sd_ratio([(np.zeros((1, 5)), np.zeros((1, 10)))], k=3)
