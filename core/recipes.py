"""Recipes: a TOML file that describes a training run completely (DESIGN.md), validated on load.

    [data]   path = "ICBHI folder"  or  synthetic = { recordings = 120, seed = 0, label_noise = 0.0 }
             split = "official" | "patient"; test_fraction, split_seed, val_fraction, location_source
    [model]  arch, size = "full" | "tiny", pretrained = "" (random init) | hub id | local folder
    [train]  epochs, batch_size, lr, weight_decay, weight_averaging, specaugment, mixed_precision,
             selection, seed, deterministic, device
"""
from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from .errors import LungKDError
from .training import SELECTIONS, TrainConfig

ARCHITECTURES = ("cnn6", "resnet18", "efficientnet_b0", "ast", "audio_clap", "bts")


class RecipeError(LungKDError):
    """A recipe key with a missing, unknown or out-of-range value."""


@dataclass(frozen=True)
class SyntheticData:
    recordings: int = 120
    seed: int = 0
    label_noise: float = 0.0


@dataclass(frozen=True)
class DataSpec:
    path: str | None = None
    synthetic: SyntheticData | None = None
    split: str = "official"  # official (the dataset's split file) | patient (random, patient-wise)
    test_fraction: float = 0.4
    split_seed: int = 0
    val_fraction: float = 0.2  # for selection = "best_val"
    location_source: str = "patient"
    missing: str = "reference"


@dataclass(frozen=True)
class ModelSpec:
    arch: str = "cnn6"
    size: str = "full"
    pretrained: str | None = None


@dataclass(frozen=True)
class TrainRecipe:
    name: str
    data: DataSpec
    model: ModelSpec
    train: TrainConfig
    source: str | None = None  # the file it was read from

    def to_dict(self) -> dict:
        return {"name": self.name, "data": asdict(self.data), "model": asdict(self.model), "train": asdict(self.train)}


_CHOICES = {
    ("data", "split"): ("official", "patient"),
    ("data", "location_source"): ("patient", "filename"),
    ("data", "missing"): ("reference", "unknown"),
    ("model", "arch"): ARCHITECTURES,
    ("model", "size"): ("full", "tiny"),
    ("train", "selection"): SELECTIONS,
}


def _build(cls, table: dict, section: str, path: str | None):
    """Dataclass `cls` from a TOML table, refusing unknown keys, wrong types and values outside the choices."""
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in known:
            raise RecipeError(f"unknown key [{section}] {key}.", path=path,
                              fix=f"use one of: {', '.join(sorted(known))}.")
        default = known[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise RecipeError(f"[{section}] {key} must be true or false, not {value!r}.", path=path,
                              fix=f"write {key} = true or {key} = false.")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and (
                isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RecipeError(f"[{section}] {key} must be a number, not {value!r}.", path=path,
                              fix=f"write e.g. {key} = {default}.")
        choices = _CHOICES.get((section, key))
        if choices and value not in choices:
            raise RecipeError(f"[{section}] {key} = {value!r} is not allowed.", path=path,
                              fix=f"use one of: {', '.join(choices)}.")
        values[key] = value
    return cls(**values)


def parse_recipe(document: dict, path: str | None = None) -> TrainRecipe:
    unknown = set(document) - {"name", "data", "model", "train"}
    if unknown:
        raise RecipeError(f"unknown section(s) {', '.join(sorted(unknown))}.", path=path,
                          fix="a training recipe has name, [data], [model] and [train].")
    data_table = dict(document.get("data", {}))
    synthetic = data_table.pop("synthetic", None)
    data = _build(DataSpec, data_table, "data", path)
    if synthetic is not None:
        data = DataSpec(**{**asdict(data), "synthetic": _build(SyntheticData, synthetic, "data.synthetic", path)})
    if (data.path is None) == (data.synthetic is None):
        raise RecipeError("[data] needs exactly one of path or synthetic.", path=path,
                          fix='write path = "/folder/of/ICBHI" or synthetic = { recordings = 120, seed = 0 }.')
    model = _build(ModelSpec, document.get("model", {}), "model", path)
    if model.pretrained == "":
        model = ModelSpec(model.arch, model.size, None)
    try:
        train = _build(TrainConfig, document.get("train", {}), "train", path)
    except LungKDError as exc:
        raise RecipeError(exc.problem.message, path=path, fix=exc.problem.fix) from None
    return TrainRecipe(str(document.get("name", Path(path).stem if path else "recipe")), data, model, train, path)


def load_recipe(path: str | Path) -> TrainRecipe:
    path = Path(path)
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError("recipe file not found.", path=path, fix="give the path of a .toml recipe.") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"not valid TOML ({exc}).", path=path, fix="correct the syntax at the place named.") from None
    return parse_recipe(document, str(path))
