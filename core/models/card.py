"""A trained model on disk: the weights (core.models.save_model) plus `lungkd.json`, the card that says
what it is — architecture, label map, preparation and features, selection protocol and epoch, metrics,
data fingerprint, versions. A folder without a card is an unfinished model."""
from __future__ import annotations

import json
import os
import platform
from dataclasses import asdict
from pathlib import Path

import torch

from lungkd.core.features.cycle_sets import input_settings
from lungkd.core.labels import CLASS_NAMES

CARD_FILE = "lungkd.json"


def write_atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_trained_model(model: torch.nn.Module, folder: Path, *, size: str, pretrained: str | None, selection: str,
                       selected_epoch: int, test: dict | None, data_fingerprint: str, seed: int,
                       extra: dict | None = None) -> dict:
    """Weights first, the card last: a kill in between leaves no card, so the run counts as unfinished."""
    from lungkd.core.models.registry import save_model

    save_model(model, folder)
    prep, features = input_settings(model.arch_name)
    card = {
        "architecture": model.arch_name, "size": size, "pretrained": pretrained, "labels": list(CLASS_NAMES),
        "preparation": asdict(prep), "features": features.key(), "selection": selection,
        "selected_epoch": selected_epoch, "test": test, "data_fingerprint": data_fingerprint, "seed": seed,
        "versions": {"torch": torch.__version__, "python": platform.python_version()}, **(extra or {}),
    }
    write_atomic_text(Path(folder) / CARD_FILE, json.dumps(card, indent=2))
    return card


def read_model_card(folder: str | Path) -> dict | None:
    path = Path(folder) / CARD_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
