"""A trained model on disk: the weights (core.models.registry.save_model) and `lungkd.json`, the card that
says what it is — architecture, label map, preparation and features, selection protocol and epoch,
metrics, data fingerprint, versions — what it was trained on, and its limits: the temperature that
calibrates its probabilities and the statistics of its training data (core/training/calibration.py).
The folder is written whole or not at all, so a folder with a card is a finished model."""
from __future__ import annotations

import platform
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from lungkd.core.errors import LungKDError
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.models.registry import CARD_FILE, Classifier, create_model, model_info, save_model, saved_card
from lungkd.core.storage import write_json_atomic


def save_trained_model(model: Classifier, folder: Path, *, size: str, pretrained: str | None, selection: str,
                       selected_epoch: int, test: dict | None, data_fingerprint: str, seed: int,
                       training_data: dict | None = None, limits: dict | None = None,
                       extra: dict | None = None) -> dict:
    """`training_data`: what it learnt from (core.data.sources.describe_training_data); `limits`: its
    `calibration` and `training_statistics` (core.training.calibration.fit_limits)."""
    inputs = model_info(model.arch_name).inputs
    card = {
        "architecture": model.arch_name, "size": size, "pretrained": pretrained, "labels": list(CLASS_NAMES),
        "preparation": asdict(inputs.prep), "features": inputs.features.key(), "selection": selection,
        "selected_epoch": selected_epoch, "test": test, "data_fingerprint": data_fingerprint, "seed": seed,
        "training_data": training_data, **(limits or {}),
        "versions": {"torch": torch.__version__, "python": platform.python_version()}, **(extra or {}),
    }
    save_model(model, folder, card)
    return read_model_card(folder)


def read_model_card(folder: str | Path) -> dict | None:
    """The card; None when the folder has none (no finished model there). A damaged card raises
    DamagedModelError naming it."""
    return saved_card(Path(folder))


def update_model_card(folder: str | Path, fields: dict) -> dict:
    """The card of an existing model folder with `fields` set (replaced whole, atomically): how a model trained
    before calibration existed gets its limits (bench/model_limits.py)."""
    card = read_model_card(folder)
    if card is None:
        raise LungKDError("not a LungKD model folder (no lungkd.json).", path=folder,
                          fix="give the `model` folder of a finished run (`lungkd runs` lists them).")
    card = {**card, **fields}
    write_json_atomic(Path(folder) / CARD_FILE, card)
    return card


@dataclass(frozen=True)
class ModelNotes:
    """What a user is told beside a model's predictions: what it learnt from and what its numbers mean."""

    source: str  # e.g. "synthetic recordings only", "ICBHI 2017 Respiratory Sound Database"
    amount: str  # e.g. "74 recordings, 458 cycles, 4 device(s), 4–44.1 kHz"
    synthetic_only: bool
    calibrated: bool
    marks_unlike: bool  # its card holds statistics of its training data

    @property
    def trained_on(self) -> str:
        return f"{self.source}: {self.amount}" if self.amount else self.source

    def warnings(self) -> list[str]:
        out = []
        if self.synthetic_only:
            out.append("Trained on synthetic recordings only: on real recordings its predictions are a "
                       "demonstration, not a diagnosis.")
        if not self.calibrated:
            out.append("Uncalibrated: its probabilities were never fitted to cycles it did not train on, and may "
                       "be far surer than it is right.")
        if not self.marks_unlike:
            out.append("Its card holds no statistics of its training data: cycles unlike that data cannot be marked.")
        return out


def model_notes(card: dict) -> ModelNotes:
    data = card.get("training_data")
    calibrated = bool((card.get("calibration") or {}).get("temperature"))
    marks = "precision" in (card.get("training_statistics") or {})
    if not data:
        return ModelNotes("unknown data (its card does not say)", "", False, calibrated, marks)
    train = data.get("train", {})
    rates = sorted(int(r) for r in train.get("sample_rates", {}))
    counts = [f"{train.get('recordings', 0)} recordings", f"{sum(train.get('cycles', {}).values())} cycles",
              f"{len(train.get('devices', {}))} device(s)"]
    if rates:
        low, high = rates[0] / 1000, rates[-1] / 1000
        counts.append(f"{low:g}–{high:g} kHz" if len(rates) > 1 else f"{low:g} kHz")
    synthetic = data.get("kind") == "synthetic"
    where = "synthetic recordings only" if synthetic else data.get("name", "a folder")
    return ModelNotes(where, ", ".join(counts), synthetic, calibrated, marks)


def load_saved_model(folder: str | Path) -> tuple[Classifier, dict]:
    """A model folder written by training (weights + lungkd.json card), in eval mode, and its card."""
    card = read_model_card(folder)
    if card is None:
        raise LungKDError("not a LungKD model folder (no lungkd.json).", path=folder,
                          fix="give the `model` folder of a finished run (`lungkd runs` lists them).")
    model = create_model(card["architecture"], pretrained=folder)
    model.eval()
    return model, card
