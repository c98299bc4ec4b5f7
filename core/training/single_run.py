"""Train one model from a recipe in a workspace: the `lungkd train` command and the wizard's single runs."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import torch

from lungkd.core.features.cache import FeatureCache
from lungkd.core.data.dataset import DatasetIndex, load_dataset
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.models.card import save_trained_model
from lungkd.core.recipes import DataSpec, TrainRecipe
from lungkd.core.data.splits import patient_split, validation_split
from lungkd.core.cancel import CancelToken
from lungkd.core.training.trainer import Progress, Trainer, TrainResult


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()[:12]


def resolve_dataset(data: DataSpec, workspace: Path) -> DatasetIndex:
    """Load the recipe's dataset (writing the synthetic one into the workspace once) and apply its split."""
    if data.synthetic is not None:
        from lungkd.core.data.synth import write_synthetic_dataset

        s = data.synthetic
        folder = workspace / "datasets" / f"synthetic-{s.recordings}-seed{s.seed}-noise{s.label_noise:g}"
        if not (folder / ".complete").exists():
            write_synthetic_dataset(folder, recordings=s.recordings, seed=s.seed, label_noise=s.label_noise)
            (folder / ".complete").write_text("")
        index = load_dataset(folder)
    else:
        index = load_dataset(data.path)
    if data.split == "patient":
        index.apply_split(patient_split(index, data.test_fraction, data.split_seed))
    return index


def run_dir_for(recipe: TrainRecipe, workspace: Path) -> Path:
    return workspace / "runs" / f"{recipe.name}-{_digest(recipe.to_dict())}"


def train_from_recipe(recipe: TrainRecipe, workspace: Path, on_progress: Callable[[Progress], None] | None = None,
                      cancel: CancelToken | None = None) -> tuple[TrainResult, Path]:
    """Train (or resume) the recipe's model; returns the result and the folder of the saved model."""
    from lungkd.core.models.registry import create_model

    index = resolve_dataset(recipe.data, workspace)
    if recipe.train.selection == "best_val":
        index.apply_split(validation_split(index, recipe.data.val_fraction, recipe.data.split_seed))
    sets = build_cycle_sets(index, recipe.model.arch, cache=FeatureCache(workspace / "cache"),
                            location_source=recipe.data.location_source, missing=recipe.data.missing,
                            cancel=cancel)
    run_dir = run_dir_for(recipe, workspace)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "recipe.json").write_text(json.dumps(recipe.to_dict(), indent=2))
    torch.manual_seed(recipe.train.seed)  # the initial weights of randomly initialised parts
    model = create_model(recipe.model.arch, pretrained=recipe.model.pretrained, size=recipe.model.size)
    trainer = Trainer(recipe.train, run_dir, on_progress, cancel)
    result = trainer.fit(model, sets["train"], sets.get("test"), sets.get("val"))
    model_dir = run_dir / "model"
    save_trained_model(result.model, model_dir, size=recipe.model.size, pretrained=recipe.model.pretrained,
                       selection=result.selection, selected_epoch=result.selected_epoch,
                       test=result.scores.to_dict() if result.scores else None,
                       data_fingerprint=index.fingerprint(), seed=recipe.train.seed)
    return result, model_dir
