"""Every kind of bad input gets a message naming the file, the line and the fix; the rest still loads."""
import numpy as np
import pytest
import soundfile as sf

from lungkd.core.data.audio import decode_audio, load_audio
from lungkd.core.data.dataset import load_dataset
from lungkd.core.errors import AudioError

GOOD = "101_1b1_Al_sc_Meditron"
OTHER = "102_1b1_Ar_sc_Meditron"


def _wav(path, seconds=4.0, sr=4000, subtype="PCM_16", samples=None):
    data = samples if samples is not None else 0.1 * np.sin(np.arange(int(seconds * sr)) / 7.0).astype(np.float32)
    sf.write(path, data, sr, subtype=subtype)


def _folder(tmp_path, lines=None, split=True):
    """Two recordings; the first one's annotation is `lines` when given."""
    for name in (GOOD, OTHER):
        _wav(tmp_path / f"{name}.wav")
        (tmp_path / f"{name}.txt").write_text("0.5\t1.5\t0\t0\n1.5\t3.0\t1\t0\n")
    if lines is not None:
        (tmp_path / f"{GOOD}.txt").write_text(lines)
    if split:
        (tmp_path / "ICBHI_challenge_train_test.txt").write_text(f"{GOOD}\ttrain\n{OTHER}\ttest\n")
    return tmp_path


def _only(index, text):
    found = [w for w in index.warnings if text in w.message]
    assert len(found) == 1, [str(w) for w in index.warnings]
    return found[0]


def _other_still_loads(index):
    assert len(index.recording(OTHER).cycles) == 2


@pytest.mark.parametrize("lines, reason, bad_lines, kept_lines", [
    ("0.5\t1.5\t0\t0\nabc\t2.0\t0\t0\n2.0\t3.0\t0\t1\n", "not numbers", [2], [1, 3]),
    ("0.5\t1.5\t0\n1.5\t3.0\t0\t0\n", "expected 4 columns, found 3", [1], [2]),
    ("0.5\t1.5\t2\t0\n", "must be 0 or 1", [1], []),
    ("1.5\t1.5\t0\t0\n2.0\t1.0\t0\t0\n2.0\t3.0\t0\t0\n", "not before its end", [1, 2], [3]),
    ("-0.5\t1.0\t0\t0\n1.0\t2.0\t0\t0\n", "negative time", [1], [2]),
], ids=["not a number", "three columns", "flag 2", "start not before end", "negative time"])
def test_a_bad_annotation_line_is_named_and_skipped(tmp_path, lines, reason, bad_lines, kept_lines):
    index = load_dataset(_folder(tmp_path, lines))
    problems = [w for w in index.warnings if reason in w.message]
    assert [p.line for p in problems] == bad_lines
    for problem in problems:
        assert str(problem).startswith(f"{tmp_path / GOOD}.txt:{problem.line}: ") and "start_s end_s" in problem.fix
    assert [c.line for c in index.recording(GOOD).cycles] == kept_lines
    _other_still_loads(index)


def test_cycles_past_the_audio_end_are_kept_as_annotated_and_warned(tmp_path):
    """The clip of a cycle that ends past the audio stops at the end of the resampled audio, in samples
    (core.features.prepare); the index keeps the annotation as written. One that starts after the end
    holds no sound and is dropped."""
    index = load_dataset(_folder(tmp_path, "0.5\t1.5\t0\t0\n3.0\t5.5\t1\t0\n4.5\t6.0\t0\t0\n"))
    cycles = index.recording(GOOD).cycles
    assert [(c.start, c.end) for c in cycles] == [(0.5, 1.5), (3.0, 5.5)]  # the audio is 4 s long
    assert _only(index, "ends after the audio").line == 2
    assert _only(index, "starts after the audio ends").line == 3


def test_missing_wav(tmp_path):
    _folder(tmp_path)
    (tmp_path / f"{GOOD}.wav").unlink()
    index = load_dataset(tmp_path)
    problem = _only(index, "have no audio file")
    assert GOOD in problem.message and "put the .wav" in problem.fix
    assert not index.recording(GOOD).usable_audio
    assert len(index.recording(GOOD).cycles) == 2  # still counted in statistics
    assert index.recording(OTHER).usable_audio


def test_empty_wav(tmp_path):
    _folder(tmp_path)
    (tmp_path / f"{GOOD}.wav").write_bytes(b"")
    index = load_dataset(tmp_path)
    assert _only(index, "empty (0 bytes)").path.endswith(f"{GOOD}.wav")
    assert not index.recording(GOOD).usable_audio and index.recording(OTHER).usable_audio
    with pytest.raises(AudioError, match="empty"):
        decode_audio(tmp_path / f"{GOOD}.wav")


