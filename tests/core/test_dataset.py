"""The dataset index on the real ICBHI files (their facts: SPEC counts, quirks, demographics), on the generated
recordings in ICBHI layout and on small folders built for each case."""
import json
import shutil
import subprocess
import sys

import numpy as np
import soundfile as sf

from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.metadata import match_split_names, parse_recording_name

SPEC_COUNTS = {
    "train": {"normal": 2063, "crackle": 1215, "wheeze": 501, "both": 363},
    "test": {"normal": 1579, "crackle": 649, "wheeze": 385, "both": 143},
    "all": {"normal": 3642, "crackle": 1864, "wheeze": 886, "both": 506},
}


def test_official_split_reproduces_spec_counts_from_annotations_alone(icbhi_dir):
    stats = load_dataset(icbhi_dir, probe_audio_files=False).stats()
    assert stats["recordings"] == 920
    assert stats["patients"] == 126
    assert stats["recordings_per_split"] == {"train": 539, "test": 381}
    for split, counts in SPEC_COUNTS.items():
        assert stats["cycles"][split] == counts
    assert sum(stats["cycles"]["all"].values()) == 6898


def test_the_226_quirk_is_matched_and_reported(icbhi_dir):
    index = load_dataset(icbhi_dir, probe_audio_files=False)
    assert [(m.file_name, m.split_name) for m in index.name_matches] == [
        ("226_1b1_Pl_sc_LittC2SE", "226_1b1_Pl_sc_Meditron")]
    rec = index.recording("226_1b1_Pl_sc_LittC2SE")
    assert rec.split == "train" and rec.split_name == "226_1b1_Pl_sc_Meditron"


def test_littc2se_never_in_test_and_patients_156_218_in_both_splits(icbhi_dir):
    index = load_dataset(icbhi_dir, probe_audio_files=False)
    assert not [r for r in index.recordings if r.device == "LittC2SE" and r.split == "test"]
    both = {p for p in {r.patient for r in index.recordings}
            if {r.split for r in index.recordings if r.patient == p} == {"train", "test"}}
    assert both == {"156", "218"}


def test_the_91_old_names_are_matched_through_filename_differences(icbhi_dir, tmp_path):
    """An older download names 91 files *_AKGC417L / *_LittC2SE while the split says *_Meditron."""
    old_names = [line.strip().strip("'") for line in (icbhi_dir / "filename_differences.txt").read_text().split()]
    assert len(old_names) == 91
    for src in (icbhi_dir / "annotations").glob("*.txt"):
        shutil.copy(src, tmp_path / src.name)
    for name in ("ICBHI_challenge_train_test.txt", "filename_differences.txt"):
        shutil.copy(icbhi_dir / name, tmp_path / name)
    for old in old_names:
        new = parse_recording_name(old).prefix + "_Meditron"
        (tmp_path / f"{new}.txt").rename(tmp_path / f"{old}.txt")
    index = load_dataset(tmp_path, probe_audio_files=False)
    matched = {m.file_name: m for m in index.name_matches}
    assert len(matched) == 92  # the 91 renamed files and 226_1b1_Pl_sc_LittC2SE
    assert all(matched[old].reason == "listed in filename_differences.txt" for old in old_names)
    stats = index.stats()
    for split, counts in SPEC_COUNTS.items():
        assert stats["cycles"][split] == counts
    assert not [w for w in index.warnings if "not in the split file" in w.message]


def test_name_match_is_refused_when_ambiguous():
    split = {"300_1b1_Al_sc_Meditron": "train", "300_1b1_Al_sc_Litt3200": "test"}
    assert match_split_names(["300_1b1_Al_sc_AKGC417L"], split, set()) == []


def test_file_name_fields_are_parsed():
    name = parse_recording_name("107_2b3_Al_mc_AKGC417L")
    assert (name.patient, name.recording_index, name.location, name.mode, name.device) == (
        "107", "2b3", "Al", "mc", "AKGC417L")
    assert parse_recording_name("my recording") is None


def test_real_recordings_with_audio_in_a_subfolder(icbhi_dir):
    index = load_dataset(icbhi_dir)
    with_audio = [r for r in index.recordings if r.usable_audio]
    assert len(with_audio) == 10
    assert {r.sample_rate for r in with_audio} == {44100}
    assert sum(len(r.cycles) for r in with_audio) == 80
    labels = np.bincount([c.label for r in with_audio for c in r.cycles], minlength=4)
    assert labels.tolist() == [25, 34, 11, 10]  # the shared README's counts
    assert all(c.end <= r.duration for r in with_audio for c in r.cycles)


