"""The review queue: which cycles of the open recordings are most worth a clinician's look, in order.

The order (one sort key, plain numbers):
1. the lowest probability, by the model, that the cycle's class is right first: the probability it gives the
   annotated class, or for a cycle with no class yet the class it would get (its own prediction, what "accept"
   sets) — compared as the Studio shows probabilities (whole percent, calibrated). A label the model gives little
   chance is the likeliest to be wrong: on generated recordings with 20 % wrong labels this order finds about
   four times as many wrong labels per reviewed cycle as reading in random order, where the order before it
   (disagreements first, then the least confident) found under one and a half times as many
   (bench/review_gain.py, bench/README.md);
2. then, where an experiment's teachers voted, the wider their disagreement first — it decides between
   cycles the model is equally sure of;
3. then by recording and time, so equal cycles keep their natural order.
A cycle with no prediction yet comes after every predicted one (nothing is known to rank it by).

A label is *likely wrong* when the model gives its annotated class under one half: more likely wrong than
right, by the model. The queue puts all of them first, and the Studio counts those not reviewed yet.

Which teachers a model has is the experiment's business (core.kd.store.teachers_for_model), and so is their
ensemble (core.kd.soft_labels.ensemble_probabilities); this module only ranks.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from lungkd.core.labels import CLASS_NAMES


class PredictedClass:
    """The class a `probabilities` attribute points to, and how sure it is (None while there are none)."""

    probabilities: Sequence[float] | None

    @property
    def predicted(self) -> int | None:
        """The likeliest class (the first of equals, or the first NaN, as np.argmax has it), without numpy: views
        ask it thousands of times per redraw."""
        p = self.probabilities
        if p is None:
            return None
        return next((i for i, v in enumerate(p) if v != v), None) or max(range(len(p)), key=p.__getitem__)

    @property
    def confidence(self) -> float | None:
        return None if self.probabilities is None else float(max(self.probabilities))


@dataclass(frozen=True)
class ReviewCandidate(PredictedClass):
    recording: str
    start: float
    end: float
    annotated: int | None  # the class as annotated (None: no class yet)
    probabilities: Sequence[float] | None  # the model's (None: not predicted yet)
    teacher_probabilities: Sequence[Sequence[float]] = field(default_factory=tuple)  # one row per teacher

    @property
    def disagrees(self) -> bool:
        return self.annotated is not None and self.predicted is not None and self.annotated != self.predicted

    @property
    def teacher_votes(self) -> list[int]:
        return teacher_votes(self.teacher_probabilities)

    @property
    def teacher_spread(self) -> float:
        return teacher_spread(self.teacher_votes)


def teacher_votes(teacher_probabilities: Sequence[Sequence[float]]) -> list[int]:
    """Each teacher's predicted class."""
    return [int(np.argmax(p)) for p in teacher_probabilities]


def teacher_spread(votes: Sequence[int]) -> float:
    """The share of teachers that vote against the majority: 0 when unanimous, (k-1)/k when no two agree."""
    if not votes:
        return 0.0
    return 1.0 - Counter(votes).most_common(1)[0][1] / len(votes)


LIKELY_WRONG_BELOW = 0.5
LIKELY_WRONG = "the model gives under 50 %"  # what `likely_wrong` means, in words for the Studio


def class_probability(candidate: ReviewCandidate) -> float:
    """The model's probability that the cycle's class is right: the annotated class's, or with no class yet its
    own prediction's."""
    if candidate.annotated is None:
        return candidate.confidence
    return float(candidate.probabilities[candidate.annotated])


def likely_wrong(candidate: ReviewCandidate) -> bool:
    """An annotated class the model gives under one half (every class it contradicts among them)."""
    return (candidate.annotated is not None and candidate.probabilities is not None
            and class_probability(candidate) < LIKELY_WRONG_BELOW)


def review_key(candidate: ReviewCandidate) -> tuple:
    if candidate.probabilities is None:
        return (1, 0, 0.0, candidate.recording, candidate.start)
    return (0, round(100 * class_probability(candidate)), -candidate.teacher_spread, candidate.recording,
            candidate.start)


def review_order(candidates: Sequence[ReviewCandidate]) -> list[int]:
    """Indices into `candidates` in the order to review them."""
    return sorted(range(len(candidates)), key=lambda i: review_key(candidates[i]))


def review_reason(candidate: ReviewCandidate) -> str:
    """Why the cycle is where it is in the queue, in words."""
    if candidate.probabilities is None:
        return "not predicted yet"
    words = [f"model: {CLASS_NAMES[candidate.predicted]} {candidate.confidence:.0%}"]
    if likely_wrong(candidate):
        words.insert(0, f"annotated {CLASS_NAMES[candidate.annotated]}, which the model gives "
                        f"{class_probability(candidate):.0%}: likely wrong")
    elif candidate.annotated is None:
        words.insert(0, "no class yet")
    if candidate.teacher_probabilities:
        votes = candidate.teacher_votes
        against = round(candidate.teacher_spread * len(votes))
        words.append("teachers unanimous" if not against else f"{against} of {len(votes)} teachers vote against "
                     "the others")
    return " · ".join(words)