def test_truncated_wav(tmp_path):
    _folder(tmp_path)
    path = tmp_path / f"{GOOD}.wav"
    path.write_bytes(path.read_bytes()[: 44 + 2 * 6000])  # header + 1.5 s of the 4 s
    index = load_dataset(tmp_path)
    problem = _only(index, "truncated")
    assert "16000 samples" in problem.message and "6000" in problem.message
    decoded = decode_audio(path)
    assert decoded.samples.shape == (6000,) and "truncated" in decoded.warnings[0].message
    assert [(c.start, c.end) for c in index.recording(GOOD).cycles] == [(0.5, 1.5)]  # 1.5-3.0 starts at the new end
    _other_still_loads(index)


def test_non_audio_file_with_an_audio_name(tmp_path):
    _folder(tmp_path)
    (tmp_path / f"{GOOD}.wav").write_text("this is a text file, not a recording\n" * 20)
    index = load_dataset(tmp_path)
    problem = _only(index, "not a readable audio file")
    assert problem.path.endswith(f"{GOOD}.wav") and "wav" in problem.fix
    _other_still_loads(index)


def test_unsupported_format(tmp_path):
    _folder(tmp_path)
    (tmp_path / "103_1b1_Al_sc_Meditron.mp3").write_bytes(b"ID3" + bytes(100))
    index = load_dataset(tmp_path)
    problem = _only(index, "unsupported audio format '.mp3'")
    assert "convert it to wav" in problem.fix
    assert len(index.recordings) == 2
    with pytest.raises(AudioError, match="unsupported audio format"):
        decode_audio(tmp_path / "103_1b1_Al_sc_Meditron.mp3")


def test_split_entries_with_no_file(tmp_path):
    _folder(tmp_path)
    (tmp_path / "ICBHI_challenge_train_test.txt").write_text(f"{GOOD}\ttrain\n{OTHER}\ttest\n999_1b1_Al_sc_Meditron\ttest\n")
    index = load_dataset(tmp_path)
    problem = _only(index, "split entries have no recording")
    assert "999_1b1_Al_sc_Meditron" in problem.message and problem.path.endswith("ICBHI_challenge_train_test.txt")
    assert [r.split for r in index.recordings] == ["train", "test"]


def test_files_missing_from_the_split(tmp_path):
    _folder(tmp_path)
    (tmp_path / "ICBHI_challenge_train_test.txt").write_text(f"{OTHER}\ttest\n")
    index = load_dataset(tmp_path)
    problem = _only(index, "is not in the split file")
    assert GOOD in problem.message and f"{GOOD}<TAB>train" in problem.fix
    assert index.recording(GOOD).split is None
    assert index.stats()["cycles"]["test"]["normal"] == 1


def test_malformed_split_line(tmp_path):
    _folder(tmp_path)
    (tmp_path / "ICBHI_challenge_train_test.txt").write_text(f"{GOOD}\ttrain\n{OTHER}\tvalidation\n")
    index = load_dataset(tmp_path)
    assert _only(index, "expected `name<TAB>train|test`").line == 2


def test_unknown_device_token(tmp_path):
    _folder(tmp_path)
    _wav(tmp_path / "103_1b1_Al_sc_iPhone.wav")
    index = load_dataset(tmp_path)
    problem = _only(index, "unknown device 'iPhone'")
    assert "Meditron" in problem.fix
    assert index.recording("103_1b1_Al_sc_iPhone").device == "iPhone"


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinite_samples(tmp_path, bad):
    samples = np.zeros(8000, dtype=np.float32)
    samples[4000] = bad
    path = tmp_path / "bad.wav"
    sf.write(path, samples, 4000, subtype="FLOAT")
    with pytest.raises(AudioError) as caught:
        load_audio(path, 16000)
    assert "1 NaN or infinite samples, the first at 1.000 s" in str(caught.value)
    assert str(path) in str(caught.value) and "Fix:" in str(caught.value)


def test_sample_rate_below_4khz(tmp_path):
    path = tmp_path / "low.wav"
    sf.write(path, np.zeros(3000, dtype=np.float32), 3000)
    with pytest.raises(AudioError, match="below the 4000 Hz minimum"):
        decode_audio(path)


def test_malformed_demographics_line(tmp_path):
    _folder(tmp_path)
    (tmp_path / "ICBHI_Challenge_demographic_information.txt").write_text("101\t3\tF\tNA\t19\t99\n102\told\tF\n")
    index = load_dataset(tmp_path)
    assert _only(index, "expected 6 columns").line == 2
    assert index.patients["101"].age == 3.0


def test_not_utf8_annotation(tmp_path):
    _folder(tmp_path)
    (tmp_path / f"{GOOD}.txt").write_bytes(b"\xff\xfe\x00\x01binary")
    index = load_dataset(tmp_path)
    assert _only(index, "not a text annotation file").path.endswith(f"{GOOD}.txt")
    _other_still_loads(index)
