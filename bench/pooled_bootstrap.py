"""The statistics of bench/kd_effect.py: a hierarchical bootstrap over generated datasets, their test patients
and training seeds, on score tables (numpy only; nothing is trained here).

A score table holds one dataset's ICBHI Scores of a group of models: row 0 on the whole test set, every further
row on the test set resampled by patient (the same resamples for every model of that dataset), one column per
model. Two tables compared as pairs (distilled students and hard-label students) have the same seeds in the same
column order.

One bootstrap replicate draws as many datasets as there are, with replacement; for every drawn dataset one of
its patient resamples (a row) and as many training seeds as it has, with replacement (columns); a dataset drawn
twice gets two draws of its own. The 95 % interval is the 2.5th and 97.5th percentile of the replicates. With
one dataset the first level draws it every time: the single-dataset bootstrap of patients and seeds. With
several, resampling every level counts the seed and patient noise at its own level and again in the datasets'
spread, so the pooled interval errs on the wide side.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from itertools import combinations
from typing import Callable, Sequence

import numpy as np

DRAWS = 2000
DECISIVE_HALF_WIDTH = 1.5  # points: an interval this narrow settles the question even where it includes 0

Tables = Sequence[np.ndarray]  # one dataset's score tables, each (rows, models)


@dataclass(frozen=True)
class Estimate:
    point: float  # on the whole test sets, every seed
    low: float
    high: float
    replicates: np.ndarray = field(repr=False)


def interval(replicates: np.ndarray) -> tuple[float, float]:
    """The 95 % percentile interval. Order statistics, not interpolated, so an infinite replicate (a ratio over
    a spread of 0) is counted as one rather than turning its neighbours into NaN. A NaN replicate (a ratio of
    spreads where every seed drawn was the same one, 0 / 0) says nothing of the spread and is left out."""
    defined = replicates[~np.isnan(replicates)]
    if defined.size == 0:  # one seed: no spread to compare
        return float("nan"), float("nan")
    low, high = np.quantile(defined, [0.025, 0.975], method="inverted_cdf")
    return float(low), float(high)


def verdict(estimate: Estimate) -> str:
    """The rule of bench/kd_effect.py for a difference: decided when the interval excludes 0 or is narrow."""
    if estimate.low > 0 or estimate.high < 0:
        return "the interval excludes 0"
    if estimate.high - estimate.low < 2 * DECISIVE_HALF_WIDTH:
        return f"the interval is narrower than ±{DECISIVE_HALF_WIDTH:g}"
    return f"inconclusive: the interval includes 0 and is wider than ±{DECISIVE_HALF_WIDTH:g}"


def mean_difference(datasets: Sequence[tuple[np.ndarray, np.ndarray]], *, paired: bool = True,
                    draws: int = DRAWS, seed: int = 0) -> Estimate:
    """Pooled mean of a - b: per dataset the mean of a's columns minus the mean of b's, then the mean over
    datasets (each weighs the same). `paired`: a's and b's columns are the same seeds, drawn together; otherwise
    each table's columns are drawn on their own (an ensemble, one column, against its members)."""
    return _bootstrap(datasets, lambda s: (s[0].mean(axis=1) - s[1].mean(axis=1))[:, None],
                      lambda values: values[..., 0].mean(axis=1), "paired" if paired else "each", draws, seed)


def sd_ratio(datasets: Sequence[tuple[np.ndarray, np.ndarray]], *, draws: int = DRAWS, seed: int = 0) -> Estimate:
    """How many times larger a's seed-to-seed standard deviation is than b's, for paired tables: the square
    root of (the mean over datasets of a's variance across seeds) over (the same of b's). Pooling the variances
    within each dataset keeps datasets that differ in level from counting as spread."""
    return _bootstrap(datasets, lambda s: np.stack([_seed_variance(s[0]), _seed_variance(s[1])], axis=1),
                      _root_ratio, "paired", draws, seed)


def ensemble_members(models: int, k: int) -> list[tuple[int, ...]]:
    """Every ensemble of k of `models` single models, in the column order `ensemble_sd_ratio` expects."""
    return list(combinations(range(models), k))


