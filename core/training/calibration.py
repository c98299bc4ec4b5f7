"""What a trained model knows of its own limits, fitted where its training ends and stored in its card.

- Temperature scaling (Guo et al., 2017): one temperature T divides the logits, chosen to minimise the
  negative log-likelihood of cycles the model neither trained on nor was selected on (the validation split,
  or the part of train held out for calibration). The ranking of the classes, and so every Score, is
  unchanged; only how sure the probabilities say the model is.
- Expected calibration error (top-label, ten equal-width confidence bins) and the reliability diagram's
  bins, before and after, on the test cycles (on the held-out ones where there is no test set).
- The statistics of the model's inputs on its training data: each cycle's input (fbank or CLAP log-mel)
  is summarised, in SUMMARY_BANDS frequency bands, by its level, its spread and its frame-to-frame change
  over time, and the training cycles' summaries by their mean and a Ledoit-Wolf covariance. A cycle's
  distance from the training data is the Mahalanobis distance of its summary; the limit is the
  LIMIT_QUANTILE of the distances of the held-out cycles, so that about one cycle in a hundred like the
  training data lies beyond it by chance. The sounds are compared rather than the penultimate embeddings,
  and in a few broad bands rather than many narrow ones: that tells the real recordings from the synthetic
  ones far more clearly (bench/model_limits.py measures the alternatives), and it means the same for every
  architecture.

Both need held-out cycles: with fewer than MIN_HELD_OUT_CYCLES the card says so and the model is used
uncalibrated, without marks.
"""
from __future__ import annotations

import base64
from dataclasses import dataclass, replace

import numpy as np
import torch

from lungkd.core.cancel import CancelToken
from lungkd.core.features.cycle_sets import CycleSet
from lungkd.core.models.card import DAMAGED_FIX, TEMPERATURE_RANGE, DamagedModelError, StatisticsCard
from lungkd.core.models.inference import predict_logits

MIN_HELD_OUT_CYCLES = 20
RELIABILITY_BINS = 10
SUMMARY_BANDS = 8
SUMMARY_DIMENSIONS = 3 * SUMMARY_BANDS  # each band's level, spread and change over time
LIMIT_QUANTILE = 99.0  # percent
HELD_OUT_SPLITS = ("val", "calibration")  # cycles a run neither trains nor is selected on, preferred first
_SUMMARY_BATCH = 256  # cycles summarised at once: memory stays small for the largest training sets


def softmax(logits: np.ndarray | torch.Tensor, temperature: float = 1.0) -> np.ndarray:
    return torch.softmax(torch.as_tensor(logits, dtype=torch.float64) / temperature, dim=1).numpy()


