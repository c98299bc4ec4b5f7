"""A trained model on disk: the weights (core.models.registry.save_model) and `lungkd.json`, the card that
says what it is — architecture, label map, preparation and features, selection protocol and epoch,
metrics, data fingerprint, versions. The folder is written whole or not at all, so a folder with a card
is a finished model."""
from __future__ import annotations

import platform
from dataclasses import asdict
from pathlib import Path

import torch

from lungkd.core.errors import LungKDError
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.models.registry import CARD_FILE, Classifier, create_model, model_info, save_model, saved_card


def save_trained_model(model: Classifier, folder: Path, *, size: str, pretrained: str | None, selection: str,
                       selected_epoch: int, test: dict | None, data_fingerprint: str, seed: int,
                       extra: dict | None = None) -> dict:
    inputs = model_info(model.arch_name).inputs
    card = {
        "architecture": model.arch_name, "size": size, "pretrained": pretrained, "labels": list(CLASS_NAMES),
        "preparation": asdict(inputs.prep), "features": inputs.features.key(), "selection": selection,
        "selected_epoch": selected_epoch, "test": test, "data_fingerprint": data_fingerprint, "seed": seed,
        "versions": {"torch": torch.__version__, "python": platform.python_version()}, **(extra or {}),
    }
    save_model(model, folder, card)
    return read_model_card(folder)


def read_model_card(folder: str | Path) -> dict | None:
    """The card; None when the folder has none (no finished model there). A damaged card raises
    DamagedModelError naming it."""
    return saved_card(Path(folder))


def load_saved_model(folder: str | Path) -> tuple[Classifier, dict]:
    """A model folder written by training (weights + lungkd.json card), in eval mode, and its card."""
    card = read_model_card(folder)
    if card is None:
        raise LungKDError("not a LungKD model folder (no lungkd.json).", path=folder,
                          fix="give the `model` folder of a finished run (`lungkd runs` lists them).")
    model = create_model(card["architecture"], pretrained=folder)
    model.eval()
    return model, card
