"""Where a run's recordings come from: a folder (ICBHI, SPRSound, HF_Lung, a label table or Audacity tracks) or a
synthetic dataset generated into the workspace, and the split applied to them — the `[data]` table of every
recipe, or several datasets pooled (a list of `[[data]]` tables, core.data.pooled)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_serializer, model_validator

from lungkd.core.data.dataset import DatasetIndex, load_dataset
from lungkd.core.data.index import ICBHI_FORMAT
from lungkd.core.data.label_maps import LabelTarget
from lungkd.core.data.metadata import SPLIT_FILE
from lungkd.core.data.labelled_folders import FORMAT_NAMES, DatasetFormat
from lungkd.core.data.pooled import pool_datasets
from lungkd.core.data.splits import patient_split, train_patients, validation_split
from lungkd.core.errors import DataError, Problem
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.schema import SHAPE_TAGS, Seed, Spec
from lungkd.core.selection import SPLIT_WORDS, Selection
from lungkd.core.storage import atomic_folder
from lungkd.core.workspace.layout import datasets_folder

MAX_SYNTHETIC_RECORDINGS = 20_000
CALIBRATION_SPLIT = "calibration"
MIN_PATIENTS_TO_HOLD_OUT = 5  # fewer training patients keep them all for training
ICBHI_NAME, ICBHI_RECORDINGS = "ICBHI 2017 Respiratory Sound Database", 920


MAX_DATASETS = 16  # in one recipe
SyntheticLayout = Literal["icbhi", "sprsound", "hf_lung", "table", "audacity"]  # core.data.synth_layouts.LAYOUTS


def _without_unset(dumped: dict, keys: tuple[str, ...]) -> dict:
    """Keys added after recipes were first stored are left out of a dump while unset, so the recipes and reports
    of earlier experiments compare and read exactly as before."""
    return {k: v for k, v in dumped.items() if not (k in keys and v is None)}


class SyntheticData(Spec):
    recordings: int = Field(120, ge=1, le=MAX_SYNTHETIC_RECORDINGS)
    seed: Seed = 0
    label_noise: float = Field(0.0, ge=0.0, lt=1.0)  # the share of cycles given a wrong label
    layout: SyntheticLayout | None = None  # the dataset format the recordings are written in; None: ICBHI's

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        return _without_unset(handler(self), ("layout",))


class DataSpec(Spec):
    name: str | None = Field(None, min_length=1, max_length=64)  # in reports and pooled data; default: the folder's
    path: str | None = None
    synthetic: SyntheticData | None = None
    format: DatasetFormat | None = None  # None: by what the folder holds (core.data.labelled_folders)
    label_map: dict[str, LabelTarget] | None = None  # changes to the format's default map (core.data.label_maps)
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

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        return _without_unset(handler(self), ("name", "format", "label_map"))


def _distinct_datasets(specs: tuple[DataSpec, ...]) -> tuple[DataSpec, ...]:
    """Pooled datasets need names of their own, and prompts worded alike (a model's card holds one policy)."""
    if not 1 <= len(specs) <= MAX_DATASETS:
        raise ValueError(f"give between 1 and {MAX_DATASETS} [[data]] tables")
    names = [dataset_label(spec) for spec in specs]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise ValueError(f"two datasets are named '{twice[0]}'; give each [[data]] entry a name = \"...\" of its own")
    if len({(spec.missing, spec.location_source) for spec in specs}) > 1:
        raise ValueError("every [[data]] entry must word prompts alike: give them the same missing and "
                         "location_source")
    return specs


DataList = Annotated[tuple[DataSpec, ...], Field(strict=False), AfterValidator(_distinct_datasets)]


def _shape(value: Any) -> str:
    return SHAPE_TAGS[1] if isinstance(value, (list, tuple)) else SHAPE_TAGS[0]


# `[data]`: one dataset; `[[data]]`: several, pooled
Data = Annotated[Annotated[DataSpec, Tag(SHAPE_TAGS[0])] | Annotated[DataList, Tag(SHAPE_TAGS[1])],
                 Discriminator(_shape)]


def data_specs(data: DataSpec | tuple[DataSpec, ...]) -> tuple[DataSpec, ...]:
    return data if isinstance(data, tuple) else (data,)


def prompt_policy(data: DataSpec | tuple[DataSpec, ...]) -> tuple[str, str]:
    """(missing, location_source): how prompts are worded; the same for every pooled dataset."""
    first = data_specs(data)[0]
    return first.missing, first.location_source


def synthetic_dataset_folder(workspace: Path, spec: SyntheticData) -> Path:
    layout = f"-{spec.layout}" if spec.layout not in (None, ICBHI_FORMAT) else ""
    return datasets_folder(workspace) / f"synthetic-{spec.recordings}-seed{spec.seed}-noise{spec.label_noise:g}{layout}"


def ensure_synthetic_dataset(folder: Path, spec: SyntheticData) -> Path:
    """The synthetic dataset at `folder`, generated once. It is written into a temporary folder and renamed
    into place, so an interrupted generation leaves nothing behind and the next call starts afresh."""
    from lungkd.core.data.synth_layouts import write_synthetic_layout

    if not folder.is_dir():
        with atomic_folder(folder) as tmp:
            write_synthetic_layout(tmp, spec.layout or ICBHI_FORMAT, recordings=spec.recordings, seed=spec.seed,
                                   label_noise=spec.label_noise)
    return folder


def _load(data: DataSpec, workspace: Path) -> DatasetIndex:
    if data.synthetic is not None:
        folder = ensure_synthetic_dataset(synthetic_dataset_folder(workspace, data.synthetic), data.synthetic)
        return load_dataset(folder, label_map=data.label_map)
    return load_dataset(data.path, dataset_format=data.format, label_map=data.label_map)


def evaluation_dataset(data: DataSpec, workspace: Path) -> tuple[DatasetIndex, str]:
    """A dataset models are scored on without having trained on it, what to score in its `test` split, and how
    that is said: the patient-wise test split for split = "patient", else the official test split where the
    dataset has one, else every annotated cycle."""
    index = _load(data, workspace)
    if data.split == "patient":
        index.apply_split(patient_split(index, data.test_fraction, data.split_seed))
        return index, "patient-wise test split"
    if index.has_official_split:
        return index, "test split"
    index.apply_split({r.name: "test" for r in index.recordings})
    return index, "every cycle"


def with_the_folders_split(data: DataSpec | tuple[DataSpec, ...]) -> DataSpec | tuple[DataSpec, ...]:
    """`data` with split = "patient" where it keeps "official" on a folder that has no official split (no split
    file, no train and test folders): a plain folder of recordings has none to keep. Generated, pooled and
    already patient-wise data are returned as they are. A plain folder of one patient, which no patient-wise
    split can divide, is refused with that cause."""
    if isinstance(data, tuple) or data.path is None or data.split != "official":
        return data
    index = load_dataset(data.path, probe_audio_files=False, dataset_format=data.format, label_map=data.label_map)
    if index.has_official_split:
        return data
    patients = sorted({r.patient for r in index.recordings})
    if len(patients) < 2:
        raise DataError(f"the folder has no split file, so its recordings are split by patient, but they are all "
                        f"of one patient ({', '.join(patients) or 'none'}); a model is tested on patients it never "
                        "trained on.", path=index.root, fix="add the recordings of at least one more patient.")
    return data.replace(split="patient")


def resolve_dataset(data: DataSpec | tuple[DataSpec, ...], workspace: Path, *,
                    selection: Selection = Selection.BEST_TEST) -> DatasetIndex:
    """The dataset of a recipe with its split applied: the official or a patient-wise split, and for
    `best_val` a patient-wise validation set carved from train; for the other selections a patient-wise
    `calibration` set carved from train (`calibration_fraction`), on which the model's probabilities are
    calibrated (core/training/calibration.py), when train has enough patients to spare one. Several datasets
    are each split so, by their own settings, then pooled."""
    if isinstance(data, tuple):
        return pool_datasets([(dataset_label(spec), resolve_dataset(spec, workspace, selection=selection))
                              for spec in data])
    index = _load(data, workspace)
    if data.split == "patient" or not (index.has_official_split or index.format == ICBHI_FORMAT):
        index.apply_split(patient_split(index, data.test_fraction, data.split_seed))
        if data.split == "official":
            index.warnings.append(Problem(str(index.root), "no official split (no train and test folders): the "
                                          f"recordings are split patient-wise, {data.test_fraction:.0%} of the "
                                          "patients in test.", 'set split = "patient" in the recipe\'s [data] to '
                                          "say so, or put the recordings in train/ and test/ folders."))
    if Selection(selection).holds_out == "val":
        index.apply_split(validation_split(index, data.val_fraction, data.split_seed))
    elif data.calibration_fraction and train_patients(index) >= MIN_PATIENTS_TO_HOLD_OUT:
        index.apply_split(validation_split(index, data.calibration_fraction, data.split_seed, into=CALIBRATION_SPLIT))
    elif data.calibration_fraction and train_patients(index):  # none at all: check_trainable refuses with why
        index.warnings.append(Problem(str(index.root), f"only {train_patients(index)} training patients: none is held "
                                      "out to calibrate the model, whose probabilities stay uncalibrated.",
                                      f"use a dataset with at least {MIN_PATIENTS_TO_HOLD_OUT} training patients, or "
                                      'selection = "best_val".'))
    return index


def dataset_label(data: DataSpec | tuple[DataSpec, ...]) -> str:
    """A short name of the recipe's data, as a person would say it: its `name`, else the folder's name, or the
    synthetic dataset's folder name (e.g. `synthetic-48-seed0-noise0.1`); pooled datasets joined by " + "."""
    if isinstance(data, tuple):
        return " + ".join(dataset_label(spec) for spec in data)
    if data.name:
        return data.name
    if data.synthetic is not None:
        return synthetic_dataset_folder(Path("."), data.synthetic).name
    return Path(data.path).name


def describe_test_data(data: DataSpec, cycles: int, patients: int) -> dict:
    """The data a model's test Score was measured on, for its card: the recipe's data by name and the test
    split's cycles and patients (what the card's warnings about too small a test are read from)."""
    return {"dataset": dataset_label(data), "split": "test", "cycles": cycles, "patients": patients}


_FIXES = {"train": "put the recordings' audio files (.wav) beside their annotations",
          "test": "put the test recordings' audio files beside their annotations (the full ICBHI download has them), "
                  'or choose selection = "best_val" (validation carved from train) or "last"',
          "val": 'add recordings of more training patients, or choose selection = "last"'}


def trainability_problem(stats: dict, selection: Selection) -> tuple[str, str] | None:
    """Why a dataset (its `DatasetIndex.stats()`) cannot be trained on with `selection`, and the fix; None when
    it can. A split the selection needs without cycles that have readable audio is the reason; a folder in ICBHI's
    layout kept on split = "official" without ICBHI's split file has no split at all, and that is the reason."""
    if not stats["official_split"] and set(stats["recordings_per_split"]) == {"none"}:
        return (f'split = "official" takes the train and test recordings from ICBHI\'s split file ({SPLIT_FILE}), '
                f"and the folder has none, so none of its {stats['recordings']} recordings is in train or test.",
                'choose split = "patient" (a patient-wise split, test_fraction of the patients in test), or put '
                f"{SPLIT_FILE} beside the recordings.")
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


def describe_training_data(data: DataSpec | tuple[DataSpec, ...], index: DatasetIndex) -> dict:
    """What a model trained on `index` (split applied) learnt from, for its card: the source (synthetic, a named
    dataset, a folder, or several datasets pooled) and the training and held-out recordings' cycles per class,
    devices and sample rates."""
    if isinstance(data, tuple):
        synthetic = all(spec.synthetic is not None for spec in data)
        source = {"kind": "synthetic" if synthetic else "datasets", "name": dataset_label(data)}
    elif data.synthetic is not None:
        source = {"kind": "synthetic", "name": "LungKD synthetic recordings",
                  "generator": data.synthetic.model_dump(mode="json")}
    elif index.has_split_file:
        name = ICBHI_NAME if len(index.recordings) == ICBHI_RECORDINGS else f"{index.root.name} (ICBHI layout)"
        source = {"kind": "dataset", "name": name, "path": str(index.root)}
    elif index.format != ICBHI_FORMAT:
        source = {"kind": "dataset", "name": f"{index.root.name} ({FORMAT_NAMES[index.format]})",
                  "path": str(index.root)}
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
