"""Bounded work (issue 22): an annotation of 99,999 valid cycles is bounded to the stated limit; absurd times
(1e308) are refused when read; a recording longer than the stated limit is refused by its header, and the ones
within it are decoded a block at a time; recipe, annotation and audio paths that are FIFOs or devices are refused
by their type before they are opened; folder walks are iterative and stop at a stated depth."""
import os
import stat
import struct

import numpy as np
import pytest
import soundfile as sf

from lungkd.core.analysis.batch import analyse_paths, expand_recordings
from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.analysis.predict import analyse_recording, find_cycles
from lungkd.core.data.annotations import MAX_CYCLES, read_annotation_file
from lungkd.core.data.audio import MAX_DECODED_SAMPLES, decode_audio
from lungkd.core.data.dataset import load_dataset
from lungkd.core.errors import AudioError, DataError, LungKDError
from lungkd.core.models.inventory import shipped_models_folder
from lungkd.core.recipes import load_experiment
from lungkd.core.storage import MAX_FOLDER_DEPTH
from test_properties import memory_limit

NAME = "101_1b1_Al_sc_Meditron"


def _recording(folder, seconds=12.0, sr=4000, name=NAME):
    path = folder / f"{name}.wav"
    t = np.arange(int(seconds * sr)) / sr
    sf.write(path, (0.2 * np.sin(2 * np.pi * 200 * t) * (1 + np.sin(2 * np.pi * 0.25 * t))).astype(np.float32), sr)
    return path


@pytest.fixture(scope="module")
def demo():
    return load_model_with_limits(shipped_models_folder() / "demo-cnn6")


# ---------------------------------------------------------------- annotations


def test_an_annotation_of_99999_valid_cycles_is_bounded_to_the_stated_limit_with_a_warning(tmp_path):
    audio = _recording(tmp_path)
    starts = np.arange(99_999) * 1e-4
    audio.with_suffix(".txt").write_text("".join(f"{s:.4f}\t{s + 0.5:.4f}\t0\t0\n" for s in starts))
    assert audio.with_suffix(".txt").stat().st_size < 4 << 20  # under the size limit: only the count bounds it
    cycles, problems = read_annotation_file(audio.with_suffix(".txt"))
    assert len(cycles) == MAX_CYCLES == 2_000
    assert problems[-1].line == MAX_CYCLES + 1 and "more than 2,000 cycles; the first 2,000 are used" \
        in problems[-1].message
    found = find_cycles(audio, *(lambda d: (d.samples, d.sample_rate))(decode_audio(audio)))
    assert len(found.cycles) == MAX_CYCLES and any("more than 2,000 cycles" in p.message for p in found.problems)


def test_annotation_times_beyond_a_day_are_refused_when_read_and_the_rest_is_analysed(tmp_path, demo):
    audio = _recording(tmp_path)
    audio.with_suffix(".txt").write_text("0.5\t2.5\t0\t0\n3.0\t1e308\t1\t0\n4.0\t6.0\t0\t1\n")
    analysis = analyse_recording(audio, demo)  # no OverflowError in cycle_span
    assert [(c.start, c.end) for c in analysis.cycles] == [(0.5, 2.5), (4.0, 6.0)]
    assert any(":2: the time 1e+308 s is beyond a day, longer than any recording; line skipped." in w
               for w in analysis.warnings)
    (tmp_path / "ICBHI_challenge_train_test.txt").write_text(f"{NAME}\ttrain\n")
    index = load_dataset(tmp_path)  # training and evaluation read the same way
    assert [(c.start, c.end) for c in index.recordings[0].cycles] == [(0.5, 2.5), (4.0, 6.0)]


# ---------------------------------------------------------------- recordings


def _sparse_wav(path, seconds: float, sr: int = 44_100):
    """A 16-bit mono WAV of `seconds` whose samples are a hole in the file (zeros that take no disk)."""
    frames = int(seconds * sr)
    data = frames * 2
    header = b"RIFF" + struct.pack("<I", 36 + data) + b"WAVEfmt " + struct.pack("<IHHIIHH", 16, 1, 1, sr, sr * 2, 2, 16)
    with open(path, "wb") as f:
        f.write(header + b"data" + struct.pack("<I", data))
        f.truncate(44 + data)
    return frames


def test_a_twelve_hour_recording_is_refused_by_its_header_within_bounded_memory(tmp_path, demo):
    path = tmp_path / f"{NAME}.wav"
    frames = _sparse_wav(path, 12 * 3600)
    assert frames > MAX_DECODED_SAMPLES
    with memory_limit(256 << 20), pytest.raises(AudioError) as caught:
        decode_audio(path)
    assert caught.value.problem.message.startswith(f"the recording lasts 12:00:00 ({frames:,} samples), more than the "
                                                   f"{MAX_DECODED_SAMPLES:,} samples LungKD decodes at once (1:41:26 "
                                                   "at 44,100 Hz).")
    batch = analyse_paths([path], demo)  # lungkd predict and the Studio: that file fails, with the reason
    assert [f.path for f in batch.failures] == [path] and "12:00:00" in batch.failures[0].text


