"""Soft labels from teacher logits, and logit-mean ensembles (docs/method.md section 9).

Every target here is reproducible from the stored (N, T, 4) logits, the mode and a seed.
"""
from __future__ import annotations

import numpy as np
import torch

from lungkd.core.errors import LungKDError
from lungkd.core.labels import NUM_CLASSES
from lungkd.core.recipes import SoftLabelSpec


class SoftLabelError(LungKDError):
    """A soft-label mode that the teachers at hand cannot give."""


def _softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def curated_members(teacher_scores: list[float], k: int) -> list[int]:
    """The k teachers with the highest Score; ties go to the lower seed, so the choice is stable."""
    order = sorted(range(len(teacher_scores)), key=lambda i: (-teacher_scores[i], i))
    return sorted(order[:k])


def members_for(spec: SoftLabelSpec, teacher_count: int, teacher_scores: list[float] | None) -> list[int]:
    if spec.k > teacher_count:
        raise SoftLabelError(f"{spec.name} needs {spec.k} teachers but only {teacher_count} were trained.",
                             fix=f"train at least {spec.k} teachers, or lower k.")
    if spec.mode == "curated":
        if teacher_scores is None:
            raise SoftLabelError("curated soft labels need the teachers' Scores.", fix="evaluate the teachers first.")
        return curated_members(teacher_scores, spec.k)
    return list(range(spec.k))


def ensemble_logits(logits: np.ndarray, members: list[int]) -> np.ndarray:
    """The `++` ensemble: the mean of the members' raw logits (N, T, 4) -> (N, 4); predict by argmax."""
    return logits[:, members, :].mean(axis=1)


def mean_teacher_targets(logits: np.ndarray, members: list[int], temperature: float = 1.0) -> np.ndarray:
    """softmax(mean of logits) — not the mean of the teachers' probabilities."""
    return _softmax(ensemble_logits(logits, members), temperature)


def ensemble_probabilities(teacher_probabilities) -> np.ndarray:
    """The logit-mean ensemble's four probabilities from its k teachers' (k, 4) probabilities (the teachers'
    votes in the Studio): the mean of the log-probabilities differs from the mean logit by one constant per
    cycle, which softmax removes."""
    log_probabilities = np.log(np.clip(np.asarray(teacher_probabilities, dtype=np.float64), 1e-12, None))
    return mean_teacher_targets(log_probabilities[None], list(range(len(log_probabilities))))[0]


class RandomTeacherTargets:
    """softmax of one teacher's logits, the teacher drawn uniformly per cycle and anew every epoch."""

    def __init__(self, logits: np.ndarray, members: list[int], seed: int, temperature: float = 1.0):
        self.probabilities = _softmax(logits[:, members, :], temperature)  # (N, k, 4)
        self.seed = seed

    def draws(self, epoch: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, epoch])
        return rng.integers(0, self.probabilities.shape[1], size=self.probabilities.shape[0])

    def for_epoch(self, epoch: int) -> torch.Tensor:
        rows = np.arange(self.probabilities.shape[0])
        return torch.from_numpy(self.probabilities[rows, self.draws(epoch)].astype(np.float32))


def noisy_onehot_targets(labels: np.ndarray, sigma: float | np.ndarray, seed: int) -> np.ndarray:
    """Ablation: one-hot + Gaussian noise (per class when sigma is a 4-vector), clipped at 0 and renormalised
    so the target stays a distribution; drawn once per cycle."""
    onehot = np.eye(NUM_CLASSES)[labels]
    noised = np.clip(onehot + np.random.default_rng(seed).normal(size=onehot.shape) * sigma, 0.0, None)
    sums = noised.sum(axis=1, keepdims=True)
    return np.where(sums > 0, noised / np.where(sums > 0, sums, 1.0), onehot)


def teacher_class_spread(logits: np.ndarray) -> np.ndarray:
    """Per-class standard deviation of the teachers' probabilities around their mean, over all cycles."""
    probabilities = _softmax(logits)  # (N, T, 4)
    return probabilities.std(axis=1).mean(axis=0)


def build_targets(spec: SoftLabelSpec, logits: np.ndarray, labels: np.ndarray,
                  teacher_scores: list[float] | None = None) -> torch.Tensor | RandomTeacherTargets:
    """The student's targets: an (N, 4) tensor, or a per-epoch provider for the random teacher."""
    if spec.mode == "onehot_noise":
        return torch.from_numpy(noisy_onehot_targets(labels, spec.sigma, spec.seed).astype(np.float32))
    if spec.mode == "onehot_teacher_noise":
        sigma = teacher_class_spread(logits)
        return torch.from_numpy(noisy_onehot_targets(labels, sigma, spec.seed).astype(np.float32))
    members = members_for(spec, logits.shape[1], teacher_scores)
    if spec.mode == "random":
        return RandomTeacherTargets(logits, members, spec.seed, spec.temperature)
    return torch.from_numpy(mean_teacher_targets(logits, members, spec.temperature).astype(np.float32))
