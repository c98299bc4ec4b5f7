"""Train one model from a recipe in a workspace: `lungkd train`."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from lungkd.core.cancel import CancelToken
from lungkd.core.data.sources import (check_trainable, dataset_label, describe_training_data, prompt_policy,
                                      resolve_dataset)
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.models.registry import create_model, save_model
from lungkd.core.recipes import TrainRecipe
from lungkd.core.storage import json_sha256, write_json_atomic
from lungkd.core.training.calibration import fit_limits
from lungkd.core.training.trainer import Progress, Trainer, TrainResult
from lungkd.core.workspace.layout import MODEL_FOLDER, RECIPE_FILE, cache_folder, single_run_folder
from lungkd.core.workspace.locks import FolderLock


def run_dir_for(recipe: TrainRecipe, workspace: Path) -> Path:
    return single_run_folder(workspace, recipe.name, json_sha256(recipe.to_dict(), 12))


def train_from_recipe(recipe: TrainRecipe, workspace: Path, on_progress: Callable[[Progress], None] | None = None,
                      cancel: CancelToken | None = None) -> tuple[TrainResult, Path]:
    """Train (or resume) the recipe's model; returns the result and the folder of the saved model. A second
    process training the same recipe at the same time is refused (FolderBusy names the first)."""
    with FolderLock(run_dir_for(recipe, workspace), f"the training run '{recipe.name}'"):
        return _train_locked(recipe, workspace, on_progress, cancel)


def _train_locked(recipe: TrainRecipe, workspace: Path, on_progress: Callable[[Progress], None] | None,
                  cancel: CancelToken | None) -> tuple[TrainResult, Path]:
    index = resolve_dataset(recipe.data, workspace, selection=recipe.selection)
    check_trainable(index, recipe.selection)
    inputs = recipe.model.input_contract(recipe.data)
    missing, location_source = prompt_policy(recipe.data)
    sets = build_cycle_sets(index, inputs.spec(), cache=FeatureCache(cache_folder(workspace)),
                            location_source=location_source, missing=missing, cancel=cancel)
    run_dir = run_dir_for(recipe, workspace)
    write_json_atomic(run_dir / RECIPE_FILE, recipe.to_dict())
    torch.manual_seed(recipe.seed)  # the initial weights of randomly initialised parts
    model = create_model(recipe.model.arch, pretrained=recipe.model.pretrained, size=recipe.model.size)
    trainer = Trainer(recipe.train, seed=recipe.seed, settings=recipe.run_settings(), run_dir=run_dir,
                      on_progress=on_progress, cancel=cancel)
    result = trainer.fit(model, sets["train"], sets.get("test"), sets.get("val"))
    model_dir = run_dir / MODEL_FOLDER
    test_data = {"dataset": dataset_label(recipe.data), "split": "test", "cycles": len(sets["test"])} \
        if "test" in sets else None
    card = result.model_card(size=recipe.model.size, pretrained=recipe.model.pretrained, inputs=inputs,
                             seed=recipe.seed, run=recipe.name, training_labels="hard",
                             data_fingerprint=index.fingerprint(), test_data=test_data,
                             training_data=describe_training_data(recipe.data, index),
                             **fit_limits(result.model, sets, cancel=cancel))
    save_model(result.model, model_dir, card)
    return result, model_dir
