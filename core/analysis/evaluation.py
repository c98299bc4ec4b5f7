"""Scoring a saved model on a dataset: `lungkd evaluate MODEL DATA`."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.features.cache import FeatureCache
from lungkd.core.data.dataset import DatasetIndex, load_dataset
from lungkd.core.errors import LungKDError
from lungkd.core.features.cycle_sets import CycleSet
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.metrics import BootstrapCI, Scores, patient_bootstrap_ci, scores_from_logits
from lungkd.core.models.inference import model_cycle_sets, predict_logits


@dataclass
class EvaluatedCycle:
    """One cycle's calibrated probabilities, as `lungkd predict` gives them for the same cycle."""

    recording: str
    start: float
    end: float
    truth: str
    probabilities: dict[str, float]
    prompt: str | None  # what a model that reads prompts read with it


@dataclass
class Evaluation:
    model: str
    architecture: str
    data: str
    split: str
    cycles: int
    scores: Scores
    interval: BootstrapCI
    per_cycle: list[EvaluatedCycle] = field(default_factory=list)

    def to_dict(self, per_cycle: bool = False) -> dict:
        return {"model": self.model, "architecture": self.architecture, "data": self.data, "split": self.split,
                "cycles": self.cycles, **self.scores.to_dict(), "bootstrap": self.interval.to_dict(),
                **({"per_cycle": [asdict(c) for c in self.per_cycle]} if per_cycle else {})}


def _per_cycle(index: DatasetIndex, data: CycleSet, probabilities: np.ndarray) -> list[EvaluatedCycle]:
    bounds = {f"{rec.name}#{c.index}": c for rec in index.recordings for c in rec.cycles}
    return [EvaluatedCycle(cycle_id.split("#")[0], bounds[cycle_id].start, bounds[cycle_id].end,
                           CLASS_NAMES[int(label)], dict(zip(CLASS_NAMES, map(float, probs))),
                           data.prompts[i] if data.prompts is not None else None)
            for i, (cycle_id, label, probs) in enumerate(zip(data.cycle_ids, data.labels, probabilities))]


def evaluate_model(model_folder: str | Path, data_folder: str | Path, *, split: str = "test",
                   cache: FeatureCache | None = None) -> Evaluation:
    """Sp, Se, Score, confusion and a patient bootstrap interval on one split (on every annotated cycle when
    the dataset has no official split: no split file, no train and test folders), and every cycle's
    probabilities, calibrated as the model's card says. The folder may be of any format LungKD reads
    (core.data.dataset.load_dataset, with its format's default label map); the inputs (prompts included) are built
    as the card's input contract says."""
    usable = load_model_with_limits(model_folder)
    card = usable.card
    index = load_dataset(data_folder)
    if not index.has_official_split:
        index.apply_split({r.name: split for r in index.recordings})
    sets = model_cycle_sets(card, index, cache=cache)
    if split not in sets:
        raise LungKDError(f"the dataset has no '{split}' cycles with usable audio.", path=data_folder,
                          fix="choose another split with --split, or check `lungkd data stats`.")
    data = sets[split]
    logits = predict_logits(usable.model, data)
    scores = scores_from_logits(logits, data.labels)
    interval = patient_bootstrap_ci(data.labels.numpy(), logits.argmax(1).numpy(), np.array(data.patients))
    return Evaluation(str(model_folder), card.architecture, str(data_folder), split, len(data), scores, interval,
                      _per_cycle(index, data, usable.limits.probabilities(logits)))
