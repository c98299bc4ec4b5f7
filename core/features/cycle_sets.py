"""From a dataset index to model-ready cycle sets: preparation, features and prompts per architecture."""
from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from lungkd.core.features.cache import FeatureCache, prepare_dataset
from lungkd.core.data.dataset import DatasetIndex
from lungkd.core.errors import DataError
from lungkd.core.features.spectral import ClapFeatureSettings, FbankSettings
from lungkd.core.features.prepare import PrepSettings
from lungkd.core.data.prompts import dataset_prompts
from lungkd.core.training.trainer import CycleSet

CLAP_ARCHITECTURES = ("audio_clap", "bts")


def input_settings(arch: str) -> tuple[PrepSettings, FbankSettings | ClapFeatureSettings]:
    """SPEC section 4: CLAP models get 48 kHz CLAP log-mel; the others 16 kHz fbank, AST with AudioSet statistics."""
    if arch in CLAP_ARCHITECTURES:
        return PrepSettings(sample_rate=48000), ClapFeatureSettings()
    return PrepSettings(sample_rate=16000), FbankSettings(normalization="audioset" if arch == "ast" else "per_sample")


def build_cycle_sets(index: DatasetIndex, arch: str, *, cache: FeatureCache | None = None,
                     location_source: str = "patient", missing: str = "reference",
                     progress: Callable[[int, int], None] | None = None, cancel=None) -> dict[str, CycleSet]:
    """One CycleSet per split present (train, test, val), each in dataset order.

    Recordings whose audio cannot be used are left out; the reasons stay in `index.warnings`
    and the prepared dataset's problems, which are appended there too.
    """
    prep, features = input_settings(arch)
    usable = [r for r in index.recordings if r.usable_audio and r.cycles and r.split]
    if not usable:
        raise DataError("no recording with usable audio, cycles and a split.", path=index.root,
                        fix="check the warnings of `lungkd data stats` for this folder.")
    prepared = prepare_dataset(usable, prep, features, cache, progress=progress, cancel=cancel)
    index.warnings.extend(p for p in prepared.problems if p not in index.warnings)
    prompts = dataset_prompts(index, location_source=location_source, missing=missing) if arch == "bts" else None
    split_of = {r.name: r.split for r in usable}
    patient_of = {r.name: r.patient for r in usable}
    sides = np.array([split_of[c.recording] for c in prepared.cycles])
    sets = {}
    for split in ("train", "val", "test"):
        rows = np.flatnonzero(sides == split)
        if rows.size == 0:
            continue
        cycles = [prepared.cycles[i] for i in rows]
        sets[split] = CycleSet(torch.from_numpy(np.ascontiguousarray(prepared.inputs[rows])),
                               torch.from_numpy(prepared.labels[rows]),
                               [prompts[c.recording] for c in cycles] if prompts else None,
                               [f"{c.recording}#{c.index}" for c in cycles],
                               [patient_of[c.recording] for c in cycles])
    return sets
