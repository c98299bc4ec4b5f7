"""How far a prediction can be trusted, from what the model's card stores about its limits: probabilities
divided by the model's temperature (calibrated), and each cycle's distance from the model's training data
with the limit beyond which the cycle is unlike it. The fitting lives in core/training/calibration.py.

A recording is unlike the training data when the median distance of its cycles is beyond the limit, i.e.
when most of its cycles are: one odd cycle (a cough, a bump of the stethoscope) does not mark it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from lungkd.core.models.card import CARD_FILE, DamagedModelError, InputContract, ModelCard, ModelNotes, model_notes
from lungkd.core.models.inference import load_saved_model
from lungkd.core.training.calibration import TrainingStatistics, softmax


@dataclass(frozen=True)
class ModelLimits:
    temperature: float | None  # None: uncalibrated, probabilities are the plain softmax
    statistics: TrainingStatistics | None  # None: no distances, nothing marked
    notes: ModelNotes  # what the card says the model was trained on, and the warnings that go with it

    @classmethod
    def from_card(cls, card: ModelCard | None) -> "ModelLimits":
        """From a model's card; None (a model without a card) knows nothing: uncalibrated, unmarked."""
        if card is None:
            return cls(None, None, model_notes(None))
        return cls(card.temperature, TrainingStatistics.from_card(card.training_statistics), model_notes(card))

    @property
    def calibrated(self) -> bool:
        return self.temperature is not None

    @property
    def limit(self) -> float | None:
        return None if self.statistics is None else self.statistics.limit

    def probabilities(self, logits: torch.Tensor | np.ndarray) -> np.ndarray:
        return softmax(logits, self.temperature or 1.0)

    def distances(self, features: torch.Tensor | np.ndarray) -> np.ndarray:
        """Each cycle's distance from the training data (NaN without statistics)."""
        if self.statistics is None:
            return np.full(len(features), np.nan)
        return self.statistics.distances(features)

    def unlike(self, distance: float) -> bool | None:
        """Whether a distance (a cycle's, or a recording's median) is beyond the limit; None without statistics."""
        return None if self.statistics is None else bool(distance > self.statistics.limit)


def recording_distance(distances, limit: float | None) -> tuple[float | None, bool | None]:
    """A recording's distance from the training data (the median of its cycles' distances) and whether it is
    beyond `limit`; (None, None) when the model cannot tell (no limit) or there is no cycle."""
    if limit is None or not len(distances):
        return None, None
    median = float(np.median(distances))
    return median, bool(median > limit)


@dataclass(frozen=True)
class UsableModel:
    """A saved model ready to analyse with: in eval mode, with its card, the input contract to build its inputs
    with, and the limits its card stores."""

    model: torch.nn.Module
    card: ModelCard
    limits: ModelLimits
    path: Path

    @property
    def inputs(self) -> InputContract:
        return self.card.inputs


def load_model_with_limits(folder: str | Path) -> UsableModel:
    """A saved model, its card and its limits, all checked before use (DamagedModelError naming the file)."""
    model, card = load_saved_model(folder)
    try:
        limits = ModelLimits.from_card(card)
    except DamagedModelError as exc:
        raise DamagedModelError(exc.problem.message, path=Path(folder) / CARD_FILE, fix=exc.problem.fix) from None
    return UsableModel(model, card, limits, Path(folder))
