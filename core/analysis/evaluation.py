"""Scoring a saved model on a dataset: `lungkd evaluate MODEL DATA`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lungkd.core.features.cache import FeatureCache
from lungkd.core.data.dataset import load_dataset
from lungkd.core.errors import LungKDError
from lungkd.core.metrics import BootstrapCI, Scores, patient_bootstrap_ci, scores_from_logits
from lungkd.core.models.inference import load_saved_model, model_cycle_sets, predict_logits


@dataclass
class Evaluation:
    model: str
    architecture: str
    data: str
    split: str
    cycles: int
    scores: Scores
    interval: BootstrapCI

    def to_dict(self) -> dict:
        return {"model": self.model, "architecture": self.architecture, "data": self.data, "split": self.split,
                "cycles": self.cycles, **self.scores.to_dict(), "bootstrap": self.interval.to_dict()}


def evaluate_model(model_folder: str | Path, data_folder: str | Path, *, split: str = "test",
                   cache: FeatureCache | None = None) -> Evaluation:
    """Sp, Se, Score, confusion and a patient bootstrap interval on one split (on every annotated cycle when
    the dataset has no official split: no split file, no train and test folders). The folder may be of any
    format LungKD reads (core.data.dataset.load_dataset), with its format's default label map."""
    model, card = load_saved_model(model_folder)
    index = load_dataset(data_folder)
    if not index.has_official_split:
        index.apply_split({r.name: split for r in index.recordings})
    sets = model_cycle_sets(card, index, cache=cache)
    if split not in sets:
        raise LungKDError(f"the dataset has no '{split}' cycles with usable audio.", path=data_folder,
                          fix="choose another split with --split, or check `lungkd data stats`.")
    data = sets[split]
    logits = predict_logits(model, data)
    scores = scores_from_logits(logits, data.labels)
    interval = patient_bootstrap_ci(data.labels.numpy(), logits.argmax(1).numpy(), np.array(data.patients))
    return Evaluation(str(model_folder), card.architecture, str(data_folder), split, len(data), scores, interval)