def test_patients_demographics_diagnosis_and_location(icbhi_dir):
    index = load_dataset(icbhi_dir, probe_audio_files=False)
    p101, p223 = index.patients["101"], index.patients["223"]
    assert (p101.age, p101.sex, p101.adult_bmi, p101.child_weight_kg, p101.child_height_cm) == (3.0, "F", None, 19.0, 99.0)
    assert p101.diagnosis == "URTI" and p101.chest_location == "Pr"
    assert (p223.age, p223.sex, p223.chest_location) == (None, None, "Ll")
    diagnoses = {}
    for patient in index.patients.values():
        diagnoses[patient.diagnosis] = diagnoses.get(patient.diagnosis, 0) + 1
    assert diagnoses == {"COPD": 64, "Healthy": 26, "URTI": 14, "Bronchiectasis": 7, "Bronchiolitis": 6,
                         "Pneumonia": 6, "LRTI": 2, "Asthma": 1}


def _write_wav(path, seconds=3.0, sr=8000):
    sf.write(path, np.zeros(int(seconds * sr), dtype=np.float32), sr, subtype="PCM_16")


def test_generic_folder_keeps_unannotated_recordings(tmp_path):
    _write_wav(tmp_path / "patient_a.wav")
    (tmp_path / "patient_a.txt").write_text("0.1\t1.5\t1\t0\n1.5\t2.9\t0\t1\n")
    _write_wav(tmp_path / "patient_b.wav")
    index = load_dataset(tmp_path)
    assert [r.name for r in index.recordings] == ["patient_a", "patient_b"]
    assert [c.label for c in index.recording("patient_a").cycles] == [1, 2]
    assert index.stats()["unannotated"] == ["patient_b"]
    assert index.recording("patient_b").usable_audio
    assert not index.has_split_file and index.recording("patient_a").split is None


def test_dataset_order_is_sorted_by_name_then_annotation_order(synthetic_dir):
    """On the session's generated recordings (tests/conftest.py): 46 train cycles of 9 recordings. Every
    recording is checked, not only the first (whose 2 cycles alone would say little)."""
    index = load_dataset(synthetic_dir, probe_audio_files=False)
    cycles = index.cycles("train")
    names = [c.recording for c in cycles]
    assert (len(cycles), len(set(names))) == (46, 9), "the synthetic dataset changed: pick again"
    assert names == sorted(names)
    for name in dict.fromkeys(names):
        cycles_of = [c for c in cycles if c.recording == name]
        assert [c.index for c in cycles_of] == list(range(len(cycles_of)))
        assert [c.start for c in cycles_of] == sorted(c.start for c in cycles_of)
        written = [float(line.split()[0]) for line in (synthetic_dir / f"{name}.txt").read_text().splitlines()]
        assert [c.start for c in cycles_of] == written  # the annotation file's order
    assert index.fingerprint() == load_dataset(synthetic_dir, probe_audio_files=False).fingerprint()


def test_cli_stats_json_prints_spec_counts(icbhi_dir):
    out = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "data", "stats", str(icbhi_dir), "--json"],
                         capture_output=True, text=True, check=True).stdout
    stats = json.loads(out)
    assert stats["recordings"] == 920 and stats["patients"] == 126
    assert stats["cycles"]["train"] == SPEC_COUNTS["train"] and stats["cycles"]["test"] == SPEC_COUNTS["test"]
    assert stats["name_matches"][0]["file"] == "226_1b1_Pl_sc_LittC2SE"
    assert isinstance(stats["warnings"], list)


def test_without_metadata_with_location_the_prompt_fallback_is_a_warning(synthetic_dir, tmp_path):
    """location_source = "patient" needs metadata_with_location.txt; without it the chest locations come from
    the file names, and `data stats` (as `run` and the wizard, which show the index's warnings) says so."""
    import shutil

    copy = tmp_path / "no-metadata"
    shutil.copytree(synthetic_dir, copy)
    (copy / "metadata_with_location.txt").unlink()
    assert not [w for w in load_dataset(synthetic_dir).warnings if "metadata_with_location" in str(w)]
    (warning,) = [w for w in load_dataset(copy).warnings if "metadata_with_location" in str(w)]
    assert warning.path == str(copy / "metadata_with_location.txt")
    assert "take the location from each file name" in warning.message and "698 of 920" in warning.message
    assert 'location_source = "filename"' in warning.fix
    out = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "data", "stats", str(copy)], capture_output=True,
                         text=True, check=True).stdout
    assert "metadata_with_location.txt: missing: BTS prompts" in out


def test_cli_stats_human_table(icbhi_dir):
    out = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "data", "stats", str(icbhi_dir)],
                         capture_output=True, text=True, check=True).stdout
    assert "train        2063     1215      501      363     4142" in out
    assert "test         1579      649      385      143     2756" in out


def test_cli_reports_a_missing_folder_clearly(tmp_path):
    result = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "data", "stats", str(tmp_path / "nope")],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "not a folder" in result.stderr and "Fix:" in result.stderr
