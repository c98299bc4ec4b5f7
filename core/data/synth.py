"""A synthetic lung-sound dataset in the exact ICBHI 2017 layout (issue 2).

What is modelled, so that a model has to learn acoustics rather than shortcuts:
- breathing: band-limited noise under an inspiratory and an expiratory envelope, cycles of 1.5-6 s;
  recordings taken at the same time on several chest locations (`mc`) share their cycle timing;
- heart sounds (S1/S2 thumps at 1-1.7 Hz), ambient noise, sensor hiss, mains hum, stethoscope friction;
- four devices with their own band limits, sample rates (4 kHz to 44.1 kHz) and bit depths;
- fine crackles (two-cycle duration < 10 ms, late inspiratory) and coarse ones (longer, lower pitched,
  early inspiratory and expiratory), a few to many per cycle, some faint;
- wheezes: tonal, 100-1000 Hz, >= 100 ms, with harmonics, glides, vibrato and several at once; rhonchi
  below 200 Hz;
- patient traits shared by a patient's recordings; the diagnosis drives the class probabilities;
- ICBHI's class balance; a chosen rate of wrong labels, the truth kept in the summary.
Shortcuts are closed on purpose: every annotated cycle is scaled to a loudness drawn independently of its
class; the device, loudness and breathing rate of patients are spread evenly over patients of similar class
mix; and the classes are balanced within each device. tests/core/test_synth.py measures what is left.
"""
from __future__ import annotations

import io
from collections import Counter
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from lungkd.core.labels import CLASS_NAMES
from lungkd.core.data.generated import mark_generated
from lungkd.core.data.metadata import DEMOGRAPHICS_FILE, DIAGNOSIS_FILE, LOCATIONS, METADATA_FILE, SPLIT_FILE
from lungkd.core.errors import DataError
from lungkd.core.pool import interrupts_held, run_jobs

CLASS_SHARES = np.array([0.53, 0.27, 0.13, 0.07])  # ICBHI: 3642 / 1864 / 886 / 506 of 6898 cycles
TRAIN_SHARE = 0.6  # of recordings; ICBHI has 539 / 920
FIRST_PID = 101
MAX_PATIENTS = 899  # patient ids stay three-digit
RECORDINGS_PER_PATIENT = 3.5
LOCATION_WEIGHTS = np.array([0.12, 0.2, 0.18, 0.14, 0.14, 0.11, 0.11])  # Tc Al Ar Pl Pr Ll Lr
FINE_CRACKLE_HZ = (300.0, 900.0)  # a crackle's two-cycle duration is about 2.3 / f0: 2.6-7.8 ms when fine
COARSE_CRACKLE_HZ = (80.0, 190.0)  # 12-29 ms when coarse


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    share: float  # of patients; the same for every diagnosis, so the device says nothing of the class
    formats: tuple[tuple[int, str, float], ...]  # (sample rate, soundfile subtype, weight)
    low_hz: float
    high_hz: float
    order: int  # of the Butterworth-like low-pass magnitude
    mc_share: float  # sessions recorded on several chest locations at once
    hum_share: float  # electronic stethoscopes pick up mains hum
    five_digits: bool  # ICBHI writes Litt3200 times with 5 significant digits, the others in ms


DEVICES = {
    d.name: d for d in (
        DeviceProfile("AKGC417L", 0.40, ((44100, "PCM_24", 0.35), (44100, "PCM_16", 0.15), (22050, "PCM_16", 0.25),
                                          (16000, "PCM_24", 0.15), (16000, "PCM_32", 0.10)),
                      30.0, 9000.0, 2, 0.85, 0.0, False),
        DeviceProfile("Meditron", 0.25, ((44100, "PCM_16", 0.35), (10000, "PCM_16", 0.45), (22050, "PCM_24", 0.2)),
                      20.0, 4500.0, 4, 0.10, 0.3, False),
        DeviceProfile("LittC2SE", 0.15, ((44100, "PCM_16", 0.4), (22050, "PCM_16", 0.3), (8000, "PCM_16", 0.3)),
                      40.0, 1200.0, 2, 0.50, 0.0, False),
        DeviceProfile("Litt3200", 0.20, ((4000, "PCM_16", 0.85), (4000, "PCM_24", 0.15)),
                      20.0, 1750.0, 16, 0.20, 0.3, True),
    )
}


@dataclass(frozen=True)
class Diagnosis:
    name: str
    share: float  # of patients
    class_mean: tuple[float, float, float, float]  # normal, crackle, wheeze, both
    child_share: float
    recording_weight: float  # COPD patients were recorded far more often in ICBHI


DIAGNOSES = (
    Diagnosis("COPD", 0.50, (0.40, 0.34, 0.15, 0.11), 0.0, 2.0),
    Diagnosis("Healthy", 0.20, (0.95, 0.04, 0.01, 0.0), 0.6, 1.0),
    Diagnosis("URTI", 0.10, (0.88, 0.09, 0.03, 0.0), 0.85, 1.0),
    Diagnosis("Pneumonia", 0.05, (0.80, 0.14, 0.05, 0.01), 0.3, 1.0),
    Diagnosis("Bronchiectasis", 0.05, (0.50, 0.15, 0.25, 0.10), 0.1, 1.0),
    Diagnosis("Bronchiolitis", 0.05, (0.50, 0.10, 0.37, 0.03), 1.0, 1.0),
    Diagnosis("LRTI", 0.03, (0.90, 0.05, 0.05, 0.0), 0.5, 1.0),
    Diagnosis("Asthma", 0.02, (0.35, 0.0, 0.65, 0.0), 0.5, 1.0),
)


@dataclass(frozen=True)
class PatientTraits:
    """What a patient's recordings share. None of it depends on the diagnosis except `heart_rate` (via age)."""

    breath_period: float  # s, mean cycle length
    loudness_db: float  # dBFS of a cycle
    breath_corner_hz: float  # where the breath spectrum starts to fall
    heart_rate: float  # Hz
    heart_level: float  # relative to breath noise
    hiss_db: float  # sensor noise, dB relative to breath noise
    ambient_db: float
    hum_hz: float  # 0 for none
    friction_rate: float  # stethoscope rubbing bursts per second
    fine_share: float  # of crackles that are fine
    crackle_density: float  # mean crackles per crackle cycle
    wheeze_f0: float  # Hz, the patient's usual wheeze pitch
    polyphony: float  # chance that a wheeze cycle has several wheezes at once


