"""Train/test/validation splits. ICBHI's official split is recording-level; ours are patient-wise."""
from __future__ import annotations

import numpy as np

from lungkd.core.data.dataset import DatasetIndex
from lungkd.core.errors import DataError


def _patients(index: DatasetIndex, split: str | None = None) -> list[str]:
    return sorted({r.patient for r in index.recordings if split is None or r.split == split})


def _draw_patients(patients: list[str], fraction: float, seed: int) -> set[str]:
    if not 0.0 < fraction < 1.0:
        raise DataError(f"split fraction {fraction} must be between 0 and 1 (exclusive).",
                        fix="use e.g. 0.2 for a fifth of the patients.")
    if len(patients) < 2:
        raise DataError(f"a patient-wise split needs at least 2 patients, the data has {len(patients)}.",
                        fix="add recordings of more patients or use the official split.")
    count = min(len(patients) - 1, max(1, round(fraction * len(patients))))
    order = np.random.default_rng(seed).permutation(len(patients))
    return {patients[i] for i in order[:count]}


def patient_split(index: DatasetIndex, test_fraction: float = 0.4, seed: int = 0) -> dict[str, str]:
    """Random patient-wise split: every recording of a patient lands on the same side."""
    test_patients = _draw_patients(_patients(index), test_fraction, seed)
    return {r.name: "test" if r.patient in test_patients else "train" for r in index.recordings}


def validation_split(index: DatasetIndex, val_fraction: float = 0.2, seed: int = 0, *,
                     into: str = "val") -> dict[str, str]:
    """Carve a patient-wise validation set out of train (for `best_val`; `into="calibration"` for the cycles
    a model is calibrated on); test stays untouched.

    A patient with recordings in both official splits (ICBHI 156, 218) may give its train
    recordings to validation; the test set is never looked at.
    """
    val_patients = _draw_patients(_patients(index, "train"), val_fraction, seed)
    assignment = {r.name: r.split for r in index.recordings if r.split}
    for rec in index.recordings:
        if rec.split == "train" and rec.patient in val_patients:
            assignment[rec.name] = into
    return assignment


def train_patients(index: DatasetIndex) -> int:
    return len(_patients(index, "train"))
