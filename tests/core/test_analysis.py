"""Per-cycle analysis of a user's recording (core/analysis.py): real ICBHI recordings with their
annotations, the automatic segmentation on a breathing signal with known boundaries, the fixed-window
fallback, the CSV/JSON outputs and bad files."""
import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf

from lungkd.core.analysis.predict import (CSV_COLUMNS, FIXED_WINDOW_S, analyse_recording, display_spectrogram,
                                  segment_cycles, to_json, write_csv)
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.cancel import CancelToken, Cancelled
from lungkd.core.errors import AudioError, LungKDError
from lungkd.core.analysis.evaluation import load_saved_model
from tiny_model import tiny_model_folder

RECORDING = "105_1b1_Tc_sc_Meditron"


@pytest.fixture(scope="module")
def model(icbhi_audio_dir, tmp_path_factory):
    return load_saved_model(tiny_model_folder(icbhi_audio_dir, tmp_path_factory))[0]


@pytest.fixture(scope="module")
def analysis(model, icbhi_audio_dir):
    return analyse_recording(icbhi_audio_dir / f"{RECORDING}.wav", model)


def breathing(sr: int, seed: int = 0) -> tuple[np.ndarray, list[float]]:
    """Noise bursts (breaths) of 2-3.5 s with 0.4-0.8 s pauses, and the middles of the pauses."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 0.003, 20 * sr).astype(np.float32)
    t, pauses = 0.3, []
    while (length := rng.uniform(2.0, 3.5)) + t < 19.5:
        n = int(length * sr)
        signal[int(t * sr): int(t * sr) + n] += np.hanning(n) * rng.normal(0, 0.3, n)
        gap = rng.uniform(0.4, 0.8)
        pauses.append(t + length + gap / 2)
        t += length + gap
    return signal, pauses[:-1]  # the last pause runs into the end of the recording


def test_real_recording_cycles_are_the_annotation_with_its_truth(analysis, icbhi_audio_dir):
    annotated, _ = read_annotation_file(icbhi_audio_dir / f"{RECORDING}.txt")
    assert analysis.cycle_source == "annotation"
    assert [(c.start, c.end) for c in analysis.cycles] == [(a.start, a.end) for a in annotated]
    assert [c.truth for c in analysis.cycles] == [a.label for a in annotated]
    probabilities = np.array([c.probabilities for c in analysis.cycles])
    assert probabilities.shape == (len(annotated), 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert all(c.matches == (c.truth == c.predicted) for c in analysis.cycles)
    assert (analysis.sample_rate, analysis.duration, analysis.device) == (44100, pytest.approx(20.0), "Meditron")
    assert sum(analysis.class_counts().values()) == len(annotated)


def test_given_spans_are_predicted_as_the_same_cycles_read_from_the_annotation(analysis, model, icbhi_audio_dir):
    """An annotation being edited: its cycles, in its order, before it is saved."""
    cycles = analysis.cycles
    spans = [(cycles[3].start, cycles[3].end), (cycles[0].start, cycles[0].end), (1.0, 1.5)]
    edited = analyse_recording(icbhi_audio_dir / f"{RECORDING}.wav", model, spans=spans)
    assert edited.cycle_source == "edited" and [(c.start, c.end) for c in edited.cycles] == spans
    assert all(c.truth is None for c in edited.cycles)
    np.testing.assert_allclose([c.probabilities for c in edited.cycles[:2]],
                               [cycles[3].probabilities, cycles[0].probabilities], atol=1e-6)


def test_csv_and_json_hold_one_row_per_cycle(analysis, tmp_path):
    write_csv([analysis, analysis], tmp_path / "cycles.csv")
    with open(tmp_path / "cycles.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + 2 * len(analysis.cycles)
    first = dict(zip(rows[0], rows[1]))
    assert first["recording"] == RECORDING and first["cycle_source"] == "annotation"
    assert float(first["start"]) == pytest.approx(analysis.cycles[0].start, abs=1e-3)
    assert sum(float(first[f"p_{n}"]) for n in ("normal", "crackle", "wheeze", "both")) == pytest.approx(1, abs=1e-3)
    assert first["match"] in ("yes", "no")
    [parsed] = json.loads(to_json([analysis]))
    assert len(parsed["cycles"]) == len(analysis.cycles) and parsed["device"] == "Meditron"


def test_recording_without_annotation_is_segmented(model, icbhi_audio_dir, tmp_path):
    copy = tmp_path / f"{RECORDING}.wav"  # the same audio with no annotation beside it
    shutil.copy(icbhi_audio_dir / copy.name, copy)
    result = analyse_recording(copy, model)
    assert result.cycle_source in ("automatic", "fixed windows")
    assert result.cycles and all(c.truth is None and c.matches is None for c in result.cycles)
    assert result.cycles[0].start == 0 and result.cycles[-1].end == pytest.approx(20.0, abs=0.01)


def test_segmentation_finds_the_pauses_between_breaths():
    sr = 8000
    signal, pauses = breathing(sr)
    spans, method = segment_cycles(signal, sr)
    assert method == "automatic"
    boundaries = [start for start, _ in spans[1:]]
    assert len(boundaries) == len(pauses)
    np.testing.assert_allclose(boundaries, pauses, atol=0.25)
    assert spans[0][0] == 0 and spans[-1][1] == pytest.approx(20.0)


@pytest.mark.parametrize("kind", ["silence", "steady noise"])
def test_no_breathing_found_gives_fixed_windows(kind):
    sr = 4000
    samples = np.zeros(10 * sr, np.float32) if kind == "silence" else \
        np.random.default_rng(1).normal(0, 0.1, 10 * sr).astype(np.float32)
    spans, method = segment_cycles(samples, sr)
    assert method == "fixed windows"
    assert spans == [(0.0, FIXED_WINDOW_S), (FIXED_WINDOW_S, 2 * FIXED_WINDOW_S), (2 * FIXED_WINDOW_S, 10.0)]


def test_bad_files_raise_errors_that_name_them(model, tmp_path):
    fake = tmp_path / "not-audio.wav"
    fake.write_text("this is text")
    with pytest.raises(AudioError, match="not-audio.wav"):
        analyse_recording(fake, model)
    with pytest.raises(AudioError, match="unsupported audio format"):
        analyse_recording(tmp_path / "notes.mp3", model)
    with pytest.raises(LungKDError, match="not a LungKD model folder"):
        load_saved_model(tmp_path)


def test_cancel_stops_the_analysis(model, tmp_path):
    path = tmp_path / "breathing.wav"
    sf.write(path, breathing(8000)[0], 8000)
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        analyse_recording(path, model, cancel=token)


def test_display_spectrogram_axes_and_long_recordings():
    sr = 8000
    tone = np.sin(2 * np.pi * 1000 * np.arange(2 * sr) / sr).astype(np.float32)
    db, seconds_per_frame, hz_per_bin = display_spectrogram(tone, sr, window_s=0.032, hop_s=0.008)
    assert seconds_per_frame == pytest.approx(0.008) and hz_per_bin == pytest.approx(sr / 256)
    assert db.shape[1] == 129 and db[:, :].mean(axis=0).argmax() * hz_per_bin == pytest.approx(1000, abs=hz_per_bin)
    long_db, long_step, _ = display_spectrogram(np.zeros(600 * sr, np.float32), sr, max_frames=4000)
    assert long_db.shape[0] <= 4001 and long_step * long_db.shape[0] == pytest.approx(600, rel=0.01)
