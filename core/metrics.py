"""The ICBHI score (docs/method.md section 8), the per-class view of it, and its spread over seeds and patients.

Labels are 0 normal, 1 crackle, 2 wheeze, 3 both. Specificity Sp is the share of normal cycles
predicted normal; sensitivity Se is the share of abnormal cycles predicted as exactly their own class
(a crackle predicted as wheeze is a miss); Score = (Sp + Se) / 2. All three are percentages.

Empty classes: with no normal cycles Sp is undefined and is NaN; with no abnormal cycles Se is NaN;
Score is NaN when either is. Per-class recall is NaN for a class with no cycles. Nothing here warns:
NaN is the answer, and reports print it as such.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungkd.core.labels import CLASS_NAMES, NUM_CLASSES


@dataclass(frozen=True, eq=False)  # arrays inside: compare fields, not Scores
class Scores:
    """The ICBHI metrics of one set of predictions. Rates are percentages (0-100), NaN where undefined."""

    sp: float
    se: float
    score: float
    confusion: np.ndarray  # (4, 4) int counts, rows = true class, columns = predicted class
    recall: np.ndarray  # (4,) per-class recall in percent, NaN for a class with no cycles
    macro_f1: float  # percent; mean F1 over the classes present in y_true or y_pred
    counts: np.ndarray  # (4,) number of true cycles per class

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    def to_dict(self) -> dict:
        """JSON-ready: NaN becomes None."""
        return {
            "sp": _none_if_nan(self.sp), "se": _none_if_nan(self.se), "score": _none_if_nan(self.score),
            "macro_f1": _none_if_nan(self.macro_f1),
            "recall": {name: _none_if_nan(r) for name, r in zip(CLASS_NAMES, self.recall)},
            "counts": {name: int(c) for name, c in zip(CLASS_NAMES, self.counts)},
            "confusion": self.confusion.tolist(),
        }

    def __str__(self) -> str:
        return f"Sp {self.sp:.2f}  Se {self.se:.2f}  Score {self.score:.2f}"


def _none_if_nan(x: float) -> float | None:
    return None if np.isnan(x) else float(x)


def _labels(values, name: str) -> np.ndarray:
    arr = np.asarray(values).reshape(-1)
    if arr.size and (not np.issubdtype(arr.dtype, np.integer) or arr.min() < 0 or arr.max() >= NUM_CLASSES):
        raise ValueError(f"{name} must hold integer labels 0..{NUM_CLASSES - 1}, got {arr[:8]}...")
    return arr.astype(np.int64)


def confusion_matrix(y_true, y_pred) -> np.ndarray:
    """(4, 4) counts, rows = true class, columns = predicted class."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {t.size} labels but y_pred has {p.size}")
    return np.bincount(t * NUM_CLASSES + p, minlength=NUM_CLASSES ** 2).reshape(NUM_CLASSES, NUM_CLASSES)


def _ratio(num, den) -> np.ndarray:
    """num / den in percent, NaN where den is 0 (works elementwise on arrays)."""
    num, den = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, 100.0 * num / np.where(den > 0, den, 1.0), np.nan)


