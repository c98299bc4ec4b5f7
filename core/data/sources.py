"""Where a run's recordings come from: a folder (ICBHI or ICBHI-style) or a synthetic dataset generated
into the workspace, and the split applied to them — the `[data]` table of every recipe."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from lungkd.core.data.dataset import DatasetIndex, load_dataset
from lungkd.core.data.splits import patient_split, train_patients, validation_split
from lungkd.core.errors import DataError, Problem
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.schema import Seed, Spec
from lungkd.core.selection import SPLIT_WORDS, Selection
from lungkd.core.storage import atomic_folder
from lungkd.core.workspace.layout import datasets_folder

MAX_SYNTHETIC_RECORDINGS = 20_000
CALIBRATION_SPLIT = "calibration"
MIN_PATIENTS_TO_HOLD_OUT = 5  # fewer training patients keep them all for training
ICBHI_NAME, ICBHI_RECORDINGS = "ICBHI 2017 Respiratory Sound Database", 920


class SyntheticData(Spec):
    recordings: int = Field(120, ge=1, le=MAX_SYNTHETIC_RECORDINGS)
    seed: Seed = 0
    label_noise: float = Field(0.0, ge=0.0, lt=1.0)  # the share of cycles given a wrong label


class DataSpec(Spec):
    path: str | None = None
    synthetic: SyntheticData | None = None
    split: Literal["official", "patient"] = "official"  # the dataset's split file | random, patient-wise
    test_fraction: float = Field(0.4, gt=0.0, lt=1.0)  # for split = "patient"
    split_seed: Seed = 0
    val_fraction: float = Field(0.2, gt=0.0, lt=1.0)  # for selection = "best_val"
    # held out of train, where there is no validation split, to calibrate the model: 0 for none
    calibration_fraction: float = Field(0.1, ge=0.0, lt=1.0)
    location_source: Literal["patient", "filename"] = "patient"  # where BTS prompts take the chest location
    missing: Literal["reference", "unknown"] = "reference"  # how BTS prompts word missing age and sex

    @model_validator(mode="after")
    def _one_source(self) -> "DataSpec":
        if (self.path is None) == (self.synthetic is None):
            raise ValueError('needs exactly one of path = "/folder/of/ICBHI" or '
                             "synthetic = { recordings = 120, seed = 0 }")
        return self


def synthetic_dataset_folder(workspace: Path, spec: SyntheticData) -> Path:
    return datasets_folder(workspace) / f"synthetic-{spec.recordings}-seed{spec.seed}-noise{spec.label_noise:g}"


def ensure_synthetic_dataset(folder: Path, spec: SyntheticData) -> Path:
    """The synthetic dataset at `folder`, generated once. It is written into a temporary folder and renamed
    into place, so an interrupted generation leaves nothing behind and the next call starts afresh."""
    from lungkd.core.data.synth import write_synthetic_dataset

    if not folder.is_dir():
        with atomic_folder(folder) as tmp:
            write_synthetic_dataset(tmp, recordings=spec.recordings, seed=spec.seed, label_noise=spec.label_noise)
    return folder


def resolve_dataset(data: DataSpec, workspace: Path, *, selection: Selection = Selection.BEST_TEST) -> DatasetIndex:
    """The dataset of a recipe with its split applied: the official or a patient-wise split, and for
    `best_val` a patient-wise validation set carved from train; for the other selections a patient-wise
    `calibration` set carved from train (`calibration_fraction`), on which the model's probabilities are
    calibrated (core/training/calibration.py), when train has enough patients to spare one."""
    if data.synthetic is not None:
        index = load_dataset(ensure_synthetic_dataset(synthetic_dataset_folder(workspace, data.synthetic),
                                                      data.synthetic))
    else:
        index = load_dataset(data.path)
    if data.split == "patient":
        index.apply_split(patient_split(index, data.test_fraction, data.split_seed))
    if Selection(selection).holds_out == "val":
        index.apply_split(validation_split(index, data.val_fraction, data.split_seed))
    elif data.calibration_fraction and train_patients(index) >= MIN_PATIENTS_TO_HOLD_OUT:
        index.apply_split(validation_split(index, data.calibration_fraction, data.split_seed, into=CALIBRATION_SPLIT))
    elif data.calibration_fraction:
        index.warnings.append(Problem(str(index.root), f"only {train_patients(index)} training patients: none is held "
                                      "out to calibrate the model, whose probabilities stay uncalibrated.",
                                      f"use a dataset with at least {MIN_PATIENTS_TO_HOLD_OUT} training patients, or "
                                      'selection = "best_val".'))
    return index


def dataset_label(data: DataSpec) -> str:
    """A short name of the recipe's data, as a person would say it: the folder's name, or the synthetic
    dataset's folder name (e.g. `synthetic-48-seed0-noise0.1`)."""
    if data.synthetic is not None:
        return synthetic_dataset_folder(Path("."), data.synthetic).name
    return Path(data.path).name