@dataclass(frozen=True)
class Patient:
    pid: int
    diagnosis: Diagnosis
    age: float | None
    sex: str | None
    bmi: float | None
    weight: float | None
    height: float | None
    device: DeviceProfile
    class_probs: np.ndarray
    traits: PatientTraits


@dataclass(frozen=True)
class Breathing:
    """Contiguous breathing cycles covering a recording; cycles `first..last-1` are annotated."""

    edges: np.ndarray  # cycle starts plus the end of the last cycle, s; edges[0] <= 0
    insp: np.ndarray  # inspiratory fraction of each cycle
    exp: np.ndarray  # expiratory fraction (the rest is a pause)
    gain: np.ndarray  # per-cycle breath strength
    exp_gain: np.ndarray  # expiratory loudness relative to inspiratory
    first: int
    last: int

    @property
    def annotated_edges(self) -> np.ndarray:
        """The start of each annotated cycle, then the end of the last."""
        return self.edges[self.first:self.last + 1]


@dataclass
class RecordingPlan:
    name: str
    patient: Patient
    location: str
    sample_rate: int
    subtype: str
    n_samples: int
    breathing: Breathing
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # truth, per annotated cycle
    written: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))  # what the .txt says
    split: str = "train"


@dataclass(frozen=True)
class SynthSummary:
    out_dir: Path
    recordings: int
    patients: int
    cycles: dict[str, int]  # written labels, both splits
    cycles_by_split: dict[str, dict[str, int]]
    recordings_by_split: dict[str, int]
    label_noise: float  # as requested
    relabelled: int  # cycles whose written label is not the truth
    devices: dict[str, int]
    sample_rates: dict[int, int]
    subtypes: dict[str, int]
    audio_seconds: float
    true_labels: dict[str, tuple[int, ...]]  # recording name -> true class of each annotated cycle


# ----------------------------------------------------------------------------------------------- planning

def _log_uniform(rng: np.random.Generator, low: float, high: float, size=None):
    return np.exp(rng.uniform(np.log(low), np.log(high), size))


def _demographics(rng: np.random.Generator, diagnosis: Diagnosis) -> tuple:
    """(age, sex, adult BMI, child weight kg, child height cm); None is written as NA."""
    if rng.random() < 0.01:  # like ICBHI's patient 223, nothing known
        return None, None, None, None, None
    sex = "M" if rng.random() < 0.6 else "F"
    if rng.random() >= diagnosis.child_share:
        age = float(rng.integers(45 if diagnosis.name == "COPD" else 19, 91))
        bmi = None if rng.random() < 0.15 else round(float(np.clip(rng.normal(27.0, 5.0), 15.0, 55.0)), 2)
        return age, sex, bmi, None, None
    young = diagnosis.name == "Bronchiolitis" or rng.random() < 0.4
    age = round(float(rng.uniform(0.25, 2.0)), 2) if young else float(rng.integers(2, 19))
    if rng.random() < 0.15:
        return age, sex, None, None, None
    weight = (3.5 + 7.0 * age if age < 1 else 8.0 + 2.5 * age) * rng.uniform(0.85, 1.2)
    height = (50.0 + 25.0 * age if age < 1 else 75.0 + 6.0 * age) * rng.uniform(0.95, 1.05)
    return age, sex, None, round(float(weight), 1), float(round(height))


def _traits(rng: np.random.Generator, age: float | None, device: DeviceProfile, loudness_q: float,
            period_q: float) -> PatientTraits:
    child = age is not None and age < 12
    rhonchi = rng.random() < 0.2
    return PatientTraits(
        breath_period=1.9 + 1.7 * period_q,  # independent of age and class: duration must not give the class away
        loudness_db=-38.0 + 16.0 * loudness_q,
        breath_corner_hz=float(rng.uniform(180.0, 420.0)),
        heart_rate=float(rng.uniform(1.3, 1.7) if child else rng.uniform(1.0, 1.4)),
        heart_level=float(_log_uniform(rng, 0.15, 1.2)),
        hiss_db=float(rng.uniform(-40.0, -22.0)),
        ambient_db=float(rng.uniform(-35.0, -18.0)),
        hum_hz=float(rng.choice([50.0, 60.0])) if rng.random() < device.hum_share else 0.0,
        friction_rate=float(rng.uniform(0.0, 0.06)),
        fine_share=float(rng.choice([0.9, 0.5, 0.1])),
        crackle_density=float(_log_uniform(rng, 2.0, 14.0)),
        wheeze_f0=float(_log_uniform(rng, 100.0, 190.0) if rhonchi else _log_uniform(rng, 200.0, 850.0)),
        polyphony=float(rng.uniform(0.0, 0.5)),
    )


def _stratified_uniform(rng: np.random.Generator, class_probs: np.ndarray, block: int = 8) -> np.ndarray:
    """One value in [0, 1) per patient, spread evenly among patients of similar class mix.

    Drawn independently, a trait such as the device would line up with the class by chance in a dataset of
    a few dozen patients. Here patients are sorted by their most likely class and then their share of
    normal cycles, and each run of `block` of them gets one value from each 1/block stratum.
    """
    order = np.lexsort((class_probs[:, 0], class_probs.argmax(axis=1)))
    values = np.empty(len(order))
    for i in range(0, len(order), block):
        run = order[i:i + block]
        values[run] = ((rng.permutation(block) + rng.random(block)) / block)[:len(run)]
    return values