def test_a_long_recording_with_many_channels_is_decoded_a_block_at_a_time(tmp_path):
    """Four channels of five minutes at 44.1 kHz: read whole as float32 they take 212 MB before their mean;
    decoded a block at a time, the mono recording (53 MB) and one block."""
    path = tmp_path / f"{NAME}.wav"
    frames = 5 * 60 * 44_100
    with sf.SoundFile(path, "w", samplerate=44_100, channels=4, subtype="PCM_16") as f:
        block = (np.sin(np.arange(1 << 18) / 50.0)[:, None] * [0.1, 0.2, 0.3, 0.4]).astype(np.float32)
        for start in range(0, frames, len(block)):
            f.write(block[:frames - start])
    with memory_limit(150 << 20):
        decoded = decode_audio(path)
    assert len(decoded.samples) == frames and decoded.samples.dtype == np.float32
    expected = np.sin(np.arange(1 << 18) / 50.0) * 0.25
    np.testing.assert_allclose(decoded.samples[:1 << 18], expected, atol=1e-4)


# ---------------------------------------------------------------- FIFOs and devices


def _fifo(path):
    os.mkfifo(path)  # opening it for reading would wait for a writer for ever


def _zero(path):
    os.symlink("/dev/zero", path)  # read, it never ends


KINDS = {"fifo": _fifo, "device": _zero}


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", KINDS)
def test_a_recipe_that_is_a_fifo_or_a_device_is_refused_by_its_type(tmp_path, kind):
    KINDS[kind](tmp_path / "recipe.toml")
    with pytest.raises(LungKDError, match="not read: it is a (pipe|device or socket), not a regular file"):
        load_experiment(tmp_path / "recipe.toml")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", KINDS)
def test_an_audio_path_that_is_a_fifo_or_a_device_is_refused_by_its_type(tmp_path, kind, demo):
    KINDS[kind](tmp_path / f"{NAME}.wav")
    with pytest.raises(AudioError, match="not a regular file"):
        decode_audio(tmp_path / f"{NAME}.wav")
    batch = analyse_paths([tmp_path], demo)
    assert len(batch.failures) == 1 and "not a regular file" in batch.failures[0].text


@pytest.mark.timeout(120)
@pytest.mark.parametrize("kind", KINDS)
def test_an_annotation_that_is_a_fifo_or_a_device_is_refused_by_its_type(tmp_path, kind, demo):
    audio = _recording(tmp_path)
    KINDS[kind](audio.with_suffix(".txt"))
    with pytest.raises(DataError, match="the annotation file is not read: it is a (pipe|device or socket)"):
        read_annotation_file(audio.with_suffix(".txt"))
    batch = analyse_paths([audio], demo)
    assert len(batch.failures) == 1 and "not a regular file" in batch.failures[0].text
    (tmp_path / "ICBHI_challenge_train_test.txt").write_text(f"{NAME}\ttrain\n")
    assert any("not a regular file" in str(w) for w in load_dataset(tmp_path).warnings)


# ---------------------------------------------------------------- deep folders


def _deep_tree(root, depth: int):
    """`depth` folders one inside the other, made relative to each other: the whole path is longer than any the
    system takes at once (PATH_MAX), as a copied or generated tree can be."""
    fd = os.open(root, os.O_RDONLY)
    try:
        for _ in range(depth):
            os.mkdir("d", dir_fd=fd)
            inner = os.open("d", os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)


def _remove_deep_tree(root, depth: int):
    """Deepest first, without recursion (shutil.rmtree recurses)."""
    fds = [os.open(root, os.O_RDONLY)]
    for _ in range(depth - 1):
        fds.append(os.open("d", os.O_RDONLY, dir_fd=fds[-1]))
    while fds:
        fd = fds.pop()
        os.rmdir("d", dir_fd=fd)
        os.close(fd)


def test_a_dataset_2100_folders_deep_is_walked_without_recursion_to_the_stated_depth(tmp_path):
    audio = _recording(tmp_path)
    audio.with_suffix(".txt").write_text("0.5\t2.5\t0\t0\n")
    _deep_tree(tmp_path, 2100)
    try:
        index = load_dataset(tmp_path)
        assert [r.name for r in index.recordings] == [NAME]
        deep = [w for w in index.warnings if f"more than {MAX_FOLDER_DEPTH} levels deep" in w.message]
        assert len(deep) == 1 and deep[0].path.count("/d") == MAX_FOLDER_DEPTH
        files, left_out = expand_recordings([tmp_path])  # lungkd predict and the Studio
        assert files == [audio] and any(f"more than {MAX_FOLDER_DEPTH} levels deep" in f.text for f in left_out)
    finally:
        _remove_deep_tree(tmp_path, 2100)