def sp_se_score(confusion: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sp, Se, Score in percent from confusion matrices of shape (..., 4, 4) (vectorised over `...`)."""
    diag = np.diagonal(confusion, axis1=-2, axis2=-1)
    true_counts = confusion.sum(axis=-1)
    sp = _ratio(diag[..., 0], true_counts[..., 0])
    se = _ratio(diag[..., 1:].sum(axis=-1), true_counts[..., 1:].sum(axis=-1))
    return sp, se, (sp + se) / 2.0


def _macro_f1(confusion: np.ndarray) -> float:
    # F1 = 2TP / (2TP + FP + FN) is defined whenever a class occurs in y_true or y_pred; classes absent
    # from both are left out of the mean instead of counted as 0 or 1.
    tp = np.diag(confusion)
    fp = confusion.sum(axis=0) - tp
    fn = confusion.sum(axis=1) - tp
    f1 = _ratio(2 * tp, 2 * tp + fp + fn)
    return float(np.nanmean(f1)) if np.isfinite(f1).any() else float("nan")


def scores_from_confusion(confusion: np.ndarray) -> Scores:
    confusion = np.asarray(confusion, dtype=np.int64)
    sp, se, score = sp_se_score(confusion)
    counts = confusion.sum(axis=1)
    return Scores(sp=float(sp), se=float(se), score=float(score), confusion=confusion,
                  recall=_ratio(np.diag(confusion), counts), macro_f1=_macro_f1(confusion), counts=counts)


def icbhi_scores(y_true, y_pred) -> Scores:
    """Sp, Se, Score, confusion matrix, per-class recall and macro F1 of predicted labels."""
    return scores_from_confusion(confusion_matrix(y_true, y_pred))


def _to_numpy(x) -> np.ndarray:
    if hasattr(x, "detach"):  # a torch tensor, possibly on a GPU; metrics stay torch-free
        x = x.detach().cpu()
        x = (x.float() if x.is_floating_point() else x).numpy()  # numpy has no bfloat16
    return np.asarray(x)


def scores_from_logits(logits, y_true) -> Scores:
    """Scores of argmax predictions of (N, 4) logits (or probabilities)."""
    logits = _to_numpy(logits)
    if logits.ndim != 2 or logits.shape[1] != NUM_CLASSES:
        raise ValueError(f"logits must have shape (N, {NUM_CLASSES}), got {logits.shape}")
    return icbhi_scores(_to_numpy(y_true), logits.argmax(axis=1))


@dataclass(frozen=True)
class MeanStd:
    mean: float
    std: float  # sample standard deviation (ddof=1); NaN for a single value
    n: int

    def __str__(self) -> str:
        std = "n/a" if np.isnan(self.std) else f"{self.std:.2f}"
        return f"{self.mean:.2f} ± {std}"


def mean_std(values) -> MeanStd:
    """Mean ± sample standard deviation over seeds (ddof=1, the usual reading of "± over 5 seeds")."""
    arr = np.asarray(list(values), dtype=float)
    if arr.size == 0:
        raise ValueError("mean_std needs at least one value")
    std = float(arr.std(ddof=1)) if arr.size > 1 else float("nan")
    return MeanStd(mean=float(arr.mean()), std=std, n=int(arr.size))


@dataclass(frozen=True, eq=False)
class BootstrapCI:
    """A percentile confidence interval of the Score from resampling patients."""

    score: float  # Score of the full set
    low: float
    high: float
    alpha: float
    n_boot: int
    n_valid: int  # replicates with a defined Score (a replicate drawing no normal cycle has none)
    n_patients: int
    replicates: np.ndarray  # (n_boot,) Score of every replicate, NaN where undefined

    def to_dict(self) -> dict:
        """JSON-ready, without the replicates."""
        return {"score": _none_if_nan(self.score), "low": _none_if_nan(self.low), "high": _none_if_nan(self.high),
                "alpha": self.alpha, "n_boot": self.n_boot, "n_valid": self.n_valid, "n_patients": self.n_patients}

    def __str__(self) -> str:
        return f"{self.score:.2f} [{self.low:.2f}, {self.high:.2f}] ({100 * (1 - self.alpha):.0f}% CI)"


def per_patient_confusions(y_true, y_pred, patient_ids) -> np.ndarray:
    """(P, 16) flattened confusion counts, one row per distinct patient."""
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    pids = np.asarray(patient_ids).reshape(-1)
    if not (t.shape == p.shape == pids.shape):
        raise ValueError(f"y_true, y_pred and patient_ids differ in length: {t.size}, {p.size}, {pids.size}")
    _, patient = np.unique(pids, return_inverse=True)
    n_patients = int(patient.max()) + 1 if patient.size else 0
    cells = NUM_CLASSES ** 2
    flat = np.bincount(patient * cells + t * NUM_CLASSES + p, minlength=n_patients * cells)
    return flat.reshape(n_patients, cells)


def patient_bootstrap_ci(y_true, y_pred, patient_ids, n_boot: int = 1000, alpha: float = 0.05,
                         seed: int = 0) -> BootstrapCI:
    """Percentile CI of the Score, drawing patients (all their cycles together) with replacement.

    Cycles of one patient are correlated, so resampling cycles would give too narrow an interval.
    Each replicate draws as many patients as there are; its confusion matrix is the draw counts times
    the per-patient confusion matrices, so all replicates are one matrix product.
    """
    per_patient = per_patient_confusions(y_true, y_pred, patient_ids)
    n_patients = per_patient.shape[0]
    if n_patients == 0:
        raise ValueError("patient_bootstrap_ci needs at least one cycle")
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n_patients, np.full(n_patients, 1.0 / n_patients), size=n_boot)
    confusions = (draws @ per_patient).reshape(n_boot, NUM_CLASSES, NUM_CLASSES)
    boot = sp_se_score(confusions)[2]
    valid = boot[~np.isnan(boot)]
    low, high = (np.percentile(valid, [100 * alpha / 2, 100 * (1 - alpha / 2)]) if valid.size
                 else (float("nan"), float("nan")))
    full = sp_se_score(per_patient.sum(axis=0).reshape(NUM_CLASSES, NUM_CLASSES))[2]
    return BootstrapCI(score=float(full), low=float(low), high=float(high), alpha=alpha, n_boot=n_boot,
                       n_valid=int(valid.size), n_patients=n_patients, replicates=boot)