def _patients(rng: np.random.Generator, count: int) -> list[Patient]:
    diag_p = np.array([d.share for d in DIAGNOSES])
    diagnoses = [DIAGNOSES[i] for i in rng.choice(len(DIAGNOSES), size=count, p=diag_p / diag_p.sum())]
    demographics = [_demographics(rng, d) for d in diagnoses]
    # A low concentration spreads patients of one diagnosis from mostly normal to mostly abnormal.
    class_probs = np.array([rng.dirichlet(6.0 * (np.array(d.class_mean) + 0.01)) for d in diagnoses])
    devices = list(DEVICES.values())
    device_edges = np.cumsum([d.share for d in devices]) / sum(d.share for d in devices)
    device_q, loudness_q, period_q = (_stratified_uniform(rng, class_probs) for _ in range(3))
    patients = []
    for i, (diagnosis, demo) in enumerate(zip(diagnoses, demographics)):
        device = devices[int(np.searchsorted(device_edges, device_q[i], side="right"))]
        patients.append(Patient(FIRST_PID + i, diagnosis, *demo, device, class_probs[i],
                                _traits(rng, demo[0], device, loudness_q[i], period_q[i])))
    return patients


def _recording_counts(rng: np.random.Generator, patients: list[Patient], total: int) -> np.ndarray:
    weights = np.array([p.diagnosis.recording_weight for p in patients]) * rng.gamma(2.0, 1.0, len(patients))
    return 1 + rng.multinomial(total - len(patients), weights / weights.sum())


def _round_time(x: float, device: DeviceProfile) -> float:
    return float(f"{x:.5g}") if device.five_digits else round(x, 3)


def _format_time(x: float, device: DeviceProfile) -> str:
    return f"{x:.5g}" if device.five_digits else f"{x:.3f}".rstrip("0").rstrip(".")


def _breathing(rng: np.random.Generator, patient: Patient, duration: float) -> tuple[Breathing, float]:
    """Cycles covering [0, duration]; returns them and the duration, stretched if no cycle fits whole."""
    period = patient.traits.breath_period
    lengths = np.clip(period * rng.lognormal(0.0, 0.2, int(duration / 1.5) + 6), 1.5, 6.0)
    edges = np.concatenate([[0.0], np.cumsum(lengths)]) - rng.uniform(0.0, lengths[0])
    if 0.0 < edges[1] < 0.02:  # ICBHI starts such a cycle at 0
        edges[1] = 0.0
    edges = np.array([_round_time(e, patient.device) for e in edges])
    first = 1 if edges[0] < 0 else 0
    duration = max(duration, edges[first + 1] + 0.2)
    last = int(np.searchsorted(edges, duration, side="right")) - 1  # cycles ending by `duration`
    m = len(lengths)
    insp = rng.uniform(0.30, 0.42, m)
    breathing = Breathing(edges=edges, insp=insp, exp=rng.uniform(0.42, 0.58, m),
                          gain=rng.lognormal(0.0, 0.15, m), exp_gain=rng.uniform(0.3, 0.7) * rng.lognormal(0.0, 0.1, m),
                          first=first, last=last)
    return breathing, duration


def _recording_index(rng: np.random.Generator, session: int) -> str:
    return f"{session}{'b' if rng.random() < 0.85 else 'p'}{rng.integers(1, 5)}"


def _pick_format(rng: np.random.Generator, device: DeviceProfile) -> tuple[int, str]:
    weights = np.array([w for _, _, w in device.formats])
    sr, subtype, _ = device.formats[rng.choice(len(weights), p=weights / weights.sum())]
    return sr, subtype


def _session_sizes(rng: np.random.Generator, count: int, device: DeviceProfile) -> list[tuple[int, str]]:
    """Split a patient's recordings into sessions: (number of chest locations, mode)."""
    sessions = []
    while count > 0:
        mode = "mc" if rng.random() < device.mc_share else "sc"
        size = min(count, int(rng.integers(2, 7)) if mode == "mc" else int(rng.integers(1, 4)))
        sessions.append((size, mode))
        count -= size
    return sessions


def _patient_recordings(rng: np.random.Generator, patient: Patient, count: int) -> list[RecordingPlan]:
    plans = []
    for s, (size, mode) in enumerate(_session_sizes(rng, count, patient.device), start=1):
        rec_index = _recording_index(rng, s)
        sr, subtype = _pick_format(rng, patient.device)
        locations = rng.choice(len(LOCATIONS), size=size, replace=False, p=LOCATION_WEIGHTS)
        duration = float(rng.uniform(19.5, 20.5) if rng.random() < 0.6 else rng.uniform(10.0, 25.0))
        shared = _breathing(rng, patient, duration) if mode == "mc" else None  # simultaneous recordings
        for loc in locations:
            breathing, dur = shared if shared else _breathing(rng, patient, duration)
            name = f"{patient.pid:03d}_{rec_index}_{LOCATIONS[loc]}_{mode}_{patient.device.name}"
            plans.append(RecordingPlan(name, patient, LOCATIONS[loc], sr, subtype, int(np.ceil(dur * sr)), breathing))
    return plans


def _balanced_labels(rng: np.random.Generator, probs: np.ndarray) -> np.ndarray:
    """One class per cycle from its recording's probabilities, with per-class offsets tuned so that the
    class shares of these cycles land on ICBHI's whatever mix of patients was drawn."""
    scores = np.log(probs + 1e-6) + rng.gumbel(size=probs.shape)
    bias = np.zeros(len(CLASS_SHARES))
    labels = np.argmax(scores, axis=1)
    for step in range(300):
        share = np.bincount(labels, minlength=len(CLASS_SHARES)) / len(labels)
        if np.abs(share - CLASS_SHARES).max() < 0.004:
            break
        bias += 0.5 / (1 + step / 30) * (np.log(CLASS_SHARES) - np.log(share + 1e-3))
        labels = np.argmax(scores + bias, axis=1)
    return labels


def _with_label_noise(rng: np.random.Generator, labels: np.ndarray, rate: float) -> np.ndarray:
    """Replace the label of exactly round(rate * n) cycles by one of the three other classes."""
    written = labels.copy()
    wrong = rng.choice(len(labels), size=int(round(rate * len(labels))), replace=False)
    written[wrong] = (labels[wrong] + rng.integers(1, len(CLASS_NAMES), len(wrong))) % len(CLASS_NAMES)
    return written