def fit_temperature(logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature that minimises the cross-entropy of softmax(logits / T) on these cycles."""
    from scipy.optimize import minimize_scalar

    logits_t, labels_t = torch.as_tensor(logits, dtype=torch.float64), torch.as_tensor(labels, dtype=torch.int64)

    def nll(log_t: float) -> float:
        return float(torch.nn.functional.cross_entropy(logits_t / np.exp(log_t), labels_t))

    low, high = np.log(TEMPERATURE_RANGE)
    return float(np.exp(minimize_scalar(nll, bounds=(low, high), method="bounded", options={"xatol": 1e-4}).x))


def reliability(probabilities: np.ndarray, labels: np.ndarray, bins: int = RELIABILITY_BINS) -> list[dict]:
    """The reliability diagram: per confidence bin ([0, 0.1), ..., [0.9, 1]) the cycles in it, their mean
    confidence and how many of them were right."""
    confidence = probabilities.max(axis=1)
    right = probabilities.argmax(axis=1) == np.asarray(labels)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        members = which == b
        count = int(members.sum())
        out.append({"low": b / bins, "high": (b + 1) / bins, "count": count,
                    "confidence": float(confidence[members].mean()) if count else None,
                    "accuracy": float(right[members].mean()) if count else None})
    return out


def expected_calibration_error(bins: list[dict]) -> float:
    """Σ (share of cycles in the bin) · |accuracy − mean confidence|, over the bins of `reliability`."""
    total = sum(b["count"] for b in bins)
    return float(sum(b["count"] / total * abs(b["accuracy"] - b["confidence"]) for b in bins if b["count"]))


def calibrate(held_logits: np.ndarray, held_labels: np.ndarray, held_split: str,
              measure_logits: np.ndarray, measure_labels: np.ndarray, measure_split: str) -> dict:
    """The card's `calibration`: the temperature fitted on the held-out cycles, and the calibration error
    before and after, with the reliability bins, on the cycles measured."""
    temperature = fit_temperature(held_logits, held_labels)
    before = reliability(softmax(measure_logits), measure_labels)
    after = reliability(softmax(measure_logits, temperature), measure_labels)
    return {"temperature": temperature, "fitted_on": {"split": held_split, "cycles": int(len(held_labels))},
            "measured_on": {"split": measure_split, "cycles": int(len(measure_labels))},
            "ece_before": expected_calibration_error(before), "ece_after": expected_calibration_error(after),
            "reliability_before": before, "reliability_after": after}


# ---------------------------------------------------------------- the training data's statistics


def input_summary(features: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, 3 · SUMMARY_BANDS) float64: for each of SUMMARY_BANDS frequency bands of each cycle's input
    ((N, frames, bins) fbank or (N, 1, frames, bins) CLAP log-mel), its mean over time, its spread over time
    and its mean change from one frame to the next."""
    # numpy, not torch: on two intra-op threads torch's small reductions here took 49 ms a batch of 16 cycles on a
    # busy two-core machine (4.5 ms on one); numpy's take 2.4-3.2 ms either way
    x = np.asarray(features)
    x = x.reshape(len(x), x.shape[-2], x.shape[-1])
    groups = np.arange(x.shape[-1]) * SUMMARY_BANDS // x.shape[-1]  # bin -> band, as even as the bins allow
    average = np.eye(SUMMARY_BANDS)[groups] / np.bincount(groups, minlength=SUMMARY_BANDS)  # (bins, bands)
    out = np.empty((len(x), 3 * SUMMARY_BANDS))
    for first in range(0, len(x), _SUMMARY_BATCH):
        bands = x[first:first + _SUMMARY_BATCH] @ average  # float64
        change = np.abs(np.diff(bands, axis=1)).mean(axis=1)
        out[first:first + len(bands)] = np.concatenate([bands.mean(axis=1), bands.std(axis=1, ddof=1), change], axis=1)
    return out


def _encode(array: np.ndarray) -> str:
    return base64.b64encode(np.ascontiguousarray(array, dtype="<f8").tobytes()).decode("ascii")


@dataclass(frozen=True)
class TrainingStatistics:
    """Where the model's training inputs lie, and how far from them a cycle like them may fall."""

    mean: np.ndarray  # (D,)
    precision: np.ndarray  # (D, D), the inverse of the shrunk covariance
    limit: float  # distances above this are unlike the training data
    train_cycles: int
    held_out_cycles: int
    held_out_split: str

    @classmethod
    def fit(cls, train_features, held_features, held_split: str) -> "TrainingStatistics":
        from sklearn.covariance import LedoitWolf

        summaries = input_summary(train_features)
        estimate = LedoitWolf().fit(summaries)
        stats = cls(estimate.location_, estimate.precision_, float("inf"), len(summaries), len(held_features),
                    held_split)
        return replace(stats, limit=float(np.percentile(stats.distances(held_features), LIMIT_QUANTILE)))

    def distances(self, features) -> np.ndarray:
        """(N,) Mahalanobis distances of the cycles' input summaries from the training cycles'."""
        diff = input_summary(features) - self.mean
        return np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", diff, self.precision, diff), 0.0))

    def to_card(self) -> dict:
        return {"summary": f"mean, spread and frame-to-frame change over time of {SUMMARY_BANDS} frequency bands "
                           "of the model's input",
                "distance": "Mahalanobis, Ledoit-Wolf covariance", "limit": self.limit,
                "limit_quantile": LIMIT_QUANTILE, "train_cycles": self.train_cycles,
                "held_out_cycles": self.held_out_cycles, "held_out_split": self.held_out_split,
                "dimensions": len(self.mean), "mean": _encode(self.mean), "precision": _encode(self.precision)}

    @classmethod
    def from_card(cls, entry: StatisticsCard | None) -> "TrainingStatistics | None":
        """The statistics a card holds; None when it holds none. Statistics of other dimensions than the
        summary LungKD computes cannot be compared with a cycle's and are refused, naming the field."""
        if entry is None or not entry.fitted:
            return None
        if entry.dimensions != SUMMARY_DIMENSIONS:
            raise DamagedModelError(f"the card's training_statistics have {entry.dimensions} dimensions; the "
                                    f"input summary has {SUMMARY_DIMENSIONS}.", fix=DAMAGED_FIX)
        d = entry.dimensions
        return cls(entry.array("mean", (d,)), entry.array("precision", (d, d)), entry.limit, entry.train_cycles,
                   entry.held_out_cycles, entry.held_out_split)


def held_out(sets: dict[str, CycleSet]) -> tuple[str | None, CycleSet | None]:
    """The run's cycles for calibration: its validation split, else the part of train held out for it."""
    return next(((name, sets[name]) for name in HELD_OUT_SPLITS if name in sets), (None, None))


def fit_limits(model: torch.nn.Module, sets: dict[str, CycleSet], *, test_logits: np.ndarray | None = None,
               cancel: CancelToken | None = None) -> dict:
    """`calibration` and `training_statistics` for the card of a model trained on sets["train"]: fitted on its
    held-out cycles (`held_out`), the calibration measured on the test cycles (whose logits may be passed
    when already computed). Too few held-out cycles leave both out, with the reason."""
    held_split, held = held_out(sets)
    count = 0 if held is None else len(held)
    if count < MIN_HELD_OUT_CYCLES:
        reason = (f"{count} cycles held out from training (at least {MIN_HELD_OUT_CYCLES} are needed: a validation "
                  "split, or a [data] calibration_fraction with enough training patients)")
        return {"calibration": {"temperature": None, "reason": reason}, "training_statistics": {"reason": reason}}
    held_logits = predict_logits(model, held, cancel=cancel).numpy()
    if "test" in sets:
        measured, measure_split = sets["test"], "test"
        if test_logits is None:
            test_logits = predict_logits(model, measured, cancel=cancel).numpy()
    else:
        measured, measure_split, test_logits = held, held_split, held_logits
    return {"calibration": calibrate(held_logits, held.labels.numpy(), held_split, test_logits,
                                     measured.labels.numpy(), measure_split),
            "training_statistics": TrainingStatistics.fit(sets["train"].features, held.features,
                                                          held_split).to_card()}