def ensemble_sd_ratio(datasets: Sequence[tuple[np.ndarray, np.ndarray]], k: int, *, draws: int = DRAWS,
                      seed: int = 0) -> Estimate:
    """How many times larger a single model's seed-to-seed standard deviation is than a k-model ensemble's.

    Per dataset: `singles` (rows, H), H >= 2k models of one recipe and H seeds; `ensembles` (rows, C), the
    Score of every k of them (columns in `ensemble_members(H, k)` order). One ensemble shows no spread, so an
    ensemble's variance is the mean of (s_A - s_B)^2 / 2 over every pair of ensembles A, B with no model in
    common: two independent ensembles, so every term is unbiased. Seeds are not resampled (a seed drawn twice
    would make an ensemble of fewer than k models); their noise reaches the pooled interval through the spread
    of the datasets' estimates, so one dataset's interval covers its test patients only.
    """
    first_singles = np.asarray(datasets[0][0])
    pairs = disjoint_pairs(ensemble_members(first_singles.shape[1], k))
    if len(pairs) == 0:
        raise ValueError(f"{first_singles.shape[1]} single models hold no two ensembles of {k} without a model in "
                         f"common; it needs at least {2 * k}.")

    def variances(selected: list[np.ndarray]) -> np.ndarray:
        singles, ensembles = selected
        gaps = ensembles[:, pairs[:, 0]] - ensembles[:, pairs[:, 1]]
        return np.stack([_seed_variance(singles), (gaps ** 2).mean(axis=1) / 2], axis=1)

    return _bootstrap(datasets, variances, _root_ratio, "all", draws, seed)


def disjoint_pairs(members: list[tuple[int, ...]]) -> np.ndarray:
    """(pairs, 2) indices into `members` of every two ensembles with no model in common, each pair once."""
    sets = [frozenset(m) for m in members]
    return np.array([(i, j) for i, j in combinations(range(len(sets)), 2) if not sets[i] & sets[j]],
                    dtype=int).reshape(-1, 2)


def _seed_variance(scores: np.ndarray) -> np.ndarray:
    """(n,) sample variances across the seeds of (n, seeds) scores; NaN with one seed."""
    return scores.var(axis=1, ddof=1) if scores.shape[1] > 1 else np.full(len(scores), np.nan)


def _root_ratio(values: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.sqrt(values[..., 0].mean(axis=1) / values[..., 1].mean(axis=1))


def _bootstrap(datasets: Sequence[Tables], per_dataset: Callable[[list[np.ndarray]], np.ndarray],
               combine: Callable[[np.ndarray], np.ndarray], columns: str, draws: int, seed: int) -> Estimate:
    """`per_dataset`: from each table's selected scores, (n, seeds) arrays, the dataset's values (n, m);
    `combine`: from (n, datasets, m) values, the statistic (n,). `columns`: "paired" (one seed draw for all
    tables of a dataset), "each" (one per table) or "all" (every seed, not resampled)."""
    tables = [[np.asarray(table, dtype=float) for table in group] for group in datasets]
    if not tables:
        raise ValueError("no dataset to pool.")
    whole = np.stack([per_dataset([table[:1] for table in group])[0] for group in tables])
    point = float(combine(whole[None])[0])
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(tables), (draws, len(tables)))
    values = np.empty((draws, len(tables), whole.shape[1]))
    for slot in range(len(tables)):
        for dataset in np.unique(picks[:, slot]):
            chosen = np.flatnonzero(picks[:, slot] == dataset)
            values[chosen, slot] = per_dataset(_select(tables[dataset], len(chosen), columns, rng))
    replicates = combine(values)
    return Estimate(point, *interval(replicates), replicates)


def _select(group: list[np.ndarray], n: int, columns: str, rng: np.random.Generator) -> list[np.ndarray]:
    """n draws of one dataset: a patient resample each (row 0, the whole test set, where there is none) and
    its seeds; (n, seeds) per table."""
    rows = group[0].shape[0]
    picked = (rng.integers(1, rows, n) if rows > 1 else np.zeros(n, dtype=int))[:, None]
    if columns == "all":
        return [table[picked[:, 0]] for table in group]
    if columns == "paired":
        widths = {table.shape[1] for table in group}
        if len(widths) != 1:
            raise ValueError(f"paired tables need the same seeds, but their widths differ: {sorted(widths)}.")
        seeds = rng.integers(0, widths.pop(), (n, group[0].shape[1]))
        return [table[picked, seeds] for table in group]
    return [table[picked, rng.integers(0, table.shape[1], (n, table.shape[1]))] for table in group]
