"""Several datasets trained on together (a recipe's `[[data]]` list): their indexes, each already split by its own
settings, pooled into one. Every recording keeps its dataset's name (`Recording.dataset`) and is named
`DATASET/NAME`, its patient `DATASET/PATIENT`, so that recordings and patients of different datasets never
meet under one name (two ICBHI-style folders both have a patient 101)."""
from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from lungkd.core.data.index import DatasetIndex
from lungkd.core.data.label_maps import Tally
from lungkd.core.data.records import Recording

POOLED_FORMAT = "pooled"


def pooled_name(dataset: str, name: str) -> str:
    return f"{dataset}/{name}"


def _renamed(recording: Recording, dataset: str) -> Recording:
    name = pooled_name(dataset, recording.name)
    return replace(recording, name=name, patient=pooled_name(dataset, recording.patient), dataset=dataset,
                   cycles=tuple(replace(c, recording=name) for c in recording.cycles))


def pool_datasets(parts: list[tuple[str, DatasetIndex]]) -> DatasetIndex:
    """One index of the named datasets, recordings sorted by their pooled names (the dataset order); each part's
    warnings, label counts and what it left out are kept."""
    recordings = sorted((_renamed(r, name) for name, index in parts for r in index.recordings), key=lambda r: r.name)
    patients = {pooled_name(name, pid): replace(p, pid=pooled_name(name, pid))
                for name, index in parts for pid, p in index.patients.items()}
    tally, label_map = Tally(), {}
    for _, index in parts:
        tally.add(index.tally)
        label_map.update(index.label_map)
    roots = [index.root.absolute() for _, index in parts]
    try:
        root = Path(os.path.commonpath(roots))
    except ValueError:  # on different drives
        root = roots[0]
    return DatasetIndex(root, recordings, patients, warnings=[w for _, index in parts for w in index.warnings],
                        has_split_file=all(index.has_split_file for _, index in parts),
                        format=POOLED_FORMAT, split_from_folders=any(index.split_from_folders for _, index in parts),
                        label_map=label_map, tally=tally, datasets={name: index.root for name, index in parts})
