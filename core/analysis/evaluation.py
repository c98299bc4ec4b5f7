"""Scoring a saved model on a dataset: `lungkd evaluate MODEL DATA`."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lungkd.core.features.cache import FeatureCache
from lungkd.core.data.dataset import load_dataset
from lungkd.core.errors import LungKDError
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.metrics import BootstrapCI, Scores, patient_bootstrap_ci, scores_from_logits
from lungkd.core.models.card import PromptPolicy
from lungkd.core.models.inference import load_saved_model
from lungkd.core.models.inference import predict_logits


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
    """Sp, Se, Score, confusion and a patient bootstrap interval on one split (on every annotated
    cycle when the dataset has no split file)."""
    model, card = load_saved_model(model_folder)
    index = load_dataset(data_folder)
    if not index.has_split_file:
        index.apply_split({r.name: split for r in index.recordings})
    policy = card.inputs.prompts or PromptPolicy()  # the policy is read only by models with prompts
    sets = build_cycle_sets(index, card.inputs.spec(), cache=cache, location_source=policy.location_source,
                            missing=policy.missing)
    if split not in sets:
        raise LungKDError(f"the dataset has no '{split}' cycles with usable audio.", path=data_folder,
                          fix="choose another split with --split, or check `lungkd data stats`.")
    data = sets[split]
    logits = predict_logits(model, data)
    scores = scores_from_logits(logits, data.labels)
    interval = patient_bootstrap_ci(data.labels.numpy(), logits.argmax(1).numpy(), np.array(data.patients))
    return Evaluation(str(model_folder), card.architecture, str(data_folder), split, len(data), scores, interval)
