"""A tiny CNN6 briefly trained on the session's synthetic recordings, saved as a model folder with its card;
and a tiny BTS with random weights, for what depends on its prompts.

Shared by tests/core and tests/app (tests/ is on sys.path through its conftest.py). Trained once per
test session: the folder lives in the session's base temporary directory. Its limits (temperature, training
statistics) are fitted on the test split, the only cycles of this small dataset it never trained on.
"""
from __future__ import annotations

from pathlib import Path

import torch

from lungkd.core.analysis.limits import ModelLimits, UsableModel, load_model_with_limits
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import DataSpec, describe_training_data
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.models.card import InputContract, ModelCard, PromptPolicy, read_model_card
from lungkd.core.models.registry import create_model, model_info, save_model
from lungkd.core.recipes import ModelSpec, RunSettings, TrainConfig
from lungkd.core.training.calibration import fit_limits
from lungkd.core.training.trainer import Trainer


def tiny_model_folder(data_dir: Path, tmp_path_factory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "tiny-cnn6" / "model"
    if read_model_card(folder) is not None:
        return folder
    index = load_dataset(data_dir)
    sets = build_cycle_sets(index, model_info("cnn6").inputs)
    torch.manual_seed(0)
    model = create_model("cnn6", size="tiny")
    trainer = Trainer(TrainConfig(epochs=1, batch_size=8, lr=1e-3),
                      settings=RunSettings(selection="last", device="cpu"))
    result = trainer.fit(model, sets["train"])
    data = DataSpec(path=str(data_dir))
    card = result.model_card(size="tiny", pretrained=None, inputs=ModelSpec(arch="cnn6").input_contract(data), seed=0,
                             data_fingerprint=index.fingerprint(), training_data=describe_training_data(data, index),
                             **fit_limits(result.model, {"train": sets["train"], "calibration": sets["test"]}))
    save_model(result.model, folder, card.replace(test={"sp": 60.0, "se": 43.0, "score": 51.5}))
    return folder


def tiny_bts(folder: Path, policy: PromptPolicy) -> UsableModel:
    """A randomly initialised tiny BTS saved with a card whose prompt policy is `policy`: a model that reads
    prompts, for what depends on the prompt and not on what was learnt."""
    torch.manual_seed(0)
    contract = InputContract.from_spec(model_info("bts").inputs, policy)
    save_model(create_model("bts", size="tiny"), folder, ModelCard(architecture="bts", size="tiny", inputs=contract))
    return load_model_with_limits(folder)


def without_limits(model: UsableModel) -> UsableModel:
    """The same model as if its card held no limits: the plain softmax, nothing marked."""
    return UsableModel(model.model, model.card, ModelLimits.from_card(None), model.path)


def tiny_model(data_dir: Path, tmp_path_factory, *, limits: bool = True) -> UsableModel:
    """The tiny model loaded as `lungkd predict` loads a model; `limits=False`: as if its card held none."""
    model = load_model_with_limits(tiny_model_folder(data_dir, tmp_path_factory))
    return model if limits else without_limits(model)