def _assign_labels(rng: np.random.Generator, noise_rng: np.random.Generator, plans: list[RecordingPlan],
                   label_noise: float) -> None:
    # Recordings of one patient differ (ICBHI: a crackle at one location, not at another).
    rec_probs = [rng.dirichlet(8.0 * p.patient.class_probs + 0.05) for p in plans]
    counts = [p.breathing.last - p.breathing.first for p in plans]
    probs = np.repeat(np.array(rec_probs), counts, axis=0)
    device = np.repeat([p.patient.device.name for p in plans], counts)
    labels = np.zeros(len(probs), dtype=int)
    for name in DEVICES:  # balanced per device, so that the device says nothing of the class
        mine = device == name
        if mine.any():
            labels[mine] = _balanced_labels(rng, probs[mine])
    written = _with_label_noise(noise_rng, labels, label_noise)
    bounds = np.cumsum([0] + counts)
    for plan, a, b in zip(plans, bounds[:-1], bounds[1:]):
        plan.labels, plan.written = labels[a:b], written[a:b]


def _assign_split(rng: np.random.Generator, plans: list[RecordingPlan], patients: list[Patient]) -> None:
    """Patient-wise, stratified by diagnosis, about 60% of recordings in train; like ICBHI (patients 156
    and 218), about one patient in 60 has recordings on both sides."""
    by_patient: dict[int, list[RecordingPlan]] = {}
    for plan in plans:
        by_patient.setdefault(plan.patient.pid, []).append(plan)
    # One greedy pass over patients grouped by diagnosis, so that every diagnosis lands on both sides.
    order = [pid for d in DIAGNOSES for pid in rng.permutation([p.pid for p in patients if p.diagnosis is d])]
    train = total = 0
    for pid in order:
        recs = by_patient[int(pid)]
        side = "train" if train + len(recs) / 2 <= TRAIN_SHARE * (total + len(recs)) else "test"
        for plan in recs:
            plan.split = side
        total += len(recs)
        train += len(recs) if side == "train" else 0
    mixed = [pid for pid, recs in by_patient.items() if len(recs) >= 2]
    for pid in rng.permutation(mixed)[:int(round(len(patients) / 60))]:
        recs = by_patient[int(pid)]
        recs[int(rng.integers(len(recs)))].split = "test" if recs[0].split == "train" else "train"


def plan_dataset(recordings: int, seed: int, label_noise: float = 0.0) -> tuple[list[Patient], list[RecordingPlan]]:
    """Everything but the audio: patients, recordings (sorted by name), cycles, labels and split."""
    if recordings < 1:
        raise DataError(f"a synthetic dataset needs at least 1 recording, not {recordings}.",
                        fix="ask for 1 or more recordings (the demo uses 48, the benchmarks 120 or more).")
    if not 0.0 <= label_noise <= 1.0:
        raise DataError(f"label noise is the fraction of cycles given a wrong label, between 0 and 1, not {label_noise}.",
                        fix="use e.g. 0.1 for one wrong label in ten (0 for none).")
    rng = np.random.default_rng([seed, 0])
    patients = _patients(rng, int(np.clip(round(recordings / RECORDINGS_PER_PATIENT), 1, MAX_PATIENTS)))
    counts = _recording_counts(rng, patients, recordings)
    plans = [plan for patient, n in zip(patients, counts) for plan in _patient_recordings(rng, patient, int(n))]
    plans.sort(key=lambda p: p.name)
    # Label noise draws from its own stream: the audio, truth and split stay those of the noise-free dataset.
    _assign_labels(rng, np.random.default_rng([seed, 3]), plans, label_noise)
    _assign_split(rng, plans, patients)
    return patients, plans


# ---------------------------------------------------------------------------------------------- rendering

def _noise_spectrum(rng: np.random.Generator, n: int, gain: np.ndarray) -> np.ndarray:
    """rfft of n samples of Gaussian noise shaped by the magnitude `gain`; its std is the RMS of `gain`."""
    spectrum = rng.standard_normal((2, len(gain)), dtype=np.float32)
    return (spectrum[0] + 1j * spectrum[1]) * (gain * np.sqrt(n / 2.0))


def _unit_rms(gain: np.ndarray) -> np.ndarray:
    return gain / np.sqrt(np.mean(gain ** 2))


def _band(f: np.ndarray, low: float, high: float, order: int) -> np.ndarray:
    """Magnitude of a 2nd-order high-pass at `low` times a Butterworth low-pass of `order` at `high`."""
    with np.errstate(divide="ignore"):
        highpass = 1.0 / np.sqrt(1.0 + (low / f) ** 4)
    return highpass / np.sqrt(1.0 + (f / high) ** (2 * order))


def _phase_courses(n: int, sr: int, b: Breathing, gap: np.ndarray | None = None):
    """At 500 Hz (the courses are smooth): the times, each time's cycle, whether it is in inspiration, and the
    inspiratory and expiratory loudness there. Expiration starts right after inspiration, or `gap` (a share of
    each cycle) later."""
    t = np.arange(int(n / sr * 500) + 2) / 500
    k = np.clip(np.searchsorted(b.edges, t, side="right") - 1, 0, len(b.insp) - 1)
    u = (t - b.edges[k]) / (b.edges[k + 1] - b.edges[k])
    insp, exp = b.insp[k], b.exp[k]
    expiring = u - insp if gap is None else u - insp - gap[k]
    inhale = np.sin(np.pi * np.clip(u / insp, 0.0, 1.0)) ** 0.8
    exhale = np.sin(np.pi * np.clip(expiring / exp, 0.0, 1.0) ** 0.6) * b.exp_gain[k]
    return t, k, u < insp, inhale, exhale


def _breath_envelope(n: int, sr: int, b: Breathing) -> np.ndarray:
    """Inspiration then a softer expiration in every cycle; computed at 500 Hz, interpolated (it is smooth)."""
    t, k, inspiring, inhale, exhale = _phase_courses(n, sr, b)
    envelope = b.gain[k] * np.where(inspiring, inhale, exhale) + 0.03
    return np.interp(np.arange(n) / sr, t, envelope)


