"""The tables of bench/kd_effect.py, from the results it keeps of each finished dataset (one JSON lines file
each): the models' Scores on every generated dataset, and pooled over datasets with bench/pooled_bootstrap.py.

A dataset's file holds its test labels as written and as the generator made them (true), the test patients,
and the raw test logits of every model: the k teachers, the distilled students and the hard-label students
(a seed pair each). Everything printed is computed from these, so the tables can be printed again, and
differently, without training anything.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.pooled_bootstrap import (Estimate, ensemble_members, ensemble_sd_ratio, mean_difference, sd_ratio,
                                    verdict)
from lungkd.core.kd.soft_labels import ensemble_logits
from lungkd.core.labels import NUM_CLASSES
from lungkd.core.metrics import per_patient_confusions, sp_se_score

TRUTHS = {"written": "the test labels as written", "true": "the generator's true labels"}
ROLES = ("teacher", "student", "baseline")  # the k teachers, the distilled students, the hard-label students


@dataclass
class DatasetResult:
    """One generated dataset's finished comparison, as its results file keeps it."""

    data_seed: int
    label_noise: float
    meta: dict
    labels: dict[str, np.ndarray]  # per truth
    patients: np.ndarray
    logits: dict[str, np.ndarray]  # per role: (models, N, 4)

    @property
    def label(self) -> str:
        return f"data seed {self.data_seed}"


def result_lines(meta: dict, labels: dict[str, np.ndarray], patients: np.ndarray,
                 models: list[tuple[str, int, np.ndarray]]) -> str:
    """A dataset's results file: a line of what it is, then one line per model (role, seed, test logits)."""
    head = {"kind": "dataset", **meta, "patients": [str(p) for p in patients],
            **{f"labels_{truth}": labels[truth].tolist() for truth in TRUTHS}}
    rows = [{"kind": "model", "role": role, "seed": seed, "test_logits": logits.astype(float).tolist()}
            for role, seed, logits in models]
    return "".join(json.dumps(row) + "\n" for row in [head, *rows])


def load_result(path: Path) -> DatasetResult:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    head = rows[0]
    meta = {key: value for key, value in head.items() if key != "kind" and not key.startswith(("labels_", "patients"))}
    logits = {role: np.array([row["test_logits"] for row in rows[1:] if row["role"] == role]) for role in ROLES}
    return DatasetResult(head["data_seed"], head["label_noise"], meta,
                         {truth: np.array(head[f"labels_{truth}"]) for truth in TRUTHS}, np.array(head["patients"]),
                         logits)


def score_tables(result: DatasetResult, truth: str, draws: int) -> dict[str, np.ndarray]:
    """Per group of models their (1 + draws, models) Scores: row 0 on the whole test set, then on `draws` test
    sets of resampled patients (the same for every model and both truths of the dataset). The groups: the
    teachers, the distilled and the hard-label students, the k-teacher ensemble, the hard-label models (teachers
    and hard-label students: one recipe) and every ensemble of k of those."""
    k = len(result.logits["teacher"])
    hard = np.concatenate([result.logits["teacher"], result.logits["baseline"]])
    members = ensemble_members(len(hard), k) if len(hard) >= 2 * k else []
    stacked = hard.transpose(1, 0, 2)  # (N, models, 4), as ensemble_logits takes them
    groups = {"teacher": result.logits["teacher"], "student": result.logits["student"],
              "baseline": result.logits["baseline"],
              "ensemble": ensemble_logits(stacked, list(range(k)))[None],
              "hard_ensembles": np.array([ensemble_logits(stacked, list(m)) for m in members]).reshape(
                  -1, *hard.shape[1:])}
    sizes = {name: len(logits) for name, logits in groups.items()}
    predicted = np.concatenate(list(groups.values())).argmax(axis=2)
    labels = result.labels[truth]
    per_patient = np.stack([per_patient_confusions(labels, p, result.patients) for p in predicted])  # (M, P, 16)
    rng = np.random.default_rng([result.data_seed, round(result.label_noise * 1000)])
    patients = per_patient.shape[1]
    weights = np.vstack([np.ones(patients), rng.multinomial(patients, np.full(patients, 1 / patients), size=draws)])
    confusions = np.einsum("rp,mpc->rmc", weights, per_patient).reshape(len(weights), -1, NUM_CLASSES, NUM_CLASSES)
    scores = sp_se_score(confusions)[2]
    tables, start = {}, 0
    for name, size in sizes.items():
        tables[name] = scores[:, start:start + size]
        start += size
    tables["hard"] = np.concatenate([tables["teacher"], tables["baseline"]], axis=1)
    return tables


