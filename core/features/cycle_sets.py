"""From a dataset index to model-ready cycle sets: preparation, features and prompts, as an `InputSpec`
(which the model registry holds for each architecture) describes them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import numpy as np

if TYPE_CHECKING:  # the input specs are read without torch (recipes, listings); the sets are built with it
    import torch

from lungkd.core.data.dataset import DatasetIndex
from lungkd.core.data.prompts import PARTS, dataset_prompts
from lungkd.core.errors import DataError
from lungkd.core.features.cache import FeatureCache, prepare_dataset
from lungkd.core.features.inputs import InputSpec

SPLIT_ORDER = ("train", "val", "calibration", "test")  # calibration: held out of train (core.data.sources)


@dataclass
class CycleSet:
    """Model inputs of a set of cycles in dataset order, with hard labels (and BTS prompts)."""

    features: torch.Tensor  # (N, frames, mel) for fbank models, (N, 1, frames, mel) for CLAP models
    labels: torch.Tensor  # (N,) int64
    prompts: list[str] | None = None
    cycle_ids: list[str] | None = None  # "recording#index": ties teacher logits to cycles across architectures
    patients: list[str] | None = None  # for patient-level bootstrap intervals
    datasets: list[str] | None = None  # each cycle's dataset, when several are pooled (core.data.pooled)

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def build_cycle_sets(index: DatasetIndex, inputs: InputSpec, *, cache: FeatureCache | None = None,
                     location_source: str = "patient", missing: str = "reference", parts: tuple[str, ...] = PARTS,
                     progress: Callable[[int, int], None] | None = None, cancel=None) -> dict[str, CycleSet]:
    """One CycleSet per split present (train, val, test), each in dataset order.

    Recordings whose audio cannot be used are left out; the reasons stay in `index.warnings`
    and the prepared dataset's problems, which are appended there too.
    """
    import torch

    usable = [r for r in index.recordings if r.usable_audio and r.cycles and r.split]
    if not usable:
        raise DataError("no recording with usable audio, cycles and a split.", path=index.root,
                        fix="check the warnings of `lungkd data stats` for this folder.")
    # Recordings grouped by split, so each split's rows are one slice of the prepared array: the sets are
    # views of it, and the inputs (hundreds of MB) are held once rather than copied split by split.
    rank = {split: i for i, split in enumerate(SPLIT_ORDER)}
    prepared = prepare_dataset(usable, inputs.prep, inputs.features, cache, progress=progress, cancel=cancel,
                               order=lambda rec: (rank.get(rec.split, len(rank)), rec.name))
    index.warnings.extend(p for p in prepared.problems if p not in index.warnings)
    prompts = dataset_prompts(index, location_source=location_source, missing=missing, parts=parts) \
        if inputs.prompts else None
    split_of = {r.name: r.split for r in usable}
    patient_of = {r.name: r.patient for r in usable}
    dataset_of = {r.name: r.dataset for r in usable} if index.datasets else None
    sides = np.array([split_of[c.recording] for c in prepared.cycles])
    sets = {}
    for split in SPLIT_ORDER:
        rows = np.flatnonzero(sides == split)
        if rows.size == 0:
            continue
        start, stop = int(rows[0]), int(rows[-1]) + 1
        cycles = prepared.cycles[start:stop]
        sets[split] = CycleSet(torch.from_numpy(prepared.inputs[start:stop]),
                               torch.from_numpy(prepared.labels[start:stop]),
                               [prompts[c.recording] for c in cycles] if prompts else None,
                               [f"{c.recording}#{c.index}" for c in cycles],
                               [patient_of[c.recording] for c in cycles],
                               [dataset_of[c.recording] for c in cycles] if dataset_of else None)
    return sets