def _distinct_phases(rng: np.random.Generator, breath_noise: np.ndarray, f: np.ndarray, corner: float,
                     b: Breathing, sr: int, tracheal: bool) -> np.ndarray:
    """Breath sound whose phases differ as textbooks describe them. At the chest wall expiration is softer and
    lower-pitched than inspiration (the lung filters it more). At the trachea a silent gap follows
    inspiration, and expiration is louder, higher-pitched and lasts until the next breath; the pitch difference
    is about the real tracheal recording 105_1b1_Tc's (expiration 5 dB brighter in 150-1000 Hz)."""
    n, cycles = len(breath_noise), len(b.insp)

    def noise(corner_hz: float) -> np.ndarray:
        return np.fft.irfft(_noise_spectrum(rng, n, _unit_rms(_band(f, 80.0, corner_hz, 2))), n)

    if tracheal:
        gap = rng.uniform(0.06, 0.12, cycles)
        b = replace(b, exp=(1.0 - b.insp - gap) * rng.uniform(0.95, 1.0, cycles),
                    exp_gain=rng.uniform(1.0, 1.3, cycles))
        inspiratory_noise = noise(corner * rng.uniform(0.6, 0.8))
        expiratory_noise = noise(corner * rng.uniform(1.2, 1.8))
    else:
        gap = None
        inspiratory_noise, expiratory_noise = breath_noise, noise(corner * rng.uniform(0.5, 0.75))
    t, k, inspiring, inhale, exhale = _phase_courses(n, sr, b, gap)
    at = np.arange(n) / sr
    inspiration = np.interp(at, t, b.gain[k] * np.where(inspiring, inhale, 0.0) + 0.03)
    expiration = np.interp(at, t, b.gain[k] * np.where(inspiring, 0.0, exhale))
    return inspiratory_noise * inspiration + expiratory_noise * expiration


def _add_events(n: int, starts: np.ndarray, waves: np.ndarray) -> np.ndarray:
    """Sum of waves (rows) placed at sample offsets `starts`, cut at the recording's end."""
    idx = starts[:, None] + np.arange(waves.shape[1])[None, :]
    keep = (idx >= 0) & (idx < n)
    return np.bincount(idx[keep], weights=waves[keep], minlength=n)


def _background_spectrum(rng: np.random.Generator, n: int, f: np.ndarray, traits: PatientTraits) -> np.ndarray:
    """Ambient pink noise plus white sensor hiss, drawn as one Gaussian noise with their summed power."""
    pink = _unit_rms(1.0 / np.sqrt(np.maximum(f, 20.0))) * 10 ** (traits.ambient_db / 20)
    return _noise_spectrum(rng, n, np.sqrt(pink ** 2 + 10 ** (traits.hiss_db / 10)))


def _heart(rng: np.random.Generator, traits: PatientTraits, n: int, sr: int) -> np.ndarray:
    """S1 and S2 as low-frequency damped thumps."""
    beats = np.cumsum(rng.normal(1.0, 0.03, int(n / sr * traits.heart_rate) + 2) / traits.heart_rate)
    beats -= rng.uniform(0.0, 1.0 / traits.heart_rate)
    times = np.concatenate([beats, beats + 0.32 / np.sqrt(traits.heart_rate)])
    freqs = np.concatenate([rng.uniform(35, 60, len(beats)), rng.uniform(50, 90, len(beats))])
    t = np.arange(int(0.15 * sr)) / sr
    env = np.exp(-0.5 * ((t - 0.04) / 0.015) ** 2)
    waves = env[None, :] * np.sin(2 * np.pi * freqs[:, None] * t[None, :]) * traits.heart_level
    return _add_events(n, np.round(times * sr).astype(int), waves)


def crackle_waves(f0: np.ndarray, amp: np.ndarray, sr: int) -> np.ndarray:
    """Explosive transients, one per row: an abrupt onset, a few decaying cycles whose period lengthens."""
    t = np.arange(int(np.ceil(5.0 / f0.min() * sr)) + 1)[None, :] / sr
    f = f0[:, None]
    onset = 1.0 - np.exp(-t / 2e-4)
    decay = np.exp(-t * f / 1.2)
    phase = 2 * np.pi / 0.15 * np.log1p(0.15 * f * t)
    return amp[:, None] * onset * decay * np.sin(phase) * (t * f < 5.0)


def _crackles(rng: np.random.Generator, plan: RecordingPlan) -> tuple[np.ndarray, np.ndarray]:
    """Sample offsets and waveforms of every crackle in the recording's crackle cycles; they scale with the
    breath they ride on."""
    b, traits, sr = plan.breathing, plan.patient.traits, plan.sample_rate
    cycles = np.flatnonzero(plan.labels & 1) + b.first
    counts = np.clip(1 + rng.poisson(traits.crackle_density * rng.lognormal(0, 0.3, len(cycles))), 1, 40)
    k = np.repeat(cycles, counts)
    fine = rng.random(len(k)) < traits.fine_share
    length = b.edges[k + 1] - b.edges[k]
    insp_len, exp_len = b.insp[k] * length, b.exp[k] * length
    expiratory = ~fine & (rng.random(len(k)) < 0.35)
    within_insp = np.where(fine, rng.beta(5.0, 2.0, len(k)), rng.beta(1.5, 4.0, len(k))) * insp_len
    at = b.edges[k] + np.where(expiratory, insp_len + rng.random(len(k)) * exp_len, within_insp)
    f0 = np.where(fine, _log_uniform(rng, *FINE_CRACKLE_HZ, len(k)), _log_uniform(rng, *COARSE_CRACKLE_HZ, len(k)))
    amp = (rng.lognormal(np.log(6.0), 0.5, len(k)) * np.where(rng.random(len(k)) < 0.2, 0.35, 1.0)
           * np.where(fine, 1.0, 1.3) * rng.choice([-1.0, 1.0], len(k)) * b.gain[k])
    return np.round(at * sr).astype(int), crackle_waves(f0, amp, sr)