@dataclass
class Comparison:
    """The four estimates for a group of datasets (one dataset, or several pooled)."""

    ensemble_gain: Estimate  # ensemble - mean single teacher
    distillation_gain: Estimate  # distilled - hard-label student, seed pairs
    spread_ratio: Estimate  # seed-to-seed SD, hard-label / distilled
    ensemble_spread_ratio: Estimate | None  # seed-to-seed SD, single hard-label model / k-model ensemble


def compare(tables: list[dict[str, np.ndarray]], k: int, draws: int) -> Comparison:
    ensemble_spread = None
    if all(t["hard_ensembles"].shape[1] for t in tables):
        ensemble_spread = ensemble_sd_ratio([(t["hard"], t["hard_ensembles"]) for t in tables], k, draws=draws)
    return Comparison(mean_difference([(t["ensemble"], t["teacher"]) for t in tables], paired=False, draws=draws),
                      mean_difference([(t["student"], t["baseline"]) for t in tables], draws=draws),
                      sd_ratio([(t["baseline"], t["student"]) for t in tables], draws=draws), ensemble_spread)


def _interval(estimate: Estimate | None, sign: str = "+") -> str:
    if estimate is None:
        return "n/a"
    return f"{estimate.point:{sign}.2f} [{estimate.low:{sign}.2f}, {estimate.high:{sign}.2f}]"


def _mean_sd(columns: list[np.ndarray]) -> str:
    """Mean ± seed-to-seed SD of one dataset's models; over several, the mean of their means ± the pooled
    within-dataset SD."""
    means = [c.mean() for c in columns]
    sd = np.sqrt(np.mean([c.var(ddof=1) for c in columns])) if all(len(c) > 1 for c in columns) else float("nan")
    return f"{np.mean(means):.2f} ± {sd:.2f}"


def print_tables(groups: list[tuple[str, list[dict[str, np.ndarray]]]], k: int, draws: int) -> None:
    """Two markdown tables for rows of (label, datasets' score tables): the Scores, then the estimates."""
    print(f"| | mean single teacher | ensemble of {k} teachers | student, mean_{k} soft labels | "
          "student, hard labels |\n|---|---|---|---|---|")
    for label, tables in groups:
        whole = [{name: t[name][0] for name in t} for t in tables]
        ensemble = np.mean([w["ensemble"][0] for w in whole])
        print(f"| {label} | {_mean_sd([w['teacher'] for w in whole])} | {ensemble:.2f} | "
              f"{_mean_sd([w['student'] for w in whole])} | {_mean_sd([w['baseline'] for w in whole])} |")
    print(f"\n| | ensemble − mean teacher | distilled − hard | seed-to-seed SD, hard / distilled | "
          f"SD, single model / ensemble of {k} |\n|---|---|---|---|---|")
    verdicts = []
    for label, tables in groups:
        found = compare(tables, k, draws)
        spread = found.ensemble_spread_ratio
        ensemble_spread = (f"{spread.point:.2f} (no interval)" if spread is not None and len(tables) == 1
                           else _interval(spread, ""))
        print(f"| {label} | {_interval(found.ensemble_gain)} | {_interval(found.distillation_gain)} | "
              f"{_interval(found.spread_ratio, '')} | {ensemble_spread} |")
        verdicts.append(f"  {label}: distilled − hard: {verdict(found.distillation_gain)}")
    print("\n".join(verdicts))
    print(f"  SD, single model / ensemble of {k}: every ensemble of {k} of the hard-label models (the teachers and "
          "the hard-label students, one recipe), its variance from the pairs of ensembles with no model in common; "
          "one dataset's seeds give one such estimate, so only pooled rows have an interval.")
