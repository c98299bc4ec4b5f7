"""Patient-wise splits: no patient on both sides, reproducible for a seed, validation carved from train. On a
generated dataset in ICBHI layout, so that a clone without the real ICBHI files runs them too; the official
split's counts after carving validation are a fact of the real files and stay on them."""
import pytest

from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset
from lungkd.core.errors import DataError
from lungkd.core.data.splits import patient_split, validation_split

# 110 generated recordings of 31 patients, 17 of them with recordings in the official train split. Like ICBHI's
# patients 156 and 218, one patient (120) has recordings on both sides: six in train, one in test; validation
# with seed 1 draws it, so its test recording is the one a validation split must leave alone.
PATIENTS, TRAIN_PATIENTS, MIXED = 31, 17, "120"


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    folder = ensure_synthetic_dataset(tmp_path_factory.getbasetemp() / "synthetic-110-seed0",
                                      SyntheticData(recordings=110, seed=0))
    index = load_dataset(folder, probe_audio_files=False)
    official = {}
    for rec in index.recordings:
        official.setdefault(rec.patient, []).append(rec.split)
    assert (len(official), sum("train" in s for s in official.values())) == (PATIENTS, TRAIN_PATIENTS), \
        "the synthetic dataset changed: pick again"
    assert [p for p, s in official.items() if set(s) == {"train", "test"}] == [MIXED]
    assert sorted(official[MIXED]) == ["test"] + ["train"] * 6
    return index


def _patients_by_side(index, assignment):
    sides = {}
    for rec in index.recordings:
        sides.setdefault(rec.patient, set()).add(assignment[rec.name])
    return sides


def test_patient_split_keeps_each_patient_on_one_side(index):
    assignment = patient_split(index, test_fraction=0.4, seed=3)
    sides = _patients_by_side(index, assignment)
    assert len(sides) == PATIENTS and all(len(s) == 1 for s in sides.values())
    assert sum(s == {"test"} for s in sides.values()) == round(0.4 * PATIENTS) == 12
    assert sides[MIXED] in ({"train"}, {"test"})  # official split on both sides, one side here
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
    assert len(val_patients) == round(0.2 * train_patient_count) == round(0.2 * TRAIN_PATIENTS) == 3
    # the patient on both official sides gave its train recordings to validation; its test one stayed
    assert MIXED in val_patients
    assert sorted(assignment[r.name] for r in index.recordings if r.patient == MIXED) == ["test"] + ["val"] * 6


def test_apply_split_changes_the_counts(icbhi_dir):
    """SPEC's official split of the real files: 4142 train and 2756 test cycles, validation carved from train."""
    fresh = load_dataset(icbhi_dir, probe_audio_files=False)
    fresh.apply_split(validation_split(fresh, 0.2, seed=0))
    stats = fresh.stats()
    assert sum(stats["cycles"]["train"].values()) + sum(stats["cycles"]["val"].values()) == 4142
    assert sum(stats["cycles"]["test"].values()) == 2756


def test_bad_fraction_is_refused_with_a_fix(synthetic_dir):
    with pytest.raises(DataError, match="between 0 and 1"):
        patient_split(load_dataset(synthetic_dir, probe_audio_files=False), test_fraction=1.5)
