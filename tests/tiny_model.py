"""A tiny CNN6 briefly trained on the real ICBHI recordings, saved as a model folder with its card.

Shared by tests/core and tests/app (tests/ is on sys.path through its conftest.py). Trained once per
test session: the folder lives in the session's base temporary directory.
"""
from __future__ import annotations

from pathlib import Path

import torch

from lungkd.core.data.dataset import load_dataset
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.models.card import save_trained_model
from lungkd.core.models.registry import create_model
from lungkd.core.training.trainer import TrainConfig, Trainer


def tiny_model_folder(audio_dir: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "tiny-cnn6" / "model"
    if (folder / "lungkd.json").exists():
        return folder
    index = load_dataset(audio_dir)
    index.apply_split({r.name: "train" for r in index.recordings})
    train = build_cycle_sets(index, "cnn6")["train"]
    torch.manual_seed(0)
    model = create_model("cnn6", size="tiny")
    result = Trainer(TrainConfig(epochs=1, batch_size=8, selection="last", device="cpu")).fit(model, train)
    save_trained_model(result.model, folder, size="tiny", pretrained=None, selection="last", selected_epoch=1,
                       test={"score": 51.5}, data_fingerprint=index.fingerprint(), seed=0)
    return folder
