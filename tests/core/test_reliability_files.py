"""Files as careless or hostile users leave them (issue 10): every fault a message naming the file, nothing
silently wrong, no memory blow-up, and the same handling by `data stats`, `predict` and the Studio's folder
opening. Bad input of the kinds tested since the start lives in test_bad_input.py."""
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.data.audio import MIN_DURATION_S, decode_audio, probe_audio
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.textfiles import MAX_TEXT_LINES
from lungkd.core.errors import AudioError, DataError
from tiny_model import tiny_model_folder

A = "101_1b1_Al_sc_Meditron"
B = "102_1b1_Ar_sc_Meditron"
GOOD_LINES = "0.5\t1.5\t0\t0\n1.5\t3.0\t1\t0\n"


def _wav(path, seconds=4.0, sr=4000, samples=None, subtype="PCM_16"):
    data = samples if samples is not None else 0.1 * np.sin(np.arange(int(seconds * sr)) / 7.0).astype(np.float32)
    sf.write(path, data, sr, subtype=subtype)
    return path


def _folder(root: Path, names=(A, B), split=True) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name in names:
        _wav(root / f"{name}.wav")
        (root / f"{name}.txt").write_text(GOOD_LINES)
    if split:
        (root / "ICBHI_challenge_train_test.txt").write_text("".join(f"{n}\ttrain\n" for n in names))
    return root


def _warnings(index, text):
    return [w for w in index.warnings if text in w.message]


def lungkd(*args):
    return subprocess.run([sys.executable, "-m", "lungkd.core.cli", *map(os.fsdecode, args)], capture_output=True,
                          text=True)


# ---------------------------------------------------------------- text files


def test_an_absurdly_large_annotation_is_refused_before_it_is_read_whole(tmp_path):
    """200,000 lines (2.4 MB) and 6 MB of one line: refused with the file named, without holding more than the
    few MB a refused file may take; the other recording still loads."""
    root = _folder(tmp_path / "data")
    big = root / f"{A}.txt"
    big.write_text("0.1\t0.2\t0\t0\n" * 200_000)
    tracemalloc.start()
    with pytest.raises(DataError) as caught:
        read_annotation_file(big)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert f"200,000 lines, far more than any annotation file has (at most {MAX_TEXT_LINES:,})" in str(caught.value)
    assert str(caught.value).startswith(str(big)) and peak < 40e6
    big.write_text("9" * 6_000_000)
    with pytest.raises(DataError, match="more than 4 MB, far larger than any annotation file"):
        read_annotation_file(big)
    index = load_dataset(root)
    assert [w.path for w in _warnings(index, "far larger than")] == [str(big)]
    assert index.recording(A).cycles == () and len(index.recording(B).cycles) == 2


def test_a_byte_order_mark_is_accepted_in_annotations_split_and_demographics(tmp_path):
    root = _folder(tmp_path / "data")
    bom = "\ufeff"
    (root / f"{A}.txt").write_text(bom + GOOD_LINES, encoding="utf-8")
    (root / "ICBHI_challenge_train_test.txt").write_text(f"{bom}{A}\ttrain\n{B}\ttest\n", encoding="utf-8")
    (root / "ICBHI_Challenge_demographic_information.txt").write_text(f"{bom}101\t70\tF\t25.1\tNA\tNA\n"
                                                                       "102\t8\tM\tNA\t25\t120\n", encoding="utf-8")
    index = load_dataset(root)
    assert [(c.start, c.end) for c in index.recording(A).cycles] == [(0.5, 1.5), (1.5, 3.0)]
    assert (index.recording(A).split, index.recording(B).split) == ("train", "test")
    assert index.patients["101"].age == 70 and index.patients["102"].child_weight_kg == 25
    assert [str(w) for w in index.warnings if "metadata_with_location" not in str(w)] == []


def test_a_split_entry_listed_twice_is_reported_and_the_first_kept(tmp_path):
    root = _folder(tmp_path / "data")
    (root / "ICBHI_challenge_train_test.txt").write_text(f"{A}\ttrain\n{B}\ttest\n{A}\ttrain\n{B}\ttrain\n")
    index = load_dataset(root)
    again = _warnings(index, "is listed again")
    assert [(w.line, w.message) for w in again] == [
        (3, f"'{A}' is listed again (first on line 1); this line is skipped."),
        (4, f"'{B}' is listed again (first on line 2, as test); this line is skipped.")]
    assert "keep the split the recording belongs to" in again[1].fix
    assert (index.recording(A).split, index.recording(B).split) == ("train", "test")


