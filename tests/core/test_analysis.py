"""Per-cycle analysis of a user's recording (core/analysis/predict.py): ICBHI-format recordings with their
annotations, the automatic segmentation where there is none (its confidences in the outputs), the CSV/JSON
outputs and bad files. The segmentation itself: tests/core/test_segmentation.py."""
import csv
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from lungkd.core.analysis.display import display_spectrogram
from lungkd.core.analysis.predict import CSV_COLUMNS, analyse_recording, to_json, write_csv
from lungkd.core.analysis.segmentation import score_segmentation
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.cancel import CancelToken, Cancelled
from lungkd.core.errors import AudioError, LungKDError
from lungkd.core.data.dataset import load_dataset
from lungkd.core.features.cycle_sets import CycleSet, build_cycle_sets
from lungkd.core.models.inference import load_saved_model, predict_logits
from lungkd.core.models.registry import model_info
from lungkd.core.cli import main
from tiny_model import tiny_model, tiny_model_folder

@pytest.fixture(scope="module")
def model(synthetic_dir, tmp_path_factory):
    return tiny_model(synthetic_dir, tmp_path_factory, limits=False)


@pytest.fixture(scope="module")
def recording(synthetic_dir):
    """The Meditron chest recording of the synthetic set with the most cycles (ICBHI name, annotation beside it).
    Not a tracheal one: the synthetic datasets give those the chest wall's phases (expiration the softer), which
    a segmentation that knows the site starts at expiration."""
    chest = [p for p in sorted(synthetic_dir.glob("*_Meditron.wav")) if "_Tc_" not in p.name]
    return max(chest, key=lambda p: len(p.with_suffix(".txt").read_text()))


@pytest.fixture(scope="module")
def analysis(model, recording):
    return analyse_recording(recording, model)


def breathing(sr: int, seed: int = 0) -> np.ndarray:
    """Noise bursts (breaths) of 2-3.5 s with 0.4-0.8 s pauses over 20 s."""
    rng = np.random.default_rng(seed)
    signal = rng.normal(0, 0.003, 20 * sr).astype(np.float32)
    t = 0.3
    while (length := rng.uniform(2.0, 3.5)) + t < 19.5:
        n = int(length * sr)
        signal[int(t * sr): int(t * sr) + n] += np.hanning(n) * rng.normal(0, 0.3, n)
        t += length + rng.uniform(0.4, 0.8)
    return signal


def test_recording_cycles_are_the_annotation_with_its_truth(analysis, recording):
    annotated, _ = read_annotation_file(recording.with_suffix(".txt"))
    assert analysis.cycle_source == "annotation"
    assert [(c.start, c.end) for c in analysis.cycles] == [(a.start, a.end) for a in annotated]
    assert [c.truth for c in analysis.cycles] == [a.label for a in annotated]
    probabilities = np.array([c.probabilities for c in analysis.cycles])
    assert probabilities.shape == (len(annotated), 4)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=1e-5)
    assert all(c.matches == (c.truth == c.predicted) for c in analysis.cycles)
    info = sf.info(recording)
    assert (analysis.sample_rate, analysis.duration, analysis.device) == (info.samplerate, pytest.approx(info.duration),
                                                                          "Meditron")
    assert sum(analysis.class_counts().values()) == len(annotated)


def test_given_spans_are_predicted_as_the_same_cycles_read_from_the_annotation(analysis, model, recording):
    """An annotation being edited: its cycles, in its order, before it is saved."""
    cycles = analysis.cycles
    spans = [(cycles[3].start, cycles[3].end), (cycles[0].start, cycles[0].end), (1.0, 1.5)]
    edited = analyse_recording(recording, model, spans=spans)
    assert edited.cycle_source == "edited" and [(c.start, c.end) for c in edited.cycles] == spans
    assert all(c.truth is None for c in edited.cycles)
    np.testing.assert_allclose([c.probabilities for c in edited.cycles[:2]],
                               [cycles[3].probabilities, cycles[0].probabilities], atol=1e-6)


