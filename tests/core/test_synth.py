"""The synthetic ICBHI dataset: exact layout, realistic acoustics, and no class given away by loudness,
cycle duration or device (issue 2)."""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import soundfile as sf

from lungkd.core.errors import DataError
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.data.synth import (CLASS_SHARES, COARSE_CRACKLE_HZ, DIAGNOSES, FINE_CRACKLE_HZ, SynthSummary,
                               crackle_waves, plan_dataset, write_synthetic_dataset)

SEED = 7
RECORDINGS = 90
FOLDS = 5
NAME = re.compile(r"^(\d{3})_(\d+[bp]\d)_(Tc|Al|Ar|Pl|Pr|Ll|Lr)_(sc|mc)_(AKGC417L|LittC2SE|Litt3200|Meditron)$")
TIME_MS = re.compile(r"^\d+(\.\d{1,3})?$")  # ICBHI's style: 0.036, 2.45, 27
TIME_SIG5 = re.compile(r"^\d+(\.\d+)?$")
SIDE_FILES = ("ICBHI_challenge_train_test.txt", "ICBHI_Challenge_demographic_information.txt",
              "ICBHI_Challenge_diagnosis.txt", "metadata_with_location.txt")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> tuple[Path, SynthSummary]:
    out = tmp_path_factory.mktemp("synth")
    return out, write_synthetic_dataset(out, RECORDINGS, SEED)


def _annotations(path: Path) -> list[tuple[str, str, str, str]]:
    return [tuple(line.split("\t")) for line in path.read_text().splitlines()]


def _names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.wav"))


# ------------------------------------------------------------------------------ per-cycle features

@dataclass
class CycleRow:
    name: str
    device: str
    label: int
    start: float
    duration: float
    rms_db: float
    transient: float  # share of the time the 150-1800 Hz band rises 4x above its local RMS (clicks)
    peakiness: float  # dB by which the most prominent 100-1000 Hz spectral line stands out


