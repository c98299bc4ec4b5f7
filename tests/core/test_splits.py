"""Patient-wise splits: no patient on both sides, reproducible for a seed, validation carved from train."""
import pytest

from lungkd.core.data.dataset import load_dataset
from lungkd.core.errors import DataError
from lungkd.core.data.splits import patient_split, validation_split


@pytest.fixture(scope="module")
def index(icbhi_dir):
    return load_dataset(icbhi_dir, probe_audio_files=False)


def _patients_by_side(index, assignment):
    sides = {}
    for rec in index.recordings:
        sides.setdefault(rec.patient, set()).add(assignment[rec.name])
    return sides


def test_patient_split_keeps_each_patient_on_one_side(index):
    assignment = patient_split(index, test_fraction=0.4, seed=3)
    sides = _patients_by_side(index, assignment)
    assert all(len(s) == 1 for s in sides.values())
    assert sum(s == {"test"} for s in sides.values()) == round(0.4 * 126)
    assert assignment == patient_split(index, test_fraction=0.4, seed=3)
    assert assignment != patient_split(index, test_fraction=0.4, seed=4)


def test_validation_split_is_carved_from_train_only(index):
    assignment = validation_split(index, val_fraction=0.2, seed=1)
    official = {r.name: r.split for r in index.recordings}
    assert all(assignment[name] == "test" for name, split in official.items() if split == "test")
    val = {name for name, side in assignment.items() if side == "val"}
    assert val and all(official[name] == "train" for name in val)
    val_patients = {index.recording(name).patient for name in val}
    train_patients = {index.recording(n).patient for n, side in assignment.items() if side == "train"}
    assert not val_patients & train_patients
    train_patient_count = len({r.patient for r in index.recordings if r.split == "train"})
    assert len(val_patients) == round(0.2 * train_patient_count)


def test_apply_split_changes_the_counts(index):
    fresh = load_dataset(index.root, probe_audio_files=False)
    fresh.apply_split(validation_split(fresh, 0.2, seed=0))
    stats = fresh.stats()
    assert sum(stats["cycles"]["train"].values()) + sum(stats["cycles"]["val"].values()) == 4142
    assert sum(stats["cycles"]["test"].values()) == 2756


def test_bad_fraction_is_refused_with_a_fix(index):
    with pytest.raises(DataError, match="between 0 and 1"):
        patient_split(index, test_fraction=1.5)