def test_csv_and_json_hold_one_row_per_cycle(analysis, recording, tmp_path):
    write_csv([analysis, analysis], tmp_path / "cycles.csv")
    with open(tmp_path / "cycles.csv", newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert len(rows) == 1 + 2 * len(analysis.cycles)
    first = dict(zip(rows[0], rows[1]))
    assert first["recording"] == recording.stem and first["cycle_source"] == "annotation"
    assert float(first["start"]) == pytest.approx(analysis.cycles[0].start, abs=1e-3)
    assert sum(float(first[f"p_{n}"]) for n in ("normal", "crackle", "wheeze", "both")) == pytest.approx(1, abs=1e-3)
    assert first["match"] in ("yes", "no") and first["segmentation_confidence"] == ""  # annotated: not segmented
    [parsed] = json.loads(to_json([analysis]))
    assert len(parsed["cycles"]) == len(analysis.cycles) and parsed["device"] == "Meditron"


def test_recording_without_annotation_is_segmented_with_confidences(model, recording, tmp_path):
    copy = tmp_path / recording.name  # the same audio with no annotation beside it
    shutil.copy(recording, copy)
    annotated, _ = read_annotation_file(recording.with_suffix(".txt"))
    result = analyse_recording(copy, model)
    assert result.cycle_source == "automatic" and not result.fallback_reason
    assert 0 < result.segmentation_confidence <= 1 and 1 <= result.breathing_period <= 8
    score = score_segmentation([(c.start, c.end) for c in annotated], [(c.start, c.end) for c in result.cycles],
                               result.duration)
    assert 0.8 <= score.count_ratio <= 1.25 and score.f1 >= 0.7  # the goals, on this recording
    assert all(c.truth is None and c.matches is None and 0 <= c.segmentation_confidence <= 1 for c in result.cycles)
    assert all(a.end <= b.start for a, b in zip(result.cycles, result.cycles[1:]))
    [parsed] = json.loads(to_json([result]))
    assert parsed["segmentation_confidence"] == result.segmentation_confidence
    assert [c["segmentation_confidence"] for c in parsed["cycles"]] == [c.segmentation_confidence for c in result.cycles]
    write_csv([result], tmp_path / "cycles.csv")
    with open(tmp_path / "cycles.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [float(r["segmentation_confidence"]) for r in rows] == \
        [pytest.approx(c.segmentation_confidence, abs=1e-3) for c in result.cycles]


def test_the_phase_of_automatic_cycles_is_in_the_json_and_csv(analysis, model, recording, tmp_path):
    """How sure the segmentation is that the cycles start at inspiration: written out for automatic cycles,
    left empty for annotated ones."""
    copy = tmp_path / recording.name
    shutil.copy(recording, copy)
    result = analyse_recording(copy, model)
    assert result.phase_confidence >= 0.7 and not result.phase_uncertain and result.phase_note == ""
    [found, annotated] = json.loads(to_json([result, analysis]))
    assert (found["phase_confidence"], found["phase_uncertain"], found["phase_note"]) == (result.phase_confidence,
                                                                                          False, "")
    assert "segmentation" not in found and found["segmentation_confidence"] == result.segmentation_confidence
    assert (annotated["phase_confidence"], annotated["phase_uncertain"]) == (None, False)
    write_csv([result, analysis], tmp_path / "cycles.csv")
    with open(tmp_path / "cycles.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["phase_confidence"], r["phase_uncertain"]) for r in rows if r["cycle_source"] == "automatic"} == \
        {(f"{result.phase_confidence:.3f}", "no")}
    assert {(r["phase_confidence"], r["phase_uncertain"]) for r in rows if r["cycle_source"] == "annotation"} == \
        {("", "")}


def test_lungkd_predict_says_when_the_phase_of_the_cycles_is_uncertain(icbhi_audio_dir, synthetic_dir,
                                                                       tmp_path_factory, tmp_path, capsys):
    """The real recording whose inspiration and expiration are about as strong, without its annotation."""
    unannotated = tmp_path / "103_2b2_Ar_mc_LittC2SE.wav"
    unannotated.symlink_to(icbhi_audio_dir / unannotated.name)
    model_folder = tiny_model_folder(synthetic_dir, tmp_path_factory)
    assert main(["predict", str(model_folder), str(unannotated)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("103_2b2_Ar_mc_LittC2SE: 6 cycles from automatic")
    assert out[1].startswith("  phase uncertain (65% sure the cycles start at inspiration): inspiration and "
                             "expiration are about as strong here")
    assert main(["predict", str(model_folder), str(unannotated), "--json"]) == 0
    [parsed] = json.loads(capsys.readouterr().out)
    assert parsed["phase_uncertain"] is True and parsed["phase_note"] in out[1]


def test_cycles_stream_through_the_model_in_batches_with_the_probabilities_of_lungkd_evaluate(model, recording,
                                                                                              synthetic_dir):
    """`lungkd predict` prepares, featurises and classifies a batch of cycles at a time; any batch size gives
    what `lungkd evaluate` computes for the same cycles from the prepared dataset."""
    probabilities = lambda analysis: np.array([c.probabilities for c in analysis.cycles])  # noqa: E731
    one, many = analyse_recording(recording, model, batch_size=1), analyse_recording(recording, model, batch_size=64)
    np.testing.assert_allclose(probabilities(one), probabilities(many), rtol=0, atol=1e-6)
    sets = build_cycle_sets(load_dataset(synthetic_dir), model_info("cnn6").inputs)
    (subset,) = [CycleSet(s.features[rows], s.labels[rows]) for s in sets.values()
                 if (rows := [i for i, cid in enumerate(s.cycle_ids) if cid.startswith(f"{recording.stem}#")])]
    expected = torch.softmax(predict_logits(model.model, subset), dim=1).numpy()
    np.testing.assert_allclose(probabilities(many), expected, rtol=0, atol=1e-5)


def test_silence_is_analysed_in_fixed_windows_and_says_why(model, tmp_path):
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(10 * 8000, np.float32), 8000)
    result = analyse_recording(path, model)
    assert result.cycle_source == "fixed windows" and "no breathing heard" in result.fallback_reason
    assert [(c.start, c.end) for c in result.cycles] == [(0.0, 4.0), (4.0, 8.0), (8.0, 10.0)]
    assert result.segmentation_confidence == 0 and all(c.segmentation_confidence == 0 for c in result.cycles)


def test_bad_files_raise_errors_that_name_them(model, tmp_path):
    fake = tmp_path / "not-audio.wav"
    fake.write_text("this is text")
    with pytest.raises(AudioError, match="not-audio.wav"):
        analyse_recording(fake, model)
    (tmp_path / "notes.mp3").write_bytes(b"ID3" + bytes(100))
    with pytest.raises(AudioError, match="unsupported audio format"):
        analyse_recording(tmp_path / "notes.mp3", model)
    with pytest.raises(AudioError, match="missing.wav: no such file") as missing:
        analyse_recording(tmp_path / "missing.wav", model)
    assert "check the path" in missing.value.problem.fix
    with pytest.raises(AudioError, match="this is a folder, not a recording") as folder:
        analyse_recording(tmp_path, model)
    assert "recordings inside it" in folder.value.problem.fix
    with pytest.raises(LungKDError, match="not a LungKD model folder"):
        load_saved_model(tmp_path)


def test_cancel_stops_the_analysis(model, tmp_path):
    path = tmp_path / "breathing.wav"
    sf.write(path, breathing(8000), 8000)
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