def _downsampled(x: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    """Resample to the power-of-two length that gives a 4-8 kHz rate (every device reaches 2 kHz, and FFTs
    of such lengths are fast); returns the samples and their exact rate."""
    n = 1 << int(np.ceil(np.log2(len(x))))
    m = min(n, 1 << int(np.ceil(np.log2(n * 4000 / sr))))
    rate = m * sr / n
    y = np.fft.irfft(np.fft.rfft(x, n)[:m // 2 + 1], m) * (m / n)
    return y[:int(len(x) * rate / sr)], rate


def _band_pass(x: np.ndarray, sr: float, low: float, high: float) -> np.ndarray:
    n = 1 << int(np.ceil(np.log2(len(x))))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    return np.fft.irfft(np.fft.rfft(x, n) * ((f >= low) & (f <= high)), n)[:len(x)]


def _moving_mean(x: np.ndarray, width: int) -> np.ndarray:
    """Centred moving average along the last axis, over `width` samples (fewer at the ends)."""
    c = np.concatenate([np.zeros(x.shape[:-1] + (1,)), np.cumsum(x, axis=-1)], axis=-1)
    i = np.arange(x.shape[-1])
    hi, lo = np.minimum(i + width // 2 + 1, x.shape[-1]), np.maximum(i - width // 2, 0)
    return (c[..., hi] - c[..., lo]) / (hi - lo)


def _transients(x: np.ndarray, sr: float) -> np.ndarray:
    """Per sample: is the 150-1800 Hz band 4x above its RMS over the surrounding 200 ms (a click)?"""
    y = _band_pass(x, sr, 150.0, 1800.0)
    local = _moving_mean(y * y, int(0.2 * sr)) + 1e-20
    return (y * y) > 16.0 * local


def _line_spectrogram(x: np.ndarray, sr: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """128 ms frames: centres (s), frequencies, power (dB) and each bin's excess over its +-60 Hz neighbourhood
    (dB): a tone stands out of breath noise by this excess."""
    nfft = 1 << int(round(np.log2(0.128 * sr)))
    frames = np.lib.stride_tricks.sliding_window_view(x, nfft)[::nfft // 2] * np.hanning(nfft)
    power_db = 10 * np.log10(np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-20)
    excess = power_db - _moving_mean(power_db, 2 * int(60.0 / (sr / nfft)) + 1)
    centres = (np.arange(len(frames)) * (nfft // 2) + nfft / 2) / sr
    return centres, np.fft.rfftfreq(nfft, 1.0 / sr), power_db, excess


def _line_prominence(x: np.ndarray, sr: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame centres (s), and per frame the excess (dB) of its most prominent 100-1000 Hz line."""
    centres, f, _, excess = _line_spectrogram(x, sr)
    return centres, excess[:, (f >= 100.0) & (f <= 1000.0)].max(axis=1)


def _dominant_tone_hz(path: Path, start: float, duration: float) -> float:
    """The loudest spectral line (10 dB above its neighbourhood) of a cycle, over 50-1800 Hz."""
    x, sr = sf.read(path)
    _, f, power_db, excess = _line_spectrogram(*_downsampled(x[int(start * sr):int((start + duration) * sr)], sr))
    is_line = (excess > 10) & (f >= 50) & (f <= 1800)
    return float(f[np.unravel_index(np.argmax(np.where(is_line, power_db, -np.inf)), power_db.shape)[1]])


def _cycle_rows(folder: Path) -> list[CycleRow]:
    rows = []
    for name in _names(folder):
        x, sr = sf.read(folder / f"{name}.wav")
        y, rate = _downsampled(x, sr)
        clicks = _transients(y, rate)
        centres, line_db = _line_prominence(y, rate)
        for start, end, crackle, wheeze in _annotations(folder / f"{name}.txt"):
            s, e = float(start), float(end)
            inside = (centres >= s) & (centres < e)
            rows.append(CycleRow(
                name, name.rsplit("_", 1)[1], int(crackle) + 2 * int(wheeze), s, e - s,
                20 * np.log10(np.sqrt(np.mean(x[int(s * sr):int(e * sr)] ** 2))),
                clicks[int(s * rate):int(e * rate)].mean(),
                float(np.sort(line_db[inside])[-2:].mean())))  # the best two frames: a wheeze lasts >= 100 ms
    return rows


@pytest.fixture(scope="module")
def cycles(dataset) -> list[CycleRow]:
    return _cycle_rows(dataset[0])


# -------------------------------------------------------------------- a binned majority classifier

def _quantile_bins(train: np.ndarray, values: np.ndarray, per_column: int) -> np.ndarray:
    """One bin id per row: each column cut at its train quantiles into `per_column` bins, then combined."""
    ids = np.zeros(len(values), dtype=int)
    for j in range(values.shape[1]):
        edges = np.quantile(train[:, j], np.linspace(0, 1, per_column + 1)[1:-1])
        ids = ids * per_column + np.searchsorted(edges, values[:, j])
    return ids


def _balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean([np.mean(y_pred[y_true == c] == c) for c in np.unique(y_true)]))


def _binned_majority(bins: np.ndarray, y: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Predict, per bin, the class most over-represented there among the train rows (counts divided by
    class size: the rule that maximises balanced accuracy); unseen bins get the commonest class."""
    counts = np.zeros((bins.max() + 1, len(CLASS_NAMES)))
    np.add.at(counts, (bins[train], y[train]), 1)
    rate = counts / np.maximum(1, np.bincount(y[train], minlength=len(CLASS_NAMES)))
    return np.where(counts.sum(axis=1) > 0, rate.argmax(axis=1), np.bincount(y[train]).argmax())[bins]


def _cross_validated(make_bins: Callable[[np.ndarray], np.ndarray], y: np.ndarray, patients: np.ndarray) -> float:
    """Balanced accuracy of out-of-fold predictions with folds by patient (fit on 4/5 of the patients,
    predict the rest). Classes cluster by patient, so one train/test split of a few dozen patients is a
    noisy judge; pooling five folds is a steadier one."""
    fold = np.unique(patients, return_inverse=True)[1] % FOLDS
    prediction = np.empty_like(y)
    for k in range(FOLDS):
        train = fold != k
        prediction[~train] = _binned_majority(make_bins(train), y, train)[~train]
    return _balanced_accuracy(y, prediction)


def _within_recording(rows: list[CycleRow], values: np.ndarray) -> np.ndarray:
    """Each value less the median of its recording's: a patient's overall loudness or breathing rate can
    no longer hide a class-dependent difference."""
    names = np.array([r.name for r in rows])
    return values - np.array([np.median(values[names == n]) for n in names])


def _auc(values: np.ndarray, positive: np.ndarray) -> float:
    """Chance that a positive row's value exceeds a negative one's (Mann-Whitney); 0.5 is full overlap."""
    ranks = np.argsort(np.argsort(values)) + 1.0
    n_pos, n_neg = positive.sum(), (~positive).sum()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _feature_scores(rows: list[CycleRow]) -> dict[str, float]:
    y = np.array([r.label for r in rows])

    def quantiles(*columns: list[float], per_column: int) -> Callable[[np.ndarray], np.ndarray]:
        values = np.column_stack(columns)
        return lambda train: _quantile_bins(values[train], values, per_column)

    devices = sorted({r.device for r in rows})
    device = np.array([devices.index(r.device) for r in rows])
    rms = np.array([r.rms_db for r in rows])
    features = {
        "rms": quantiles(rms, per_column=8),
        "rms_in_recording": quantiles(_within_recording(rows, rms), per_column=8),
        "duration": quantiles([r.duration for r in rows], per_column=8),
        "device": lambda train: device,
        "acoustic": quantiles([r.transient for r in rows], [r.peakiness for r in rows], per_column=4),
    }
    patients = np.array([r.name[:3] for r in rows])
    return {name: _cross_validated(make_bins, y, patients) for name, make_bins in features.items()}


# ------------------------------------------------------------------------------------------- tests

def test_files_are_named_and_paired_as_in_icbhi(dataset):
    folder, summary = dataset
    names = _names(folder)
    assert len(names) == summary.recordings == RECORDINGS
    assert sorted(p.stem for p in folder.glob("*.txt") if p.name not in SIDE_FILES) == names
    fields = [NAME.match(name) for name in names]
    assert all(fields), [n for n, m in zip(names, fields) if not m]
    pids = sorted({int(m[1]) for m in fields})
    assert pids[0] == 101 and len(pids) == summary.patients
    assert {m[5] for m in fields} == {"AKGC417L", "LittC2SE", "Litt3200", "Meditron"}
    assert {m[4] for m in fields} == {"sc", "mc"}
    by_patient: dict[str, set[str]] = {}
    for m in fields:
        by_patient.setdefault(m[1], set()).add(m[5])
    assert all(len(devices) == 1 for devices in by_patient.values())  # a patient keeps one device


def test_annotation_lines_parse_and_cycles_lie_within_the_audio(dataset):
    folder, _ = dataset
    for name in _names(folder):
        info = sf.info(folder / f"{name}.wav")
        rows = _annotations(folder / f"{name}.txt")
        assert rows, name
        for start, end, crackle, wheeze in rows:
            for value in (start, end):
                if name.endswith("Litt3200"):  # ICBHI writes these with 5 significant digits: 1.8771, 0.54469
                    assert TIME_SIG5.match(value) and len(value.replace(".", "").lstrip("0")) <= 5, (name, value)
                else:
                    assert TIME_MS.match(value), (name, value)
            assert crackle in "01" and wheeze in "01"
            assert 0.0 <= float(start) and float(end) <= info.frames / info.samplerate
            assert 1.4 <= float(end) - float(start) <= 6.0, (name, start, end)
        assert all(a[1] == b[0] for a, b in zip(rows, rows[1:]))  # contiguous, like ICBHI's


def test_side_files_have_the_icbhi_format(dataset):
    folder, summary = dataset
    raw = {f: (folder / f).read_bytes() for f in SIDE_FILES}
    assert raw[SIDE_FILES[0]].count(b"\r\n") == RECORDINGS and raw[SIDE_FILES[1]].count(b"\r\n") == summary.patients
    assert b"\r" not in raw[SIDE_FILES[2]] + raw[SIDE_FILES[3]]
    split = [line.split("\t") for line in raw[SIDE_FILES[0]].decode().splitlines()]
    assert sorted(name for name, _ in split) == _names(folder) and {s for _, s in split} == {"train", "test"}
    assert 0.5 <= sum(s == "train" for _, s in split) / len(split) <= 0.7
    sides: dict[str, set[str]] = {}
    for name, side in split:
        sides.setdefault(name[:3], set()).add(side)
    assert sum(len(s) == 2 for s in sides.values()) <= max(1, len(sides) // 20)  # patient-wise, like ICBHI
    demographics = [line.split("\t") for line in raw[SIDE_FILES[1]].decode().splitlines()]
    metadata = [line.split("\t") for line in raw[SIDE_FILES[3]].decode().splitlines()]
    diagnosis = dict(line.split("\t") for line in raw[SIDE_FILES[2]].decode().splitlines())
    assert [row[0] for row in demographics] == [row[0] for row in metadata] == list(diagnosis) == sorted(sides)
    assert set(diagnosis.values()) <= {d.name for d in DIAGNOSES}
    for demo, meta in zip(demographics, metadata):
        assert len(demo) == 6 and len(meta) == 7 and meta[6] in ("Tc", "Al", "Ar", "Pl", "Pr", "Ll", "Lr")
        assert demo[2] in ("M", "F", "NA")
        for d, m in zip(demo[1:6], meta[1:6]):  # `70` in the demographics is `70.0` in the metadata
            assert d == m == "NA" or d == m or float(d) == float(m) and "." in m and "." not in d
        is_child = demo[1] != "NA" and float(demo[1]) < 19
        assert demo[3] == "NA" or not is_child  # BMI for adults, weight and height for children
        assert demo[4] == demo[5] == "NA" or is_child


def test_class_balance_is_near_icbhi_and_both_splits_have_every_class(dataset):
    folder, summary = dataset
    labels = [int(c) + 2 * int(w) for n in _names(folder) for _, _, c, w in _annotations(folder / f"{n}.txt")]
    shares = np.bincount(labels, minlength=4) / len(labels)
    assert np.abs(shares - CLASS_SHARES).max() < 0.02, shares
    assert summary.cycles == dict(zip(CLASS_NAMES, np.bincount(labels, minlength=4).tolist()))
    assert sum(summary.devices.values()) == sum(summary.sample_rates.values()) == RECORDINGS
    assert all(min(counts.values()) > 0 for counts in summary.cycles_by_split.values())


def test_label_noise_relabels_the_requested_share_and_nothing_else(tmp_path):
    clean = write_synthetic_dataset(tmp_path / "clean", 12, SEED)
    noisy = write_synthetic_dataset(tmp_path / "noisy", 12, SEED, label_noise=0.25)
    assert noisy.true_labels == clean.true_labels
    written = {n: [int(c) + 2 * int(w) for _, _, c, w in _annotations(tmp_path / "noisy" / f"{n}.txt")]
               for n in noisy.true_labels}
    wrong = sum(a != b for n in written for a, b in zip(written[n], noisy.true_labels[n]))
    total = sum(len(v) for v in written.values())
    assert abs(wrong / total - 0.25) <= 0.5 / total + 1e-9 and wrong == noisy.relabelled
    assert clean.relabelled == 0
    for name in written:  # same audio and split: only the written labels differ
        assert (tmp_path / "noisy" / f"{name}.wav").read_bytes() == (tmp_path / "clean" / f"{name}.wav").read_bytes()
    assert (tmp_path / "noisy" / SIDE_FILES[0]).read_bytes() == (tmp_path / "clean" / SIDE_FILES[0]).read_bytes()


def test_bad_arguments_are_refused(tmp_path):
    with pytest.raises(DataError, match="at least 1 recording, not 0"):
        write_synthetic_dataset(tmp_path, 0, 1)
    with pytest.raises(DataError, match="between 0 and 1, not 1.5"):
        write_synthetic_dataset(tmp_path, 5, 1, label_noise=1.5)
    (tmp_path / "old.wav").write_bytes(b"")
    with pytest.raises(DataError, match="not empty"):
        write_synthetic_dataset(tmp_path, 5, 1)


def test_the_same_seed_gives_byte_identical_files_in_a_pool_or_not(tmp_path):
    calls = []
    write_synthetic_dataset(tmp_path / "a", 6, 3, label_noise=0.1, progress=lambda *args: calls.append(args),
                            workers=2)
    write_synthetic_dataset(tmp_path / "b", 6, 3, label_noise=0.1, workers=1)
    write_synthetic_dataset(tmp_path / "c", 6, 4, label_noise=0.1)
    files = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert files == sorted(p.name for p in (tmp_path / "b").iterdir())
    assert all((tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes() for f in files)
    other = {p.name: p.read_bytes() for p in (tmp_path / "c").iterdir()}
    assert any(other.get(f) != (tmp_path / "a" / f).read_bytes() for f in files)
    assert calls == [(i, 6) for i in range(1, 7)]


def test_sample_rates_and_bit_depths_vary_and_litt3200_has_nothing_above_2khz(dataset):
    folder, _ = dataset
    infos = {name: sf.info(folder / f"{name}.wav") for name in _names(folder)}
    rates = {i.samplerate for i in infos.values()}
    assert {4000, 44100} <= rates and len(rates) >= 4
    assert {"PCM_16", "PCM_24"} <= {i.subtype for i in infos.values()}
    litt = [n for n in infos if n.endswith("Litt3200")]
    assert litt and all(infos[n].samplerate == 4000 for n in litt)  # so nothing above 2 kHz can be there
    assert all(i.samplerate > 4000 for n, i in infos.items() if n not in litt)
    for name in litt:  # and the device's own roll-off leaves the band edge empty: no aliasing
        x, sr = sf.read(folder / f"{name}.wav")
        power = np.abs(np.fft.rfft(x)) ** 2
        assert power[np.fft.rfftfreq(len(x), 1 / sr) > 1900].sum() < 1e-3 * power.sum()


def test_fine_crackles_are_under_10ms_for_two_cycles_and_coarse_ones_longer():
    sr = 44100
    for f0, fine in ((FINE_CRACKLE_HZ[0], True), (FINE_CRACKLE_HZ[1], True), (COARSE_CRACKLE_HZ[0], False),
                     (COARSE_CRACKLE_HZ[1], False)):
        wave = crackle_waves(np.array([f0]), np.array([1.0]), sr)[0]
        crossings = np.flatnonzero(np.diff(np.sign(wave[1:])) != 0) + 1
        two_cycles_ms = 1000 * crossings[3] / sr  # onset to the 4th zero crossing
        assert (two_cycles_ms < 10) if fine else (two_cycles_ms > 10), (f0, two_cycles_ms)
        assert np.argmax(np.abs(wave)) < crossings[1]  # explosive: the largest deflection comes first


def test_crackle_cycles_hold_transients_and_wheeze_cycles_spectral_lines_in_100_to_1000_hz(dataset, cycles):
    folder, _ = dataset
    y = np.array([r.label for r in cycles])
    transient = np.array([r.transient for r in cycles])
    peak_db = np.array([r.peakiness for r in cycles])
    crackle, wheeze, normal = (y & 1) == 1, (y & 2) == 2, y == 0
    assert np.median(transient[crackle]) > 5 * np.percentile(transient[~crackle], 90) + 1e-4
    assert np.median(peak_db[wheeze]) > np.percentile(peak_db[~wheeze], 90) + 3
    # A clear wheeze's strongest tonal component, searched over 50-1800 Hz, lies in 100-1000 Hz.
    clear = [r for r in cycles if r.label == 2 and r.peakiness > np.percentile(peak_db[normal], 99)]
    assert len(clear) >= 0.6 * np.sum(y == 2)
    hz = np.array([_dominant_tone_hz(folder / f"{r.name}.wav", r.start, r.duration) for r in clear])
    assert np.mean((hz >= 100) & (hz <= 1000)) >= 0.9, hz


def test_no_class_is_given_away_by_loudness_duration_or_device(cycles):
    """A binned majority classifier on each shortcut alone (cycle RMS, cycle duration, device), scored on
    patients it was not fitted on, stays near chance (balanced accuracy 0.25 over the four classes); the
    same classifier on two acoustic features (transient rate and spectral-line prominence) does far better,
    so the check can tell a leak from a dataset with no signal at all."""
    scores = _feature_scores(cycles)
    print("balanced accuracy, patient-grouped 5-fold:", {k: round(v, 3) for k, v in scores.items()})
    shortcuts = ("rms", "rms_in_recording", "duration", "device")
    for shortcut in shortcuts:
        assert scores[shortcut] < 0.40, (shortcut, scores)
    best_shortcut = max(scores[s] for s in shortcuts)
    assert scores["acoustic"] > 0.55 and scores["acoustic"] > best_shortcut + 0.2, scores


def test_cycle_loudness_and_duration_overlap_across_classes(cycles):
    """Within a recording, a class's cycles are neither louder nor longer than the others: the AUC of each
    class against the rest stays near 0.5. A 2 dB louder abnormal class already moves it by about 0.17."""
    y = np.array([r.label for r in cycles])
    for feature, bound in (("rms_db", 0.12), ("duration", 0.15)):  # cycles of `mc` sessions share durations
        values = _within_recording(cycles, np.array([getattr(r, feature) for r in cycles]))
        aucs = [_auc(values, y == c) for c in range(len(CLASS_NAMES))]
        print(f"{feature} within its recording, AUC of each class against the rest:", np.round(aucs, 3))
        assert max(abs(a - 0.5) for a in aucs) < bound, (feature, aucs)


def test_simultaneous_recordings_share_their_cycle_timing(dataset):
    folder, _ = dataset
    sessions: dict[str, list[str]] = {}
    for name in _names(folder):
        pid, index, _, mode, _ = name.split("_")
        if mode == "mc":
            sessions.setdefault(f"{pid}_{index}", []).append(name)
    shared = [names for names in sessions.values() if len(names) > 1]
    assert shared
    for names in shared:
        timings = {tuple((s, e) for s, e, _, _ in _annotations(folder / f"{n}.txt")) for n in names}
        assert len(timings) == 1, names


@pytest.mark.slow
def test_an_interrupted_generation_leaves_nothing_that_breaks_the_next(tmp_path):
    """SIGKILL while the workspace's synthetic dataset is being written: the dataset folder does not exist
    (it is written aside and renamed whole), so the next call generates it afresh."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from lungkd.core.data.dataset import load_dataset
    from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset

    folder = tmp_path / "datasets" / "synthetic"
    code = ("import sys; from pathlib import Path; from lungkd.core.data.sources import SyntheticData, "
            "ensure_synthetic_dataset; ensure_synthetic_dataset(Path(sys.argv[1]), SyntheticData(recordings=400))")
    process = subprocess.Popen([sys.executable, "-c", code, str(folder)])
    deadline = time.time() + 120
    while not any(p.suffix == ".wav" for d in tmp_path.glob("datasets/.*") for p in d.iterdir()):
        assert time.time() < deadline and process.poll() is None
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not folder.exists()
    ensure_synthetic_dataset(folder, SyntheticData(recordings=4, seed=2))
    assert len(load_dataset(folder).recordings) == 4



def test_ctrl_c_while_a_recording_is_encoded_is_a_keyboard_interrupt_not_a_failed_write(tmp_path, monkeypatch):
    """libsndfile writes the encoded recording through Python callbacks; a KeyboardInterrupt raised inside one was
    swallowed there and surfaced as soundfile's AssertionError (lungkd train ended with a traceback and exit 1
    instead of 130). Ctrl-C pressed while libsndfile writes is the KeyboardInterrupt it is, once the write is done."""
    import io
    import os
    import signal

    from lungkd.core.data import synth

    class PressedWhileWritten(io.BytesIO):
        def write(self, data):
            if not self.tell():
                os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C inside libsndfile's write callback
            return super().write(data)

    monkeypatch.setattr(synth.io, "BytesIO", PressedWhileWritten)
    _, plans = plan_dataset(1, seed=2)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # as in a terminal
    try:
        with pytest.raises(KeyboardInterrupt):
            synth._write_audio(2, (tmp_path / "a.wav", plans[0], 0))
    finally:
        signal.signal(signal.SIGINT, previous)