def _wheeze_wave(rng: np.random.Generator, sr: int, duration: float, f_start: float, f_end: float,
                 harmonics: int, amp: float) -> np.ndarray:
    """A tone gliding from f_start to f_end with slight vibrato and decaying harmonics below Nyquist."""
    t = np.arange(int(duration * sr)) / sr
    vibrato = 1.0 + rng.uniform(0.0, 0.02) * np.sin(2 * np.pi * rng.uniform(3.0, 8.0) * t + rng.uniform(0, 6.3))
    f = np.exp(np.linspace(np.log(f_start), np.log(f_end), len(t))) * vibrato
    phase = 2 * np.pi * np.cumsum(f) / sr + rng.uniform(0, 6.3)
    rolloff = rng.uniform(0.2, 0.6)
    wave = sum(rolloff ** (h - 1) * np.sin(h * phase) for h in range(1, harmonics + 1) if h * f.max() < 0.45 * sr)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / rng.uniform(0.02, 0.04))
    return amp * wave * (0.5 - 0.5 * np.cos(np.pi * fade))


def _wheezes(rng: np.random.Generator, plan: RecordingPlan, n: int) -> np.ndarray:
    """One to three tones in each wheeze cycle, mostly expiratory, each lasting at least 120 ms."""
    b, traits, sr = plan.breathing, plan.patient.traits, plan.sample_rate
    out = np.zeros(n)
    for k in np.flatnonzero(plan.labels & 2) + b.first:
        length = b.edges[k + 1] - b.edges[k]
        expiratory = rng.random() < 0.7
        phase_start = b.edges[k] + (b.insp[k] * length if expiratory else 0.0)
        phase_len = (b.exp[k] if expiratory else b.insp[k]) * length
        duration = max(0.12, phase_len * rng.uniform(0.3, 0.95))
        start = phase_start + rng.uniform(0.0, phase_len - duration)
        voices = 1 + int(rng.random() < traits.polyphony) * int(rng.integers(1, 3))
        ratios = np.concatenate([[1.0], rng.uniform(1.25, 1.8, voices - 1)])  # several, not harmonic
        f0 = np.clip(traits.wheeze_f0 * rng.lognormal(0.0, 0.12) * ratios, 100.0, 1000.0)
        rhonchus = traits.wheeze_f0 < 200
        faint = 0.35 if rng.random() < 0.15 else 1.0
        for f in f0:
            f_end = float(np.clip(f * rng.lognormal(0.0, 0.12), 100.0, 1000.0))
            harmonics = int(rng.integers(3, 7) if rhonchus else rng.integers(1, 4))
            amp = rng.lognormal(np.log(0.8), 0.4) * faint * b.gain[k] / np.sqrt(len(f0))
            wave = _wheeze_wave(rng, sr, duration, float(f), f_end, harmonics, amp)
            i = int(round(start * sr))
            out[i:i + len(wave)] += wave[:max(0, n - i)]
    return out


def _friction(rng: np.random.Generator, traits: PatientTraits, n: int, sr: int) -> np.ndarray:
    """Stethoscope rubbing: short broadband bursts, unrelated to the class."""
    out = np.zeros(n)
    for _ in range(rng.poisson(traits.friction_rate * n / sr)):
        m = int(rng.uniform(0.03, 0.2) * sr)
        i = int(rng.integers(0, max(1, n - m)))
        out[i:i + m] += rng.standard_normal(m) * np.hanning(m) * rng.uniform(0.5, 2.0)
    return out


def _normalise_cycles(x: np.ndarray, plan: RecordingPlan, target_rms: np.ndarray) -> np.ndarray:
    """Scale each annotated cycle to its target RMS, cross-fading the gain over 40 ms at cycle boundaries."""
    sr, edges = plan.sample_rate, plan.breathing.annotated_edges
    idx = np.clip(np.round(edges * sr).astype(int), 0, len(x))
    energy = np.concatenate([[0.0], np.cumsum(x * x)])
    rms = np.sqrt((energy[idx[1:]] - energy[idx[:-1]]) / np.maximum(1, np.diff(idx))) + 1e-12
    gains = target_rms / rms
    inner = np.stack([edges[1:-1] - 0.02, edges[1:-1] + 0.02], axis=1).ravel()
    knots = np.concatenate([[edges[0]], inner, [edges[-1]]])
    values = np.concatenate([[gains[0]], np.stack([gains[:-1], gains[1:]], axis=1).ravel(), [gains[-1]]])
    return x * np.interp(np.arange(len(x)) / sr, knots, values)


def _soft_clip(x: np.ndarray, knee: float = 0.7) -> np.ndarray:
    """Round off peaks above `knee` towards 1, as loud real recordings clip. Only the rare peaks change, so
    the cycle loudness (and with it the class) stays unrelated, which scaling a whole recording down would break."""
    over = np.abs(x) > knee
    x[over] = np.sign(x[over]) * (knee + (1 - knee) * np.tanh((np.abs(x[over]) - knee) / (1 - knee)))
    return x