def test_implausible_demographics_and_duplicated_patients_are_warnings(tmp_path):
    root = _folder(tmp_path / "data", names=(A, B, "103_1b1_Al_sc_Meditron", "104_1b1_Al_sc_Meditron"))
    (root / "ICBHI_Challenge_demographic_information.txt").write_text(
        "101\t-3\tF\t25\tNA\tNA\n102\tnan\tM\t-1\tNA\tNA\n103\tinf\tF\tNA\t30\t130\n104\t62\tM\t24\tNA\tNA\n"
        "104\t19\tF\t20\tNA\tNA\n")
    index = load_dataset(root)
    implausible = _warnings(index, "is not plausible")
    assert [(w.line, w.message.split(" is")[0]) for w in implausible] == [
        (1, "age -3"), (2, "age nan"), (2, "adult bmi -1"), (3, "age inf")]
    assert all("taken as missing (NA)" in w.message and w.path.endswith("demographic_information.txt")
               for w in implausible)
    assert [index.patients[p].age for p in ("101", "102", "103")] == [None, None, None]
    assert index.patients["103"].child_weight_kg == 30  # the plausible values of a line stay
    (again,) = _warnings(index, "listed again")
    assert again.line == 5 and "patient 104" in again.message and index.patients["104"].age == 62