_FIXES = {"train": "put the recordings' audio files (.wav) beside their annotations",
          "test": "put the test recordings' audio files beside their annotations (the full ICBHI download has them), "
                  'or choose selection = "best_val" (validation carved from train) or "last"',
          "val": 'add recordings of more training patients, or choose selection = "last"'}


def trainability_problem(stats: dict, selection: Selection) -> tuple[str, str] | None:
    """Why a dataset (its `DatasetIndex.stats()`) cannot be trained on with `selection`, and the fix; None when
    it can. A split the selection needs without cycles that have readable audio is the reason."""
    for split in Selection(selection).needs:
        if stats["cycles_with_audio"].get(split, 0):
            continue
        annotated = sum(stats["cycles"].get(split, {}).values())
        words = SPLIT_WORDS[split]
        why = (f"its {annotated} annotated cycles have no readable audio here" if annotated else
               f"the dataset has no {words} cycles")
        needs = "training needs" if split == "train" else f'selection = "{selection}" needs'
        return f"{needs} cycles with audio in the {words} split, but {why}.", _FIXES[split] + "."
    return None


def check_trainable(index: DatasetIndex, selection: Selection) -> None:
    """Refuses, before anything trains, a dataset whose needed split has no cycles with audio."""
    problem = trainability_problem(index.stats(), selection)
    if problem is not None:
        raise DataError(problem[0], path=index.root, fix=problem[1])


def describe_training_data(data: DataSpec, index: DatasetIndex) -> dict:
    """What a model trained on `index` (split applied) learnt from, for its card: the source (synthetic, a named
    dataset or a folder) and the training and held-out recordings' cycles per class, devices and sample rates."""
    if data.synthetic is not None:
        source = {"kind": "synthetic", "name": "LungKD synthetic recordings",
                  "generator": data.synthetic.model_dump(mode="json")}
    elif index.has_split_file:
        name = ICBHI_NAME if len(index.recordings) == ICBHI_RECORDINGS else f"{index.root.name} (ICBHI layout)"
        source = {"kind": "dataset", "name": name, "path": str(index.root)}
    else:
        source = {"kind": "folder", "name": index.root.name, "path": str(index.root)}
    return {**source, **{split: _split_summary(index, split) for split in ("train", "val", CALIBRATION_SPLIT)
                         if any(r.split == split for r in index.recordings)}}


def _split_summary(index: DatasetIndex, split: str) -> dict:
    recordings = [r for r in index.recordings if r.split == split and r.usable_audio and r.cycles]
    labels = Counter(c.label for r in recordings for c in r.cycles)
    return {"recordings": len(recordings), "patients": len({r.patient for r in recordings}),
            "cycles": {name: labels[i] for i, name in enumerate(CLASS_NAMES)},
            "devices": dict(sorted(Counter(r.device or "unknown" for r in recordings).items())),
            "sample_rates": {str(k): v for k, v in sorted(Counter(r.sample_rate for r in recordings).items())}}