def _fft_length(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n: pocketfft is many times slower on lengths with large prime factors."""
    best = 1 << int(np.ceil(np.log2(n)))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            p235 = p35 << max(0, int(np.ceil(np.log2(n / p35))))
            best = min(best, p235)
            p35 *= 3
        p5 *= 5
    return best


def render_recording(plan: RecordingPlan, seed: int, index: int, *, distinct_phases: bool = False) -> np.ndarray:
    """The recording's samples in [-1, 1] at its own sample rate. With `distinct_phases` inspiration and
    expiration differ as at the chest wall or the trachea (`_distinct_phases`), all else the same; without it
    (the datasets' setting) they differ in loudness only."""
    rng = np.random.default_rng([seed, 1, index])
    b, traits, device = plan.breathing, plan.patient.traits, plan.patient.device
    sr, n = plan.sample_rate, _fft_length(plan.n_samples)  # rendered a little longer, then cut
    f = np.fft.rfftfreq(n, 1.0 / sr)
    tracheal = plan.location == "Tc"  # louder, broader and with a stronger expiration than chest sounds
    corner = traits.breath_corner_hz * (2.5 if tracheal else 1.0) * rng.uniform(0.85, 1.15)
    breath_noise = np.fft.irfft(_noise_spectrum(rng, n, _unit_rms(_band(f, 80.0, corner, 2))), n)
    if tracheal:
        b = replace(b, exp_gain=np.clip(b.exp_gain * 1.6, 0.0, 1.0))
    breath = (_distinct_phases(np.random.default_rng([seed, 4, index]), breath_noise, f, corner, b, sr, tracheal)
              if distinct_phases else breath_noise * _breath_envelope(n, sr, b))
    mix = breath + _heart(rng, traits, n, sr) + _friction(rng, traits, n, sr)
    if (plan.labels & 1).any():
        mix += _add_events(n, *_crackles(rng, plan))
    mix += _wheezes(rng, plan, n)
    spectrum = np.fft.rfft(mix)
    spectrum += _background_spectrum(rng, n, f, traits)
    x = np.fft.irfft(spectrum * _band(f, device.low_hz, device.high_hz, device.order), n)
    if traits.hum_hz:
        t = np.arange(n) / sr
        x += 10 ** (rng.uniform(-32, -22) / 20) * (np.sin(2 * np.pi * traits.hum_hz * t)
                                                  + 0.25 * np.sin(4 * np.pi * traits.hum_hz * t))
    loudness = traits.loudness_db + (2.0 if tracheal else 0.0) + rng.normal(0.0, 2.0)
    target = 10 ** ((loudness + rng.normal(0.0, 1.5, b.last - b.first)) / 20)
    return _soft_clip(_normalise_cycles(x[:plan.n_samples], plan, target))


# --------------------------------------------------------- for tests and benchmarks: defects at known places

def first_of_each_device(plans: list[RecordingPlan], per_device: int) -> list[tuple[int, RecordingPlan]]:
    """(index, plan) of the first `per_device` recordings of each device, in plan order."""
    taken: Counter = Counter()
    chosen = []
    for index, plan in enumerate(plans):
        device = plan.patient.device.name
        if taken[device] < per_device:
            taken[device] += 1
            chosen.append((index, plan))
    return chosen


# Each `with_*` adds one defect to a rendered recording (float samples at its rate `sr`) where the caller says
# and leaves the rest as it was: what the quality check (core/analysis/quality.py) is tested and measured on.

def breath_band_rms(samples: np.ndarray, sr: int) -> float:
    """The RMS of the breath band (150-1200 Hz), from the recording's spectrum."""
    from scipy import signal

    freqs, power = signal.welch(samples, sr, nperseg=sr)
    return float(np.sqrt(power[(freqs >= 150) & (freqs < 1200)].sum() * freqs[1]))


def band_noise(n: int, sr: int, rng: np.random.Generator, low: float = 100.0, high: float = 4000.0) -> np.ndarray:
    """n samples of unit-RMS noise between low and high Hz: what rubbing, or a noisy room, puts into a
    stethoscope."""
    from scipy import signal

    sos = signal.butter(4, [low, min(high, 0.45 * sr)], "bandpass", fs=sr, output="sos")
    noise = signal.sosfilt(sos, rng.standard_normal(n + 2000))[2000:]
    return noise / np.sqrt(np.mean(noise ** 2))


def with_clipping(samples: np.ndarray, sr: int, start: float, end: float, overdrive: float = 4.0) -> np.ndarray:
    """The recording at half of full scale, [start, end) s driven to `overdrive` times full scale at its peak,
    all of it cut at full scale."""
    out = samples / np.abs(samples).max() * 0.5
    a, b = int(start * sr), int(end * sr)
    out[a:b] *= overdrive / np.abs(out[a:b]).max()
    return np.clip(out, -1.0, 1.0)


def with_friction(samples: np.ndarray, sr: int, bursts: list[tuple[float, float]], rng: np.random.Generator,
                  strength: float = 10.0) -> np.ndarray:
    """Broadband bursts (start, length in s) of noise, `strength` times the breath band's RMS at their peak."""
    out, level = samples.copy(), strength * breath_band_rms(samples, sr)
    for start, length in bursts:
        a, m = int(start * sr), int(length * sr)
        out[a:a + m] += (level * band_noise(m, sr, rng) * np.hanning(m))[:len(out) - a]
    return out


def with_noise(samples: np.ndarray, sr: int, rng: np.random.Generator, noise_over_breath: float) -> np.ndarray:
    """Steady noise in the breath band, `noise_over_breath` times the breath band's RMS."""
    return samples + noise_over_breath * breath_band_rms(samples, sr) * band_noise(len(samples), sr, rng, 150, 1200)


def with_heart_sounds(samples: np.ndarray, sr: int, rng: np.random.Generator, level_over_rms: float,
                      rate_hz: float = 1.2) -> np.ndarray:
    """S1 and S2 at `rate_hz` beats with a real heart's variability: 0.1 s thumps of 30-250 Hz (real heart
    sounds reach into the breath band), `level_over_rms` times the recording's RMS at their peak."""
    t = np.arange(int(0.1 * sr)) / sr
    thump = sum(np.sin(2 * np.pi * f * t + f) / (1 + f / 60) for f in (33, 47, 77, 113, 167, 233)) * np.hanning(len(t))
    thump *= level_over_rms * np.sqrt(np.mean(samples ** 2)) / np.abs(thump).max()
    out, beat = samples.copy(), 0.2
    while beat < len(samples) / sr - 0.6:
        for offset in (0.0, rng.normal(0.3, 0.01)):
            i = int((beat + offset) * sr)
            out[i:i + len(thump)] += thump[:len(out) - i]
        beat += rng.normal(1 / rate_hz, 0.03)
    return out


def with_hum(samples: np.ndarray, sr: int, mains: float, hum_over_breath_db: float) -> np.ndarray:
    """Mains hum at `mains` Hz and its third harmonic, `hum_over_breath_db` relative to the breath band's power."""
    t = np.arange(len(samples)) / sr
    hum = np.sin(2 * np.pi * mains * t) + 0.5 * np.sin(2 * np.pi * 3 * mains * t + 1.0)
    return samples + hum * breath_band_rms(samples, sr) / np.sqrt(np.mean(hum ** 2)) * 10 ** (hum_over_breath_db / 20)


def at_loud_level(samples: np.ndarray, sr: int, level_dbfs: float) -> np.ndarray:
    """The recording scaled so that its loud parts (the 90th percentile of 20 ms power) reach `level_dbfs`."""
    cell = int(0.02 * sr)
    power = np.mean(samples[:len(samples) // cell * cell].reshape(-1, cell) ** 2, axis=1)
    return samples * 10 ** (level_dbfs / 20) / np.sqrt(np.percentile(power, 90))


# ------------------------------------------------------------------------------------------------ writing

def _na(value: float | str | None, as_float: bool) -> str:
    """ICBHI's number styles: demographics `70`, `0.75`; metadata (pandas) `70.0`, `0.75`; missing `NA`."""
    if value is None:
        return "NA"
    if isinstance(value, str):
        return value
    return repr(round(float(value), 2)) if as_float else f"{value:.2f}".rstrip("0").rstrip(".")


def _write_lines(path: Path, lines: list[str], newline: str) -> None:
    path.write_bytes("".join(line + newline for line in lines).encode("ascii"))


def _write_annotation(path: Path, plan: RecordingPlan) -> None:
    device, edges = plan.patient.device, plan.breathing.annotated_edges
    lines = [f"{_format_time(s, device)}\t{_format_time(e, device)}\t{label & 1}\t{label >> 1}"
             for s, e, label in zip(edges[:-1], edges[1:], plan.written)]
    _write_lines(path, lines, "\n")


def _patient_location(rng: np.random.Generator, patient: Patient, plans: list[RecordingPlan]) -> str:
    """The 7th column of metadata_with_location.txt: one of the patient's chest locations."""
    return str(rng.choice(sorted({p.location for p in plans if p.patient is patient})))


def _write_side_files(out: Path, patients: list[Patient], plans: list[RecordingPlan], seed: int) -> None:
    rng = np.random.default_rng([seed, 2])
    # Line endings as in the real files: CRLF for the split and demographics, LF for the others.
    _write_lines(out / SPLIT_FILE, [f"{p.name}\t{p.split}" for p in plans], "\r\n")
    demo = [(p.age, p.sex, p.bmi, p.weight, p.height) for p in patients]
    _write_lines(out / DEMOGRAPHICS_FILE,
                 [f"{p.pid}\t" + "\t".join(_na(v, False) for v in d) for p, d in zip(patients, demo)], "\r\n")
    _write_lines(out / DIAGNOSIS_FILE, [f"{p.pid}\t{p.diagnosis.name}" for p in patients], "\n")
    _write_lines(out / METADATA_FILE, [f"{p.pid}\t" + "\t".join(_na(v, True) for v in d) + "\t"
                                       + _patient_location(rng, p, plans) for p, d in zip(patients, demo)], "\n")


def _summary(out: Path, patients: list[Patient], plans: list[RecordingPlan], label_noise: float) -> SynthSummary:
    def per_class(labels) -> dict[str, int]:
        counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(CLASS_NAMES))
        return {name: int(c) for name, c in zip(CLASS_NAMES, counts)}

    written = np.concatenate([p.written for p in plans])
    return SynthSummary(
        out_dir=out, recordings=len(plans), patients=len(patients), cycles=per_class(written),
        cycles_by_split={s: per_class(np.concatenate([[]] + [p.written for p in plans if p.split == s]))
                         for s in ("train", "test")},
        recordings_by_split=dict(Counter(p.split for p in plans)),
        label_noise=label_noise, relabelled=int(np.sum(written != np.concatenate([p.labels for p in plans]))),
        devices=dict(Counter(p.patient.device.name for p in plans)),
        sample_rates=dict(Counter(p.sample_rate for p in plans)), subtypes=dict(Counter(p.subtype for p in plans)),
        audio_seconds=float(sum(p.n_samples / p.sample_rate for p in plans)),
        true_labels={p.name: tuple(int(x) for x in p.labels) for p in plans},
    )


def _write_audio(seed: int, job: tuple[Path, RecordingPlan, int]) -> None:
    path, plan, index = job
    encoded = io.BytesIO()  # written by Python, not libsndfile: a full disk is an OSError saying so, not "System error"
    samples = render_recording(plan, seed, index)
    with interrupts_held():  # libsndfile writes through Python callbacks, which would swallow a KeyboardInterrupt
        sf.write(encoded, samples, plan.sample_rate, subtype=plan.subtype, format="WAV")
    path.write_bytes(encoded.getvalue())


def write_audio_files(paths: list[Path], plans: list[RecordingPlan], seed: int, *,
                      progress: Callable[[int, int], None] | None = None, workers: int | None = None) -> None:
    """Render plan i (the i-th of the dataset's plans, whose index seeds its sounds) into paths[i]: here, with up
    to `workers - 1` helper processes (default core.pool's) once the rendering left pays for starting them."""
    jobs = list(zip(paths, plans, range(len(plans))))
    for done, _ in enumerate(run_jobs(partial(_write_audio, seed), jobs, workers=workers), start=1):
        if progress:
            progress(done, len(plans))


def empty_output_folder(out_dir: str | Path) -> Path:
    """The folder a synthetic dataset is written into, created; refused when files are already in it."""
    out = Path(out_dir)
    if out.exists() and any(out.iterdir()):  # files left from another dataset would join this one
        raise DataError("the folder is not empty; files left from another dataset would join this one.",
                        path=out, fix="give the synthetic dataset a new or empty folder.")
    out.mkdir(parents=True, exist_ok=True)
    mark_generated(out)  # a window says these recordings are generated, whatever their names say
    return out


def write_synthetic_dataset(out_dir: str | Path, recordings: int, seed: int, label_noise: float = 0.0, *,
                            progress: Callable[[int, int], None] | None = None,
                            workers: int | None = None) -> SynthSummary:
    """Write `recordings` synthetic recordings in the ICBHI layout into `out_dir`; the same seed gives
    byte-identical files, however many `workers` render them (`write_audio_files`). `label_noise` is the
    fraction of cycles written with a wrong class. core.data.synth_layouts writes the same recordings in the
    other dataset formats."""
    patients, plans = plan_dataset(recordings, seed, label_noise)
    out = empty_output_folder(out_dir)
    write_audio_files([out / f"{plan.name}.wav" for plan in plans], plans, seed, progress=progress, workers=workers)
    for plan in plans:
        _write_annotation(out / f"{plan.name}.txt", plan)
    _write_side_files(out, patients, plans, seed)
    return _summary(out, patients, plans, label_noise)