def _without_root_privileges():
    """For a child of root: drop the capabilities that let root read anything (CAP_DAC_OVERRIDE and
    CAP_DAC_READ_SEARCH) from its bounding set, so the program it runs meets file permissions like anyone."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


@pytest.mark.skipif(sys.platform != "linux", reason="Linux permissions and capabilities")
def test_unreadable_files_and_folders_are_warnings_naming_the_path(tmp_path):
    root = _folder(tmp_path / "data", names=(A, B))
    locked = _folder(root / "locked", names=("103_1b1_Al_sc_Meditron",), split=False)
    (root / f"{A}.txt").chmod(0)
    (root / f"{B}.wav").chmod(0)
    locked.chmod(0)
    try:
        result = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "data", "stats", str(root), "--json"],
                                capture_output=True, text=True,
                                preexec_fn=_without_root_privileges if os.geteuid() == 0 else None)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 0, result.stderr
    stats = json.loads(result.stdout)
    warnings = stats["warnings"]
    assert f"{root / A}.txt: permission denied: the annotation file cannot be read. Fix: give your user read " \
           "permission (e.g. `chmod u+r FILE`)." in warnings
    assert any(w.startswith(f"{root / B}.wav: permission denied: the file cannot be read.") for w in warnings)
    assert any(w.startswith(f"{locked}: this folder cannot be read (Permission denied)") for w in warnings)
    assert stats["recordings"] == 2 and stats["recordings_with_audio"] == 1  # the rest still loads


# ---------------------------------------------------------------- one rule for every command


@pytest.fixture(scope="module")
def model_folder(synthetic_dir, tmp_path_factory):
    return tiny_model_folder(synthetic_dir, tmp_path_factory)


@pytest.fixture(scope="module")
def breathing(synthetic_dir):
    """A synthetic recording with breathing in it, and its annotation."""
    wav = sorted(synthetic_dir.glob("*_Meditron.wav"))[0]
    return wav, wav.with_suffix(".txt")


@pytest.fixture(scope="module")
def awkward(tmp_path_factory, breathing):
    """A folder of what users have: X.wav beside X.flac, an annotation in capitals, two annotations of one
    recording, an annotation without a usable cycle, a name that is not UTF-8, a name that is a formula,
    float audio at 1e30 and a file of 300 samples."""
    wav, txt = breathing
    root = tmp_path_factory.mktemp("awkward")
    samples, sr = sf.read(wav, dtype="float32")
    shutil.copy(wav, root / "twice.wav")
    sf.write(root / "twice.flac", samples[::-1], sr)  # other sound, same recording name
    shutil.copy(txt, root / "twice.txt")
    shutil.copy(wav, root / "capitals.wav")
    shutil.copy(txt, root / "capitals.TXT")
    shutil.copy(wav, root / "two_notes.wav")
    shutil.copy(txt, root / "two_notes.txt")
    (root / "two_notes.TXT").write_text("0.1\t0.9\t1\t1\n")
    shutil.copy(wav, root / "no_cycle.wav")
    (root / "no_cycle.txt").write_text("start end crackle wheeze\n3.0\t1.0\t0\t0\n")
    shutil.copy(wav, root / os.fsdecode(b"caf\xe9.wav"))  # Latin-1 bytes: not a UTF-8 name
    shutil.copy(wav, root / "=HYPERLINK(1).wav")
    huge = samples.copy()
    huge[len(huge) // 2] = 1e30
    sf.write(root / "huge.wav", huge, sr, subtype="FLOAT")
    _wav(root / "short.wav", samples=np.full(300, 0.1, dtype=np.float32), sr=4000)
    return root


def test_every_command_picks_the_same_file_of_a_recording_and_says_so(awkward):
    from lungkd.core.analysis.batch import expand_recordings

    index = load_dataset(awkward)
    assert index.recording("twice").audio_path == awkward / "twice.wav"
    (dropped,) = _warnings(index, "another file of the recording 'twice'")
    assert dropped.path == str(awkward / "twice.flac") and "is used; this one is left out" in dropped.message
    assert index.recording("capitals").annotation_path == awkward / "capitals.TXT"
    assert index.recording("two_notes").annotation_path == awkward / "two_notes.txt"
    (second,) = _warnings(index, "a second annotation of the recording 'two_notes'")
    assert second.path == str(awkward / "two_notes.TXT")
    assert _warnings(index, "no usable cycle")[0].path == str(awkward / "no_cycle.txt")
    assert index.recording(os.fsdecode(b"caf\xe9")).usable_audio  # shown, not refused
    files, left_out = expand_recordings([awkward])  # `lungkd predict` and the Studio's folder opening
    assert awkward / "twice.wav" in files and awkward / "twice.flac" not in files
    assert [(f.path, "is used; this one is left out" in f.message) for f in left_out] == [
        (awkward / "twice.flac", True)]


@pytest.fixture(scope="module")
def predicted(awkward, model_folder):
    """`lungkd predict --json` and `--csv` on every file of the folder, as a user runs them."""
    files = sorted(awkward.iterdir(), key=str)
    audio = [p for p in files if p.suffix.lower() in (".wav", ".flac")]
    as_json = lungkd("predict", model_folder, *audio, "--json")
    as_csv = lungkd("predict", model_folder, *audio, "--csv")
    return as_json, as_csv


def _strict_json(text):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")
    return json.loads(text, parse_constant=refuse)


@pytest.mark.slow  # two `lungkd predict` processes over ten recordings
def test_predict_output_is_valid_json_with_finite_probabilities_and_every_warning(predicted, awkward):
    as_json, _ = predicted
    assert as_json.returncode == 1  # one file failed (the short one): said, and the others analysed
    analyses = {Path(a["path"]).name: a for a in _strict_json(as_json.stdout)}
    assert "twice.flac" not in analyses and "short.wav" not in analyses
    assert f"lungkd: warning: {awkward / 'twice.flac'}: another file of the recording 'twice'" in as_json.stderr
    assert f"lungkd: error: {awkward / 'short.wav'}: the recording lasts 0.075 s (300 samples), too short" \
        in as_json.stderr
    for analysis in analyses.values():
        for cycle in analysis["cycles"]:
            values = [cycle[name] for name in ("normal", "crackle", "wheeze", "both")]
            assert all(np.isfinite(values)) and abs(sum(values) - 1) < 1e-4
    assert "samples reach 1e+30, beyond the full scale" in analyses["huge.wav"]["warnings"][0]
    assert analyses["capitals.wav"]["cycle_source"] == "annotation"
    assert analyses["two_notes.wav"]["cycle_source"] == "annotation"
    assert any("a second annotation of the recording 'two_notes'" in w for w in analyses["two_notes.wav"]["warnings"])
    no_cycle = analyses["no_cycle.wav"]
    assert no_cycle["cycle_source"] in ("automatic", "fixed windows") and no_cycle["cycles"]
    assert any(w.endswith("no usable cycle in this annotation file. Fix: each line must read `start_s end_s "
                          "crackle(0/1) wheeze(0/1)`, e.g. `0.036 0.579 0 0`.") for w in no_cycle["warnings"])
    assert any("the annotation gives no usable cycle, so the cycles were found without it" in w
               for w in no_cycle["warnings"])
    assert "caf\udce9.wav" in analyses  # the name as the file system has it, escaped in the JSON


@pytest.mark.slow
def test_csv_export_never_holds_a_formula_and_shows_names_that_are_not_utf8(predicted):
    _, as_csv = predicted
    rows = list(csv.DictReader(io.StringIO(as_csv.stdout)))
    names = {row["recording"] for row in rows}
    assert "'=HYPERLINK(1)" in names and "=HYPERLINK(1)" not in names
    assert "caf\ufffd" in names
    assert all(not row[column].startswith(("=", "+", "@")) for row in rows for column in row)


# ---------------------------------------------------------------- audio


def test_a_recording_of_a_few_hundred_samples_is_refused_with_its_length(tmp_path):
    path = _wav(tmp_path / "short.wav", samples=np.full(300, 0.1, dtype=np.float32), sr=4000)
    with pytest.raises(AudioError) as caught:
        decode_audio(path)
    assert str(caught.value) == (f"{path}: the recording lasts 0.075 s (300 samples), too short to hold a breathing "
                                 f"cycle (at least {MIN_DURATION_S} s). Fix: check that the file is the whole "
                                 "recording; copy it again from its source.")
    index = load_dataset(_folder(tmp_path / "data"))
    assert index.recording(A).usable_audio  # 4 s is fine


def test_audio_beyond_full_scale_is_scaled_to_it_with_a_warning(tmp_path):
    samples = 0.1 * np.sin(np.arange(8000) / 5.0)
    samples[4000] = 1e30
    path = _wav(tmp_path / "huge.wav", samples=samples, sr=4000, subtype="FLOAT")
    decoded = decode_audio(path)
    assert np.abs(decoded.samples).max() == 1.0 and np.isfinite(decoded.samples).all()
    (warning,) = decoded.warnings
    assert warning.path == str(path) and "samples reach 1e+30" in warning.message
    at_full_scale = decode_audio(_wav(tmp_path / "ok.wav", samples=samples.clip(-1, 1), subtype="FLOAT"))
    assert at_full_scale.warnings == [] and np.abs(at_full_scale.samples).max() == 1.0


def _riff(fmt_size: int, rate: int = 4000, frames: int = 4000, data_size: int | None = None) -> bytes:
    """A 16-bit mono WAV written by hand, with header fields of our choosing."""
    fmt = (1).to_bytes(2, "little") + (1).to_bytes(2, "little") + rate.to_bytes(4, "little") + \
        (2 * rate).to_bytes(4, "little") + (2).to_bytes(2, "little") + (16).to_bytes(2, "little")
    data = (np.sin(np.arange(frames) / 5.0) * 3000).astype("<i2").tobytes()
    body = b"WAVE" + b"fmt " + fmt_size.to_bytes(4, "little") + fmt + b"data" + \
        (len(data) if data_size is None else data_size).to_bytes(4, "little") + data
    return b"RIFF" + (len(body)).to_bytes(4, "little") + body


@pytest.mark.parametrize("header, expected", [
    (dict(fmt_size=16), None),
    (dict(fmt_size=0), "not a readable audio file"),  # once sent the header walk round in circles
    (dict(fmt_size=16, rate=2_000_000_000), "above the 768,000 Hz of any audio device: the header is damaged"),
    (dict(fmt_size=16, data_size=0x7FFFFFF0), "truncated: the header promises"),
], ids=["sound", "fmt chunk of size 0", "sample rate 2 GHz", "data chunk of 2 GB"])
def test_damaged_wav_headers_get_a_message_quickly(tmp_path, header, expected):
    path = tmp_path / "damaged.wav"
    path.write_bytes(_riff(**header))
    if expected is None:
        assert probe_audio(path).frames == 4000
    elif expected.startswith("truncated"):
        decoded = decode_audio(path)
        assert expected in decoded.warnings[0].message and len(decoded.samples) == 4000
    else:
        with pytest.raises(AudioError, match=expected):
            decode_audio(path)
