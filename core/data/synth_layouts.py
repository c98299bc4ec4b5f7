"""The synthetic recordings of core.data.synth written in the layouts of the other datasets LungKD reads, so every
reader (core.data.labelled_folders) is tested end to end without the real databases:

- `sprsound`: 8 kHz WAVs in train2022_wav/ and test2022_wav/, a JSON per recording in train2022_json/ and
  test2022_json/{inter,intra}_test_json/ (the patients of the test split, and one recording of some training
  patients), events in milliseconds typed as SPRSound types them, a few recordings annotated Poor Quality;
- `hf_lung`: 4 kHz WAVs named as HF_Lung names them, in train/ and test/, each with NAME_label.txt of
  inspiration, expiration and adventitious intervals; some cycles are left unlabelled and some inspirations
  lack their expiration, as in the real files;
- `table`: the recordings in recordings/ and one labels.csv (file, start, end, label), with no split;
- `audacity`: the recordings in train/ and test/, an Audacity label track beside each.

The plans (patients, cycles, classes, split) are those of `plan_dataset` with the same seed; the summary says
what a reader should find, class by class, and what the layout leaves out on purpose.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import numpy as np

from lungkd.core.data.hf_lung import LABEL_SUFFIX
from lungkd.core.data.sprsound import POOR_QUALITY
from lungkd.core.data.synth import (RecordingPlan, SynthSummary, empty_output_folder, plan_dataset, write_audio_files,
                                    write_synthetic_dataset)
from lungkd.core.errors import DataError
from lungkd.core.labels import CLASS_NAMES

LAYOUTS = ("icbhi", "sprsound", "hf_lung", "table", "audacity")
POOR_QUALITY_SHARE = 0.06  # of SPRSound recordings
INTRA_SUBJECT_SHARE = 0.3  # of SPRSound training patients with several recordings, who give one to the test
UNLABELLED_SHARE, LONE_INSPIRATION_SHARE = 0.08, 0.04  # of HF_Lung cycles
TABLE_FILE = "labels.csv"
# SPRSound's p1-p4 (left posterior, left lateral, right posterior, right lateral) for the plan's location
SPR_LOCATIONS = {"Pl": "p1", "Ll": "p2", "Pr": "p3", "Lr": "p4"}
HF_CHANNELS = {"Ar": "L1", "Lr": "L3", "Al": "L5", "Ll": "L7"}  # the HF-Type-1 channel at that place


@dataclass(frozen=True)
class LayoutSummary:
    out_dir: Path
    layout: str
    recordings: int
    patients: int
    cycles: dict[str, int]  # what a reader finds, per class
    cycles_by_split: dict[str, dict[str, int]]  # the same per official split (empty: the layout has none)
    source_labels: dict[str, int]  # the labels written, as the format spells them
    left_out: dict[str, int] = field(default_factory=dict)  # what the layout leaves out on purpose


@dataclass
class _Written:
    """One recording as a layout writes it: where its audio goes, at what rate, and the cycles a reader finds."""

    plan: RecordingPlan
    audio: Path
    split: str | None
    classes: list[int] = field(default_factory=list)


def _at_rate(plan: RecordingPlan, rate: int) -> RecordingPlan:
    return replace(plan, sample_rate=rate, subtype="PCM_16", n_samples=int(np.ceil(plan.n_samples / plan.sample_rate
                                                                                  * rate)))


def _cycles(plan: RecordingPlan):
    """(edge index, start, end, written class) of each annotated cycle."""
    edges, b = plan.breathing.annotated_edges, plan.breathing
    return [(b.first + k, float(s), float(e), int(label))
            for k, (s, e, label) in enumerate(zip(edges[:-1], edges[1:], plan.written))]


# ---------------------------------------------------------------- SPRSound


def _spr_type(rng: np.random.Generator, plan: RecordingPlan, label: int) -> str:
    traits = plan.patient.traits
    if label == 1:
        return "Fine Crackle" if rng.random() < traits.fine_share else "Coarse Crackle"
    if label == 2:
        return "Rhonchi" if traits.wheeze_f0 < 200 else ("Stridor" if rng.random() < 0.05 else "Wheeze")
    return ("Normal", "", "", "Wheeze+Crackle")[label]


def _spr_record_label(labels: list[int]) -> str:
    crackle, wheeze = any(x & 1 for x in labels), any(x & 2 for x in labels)
    return "CAS & DAS" if crackle and wheeze else "CAS" if wheeze else "DAS" if crackle else "Normal"


def _spr_subsets(rng: np.random.Generator, plans: list[RecordingPlan]) -> list[str]:
    """train, inter (a test patient) or intra (a training patient's recording held out) for each plan."""
    subsets = ["train" if p.split == "train" else "inter" for p in plans]
    by_patient: dict[int, list[int]] = {}
    for i, plan in enumerate(plans):
        if plan.split == "train":
            by_patient.setdefault(plan.patient.pid, []).append(i)
    for indices in by_patient.values():
        if len(indices) >= 2 and rng.random() < INTRA_SUBJECT_SHARE:
            subsets[indices[-1]] = "intra"
    return subsets


def _sprsound(out: Path, plans: list[RecordingPlan], rng: np.random.Generator) -> tuple[list[_Written], Counter, dict]:
    subsets = _spr_subsets(rng, plans)
    poor = set(rng.choice(len(plans), size=round(POOR_QUALITY_SHARE * len(plans)), replace=False).tolist())
    written, labels = [], Counter()
    for i, (plan, subset) in enumerate(zip(plans, subsets)):
        patient = plan.patient
        age = patient.age if patient.age is not None else 5.0
        where = SPR_LOCATIONS.get(plan.location) or f"p{rng.integers(1, 5)}"
        name = f"{40000000 + patient.pid}_{age:.1f}_{int(patient.sex == 'F')}_{where}_{1000 + i}"
        side = "train" if subset == "train" else "test"
        json_folder = out / "train2022_json" if side == "train" else out / "test2022_json" / f"{subset}_test_json"
        record = _Written(_at_rate(plan, 8000), out / f"{side}2022_wav" / f"{name}.wav", side)
        events = []
        if i not in poor:
            for _, start, end, label in _cycles(plan):
                kind = _spr_type(rng, plan, label)
                events.append({"start": str(round(start * 1000)), "end": str(round(end * 1000)), "type": kind})
                labels[kind] += 1
                record.classes.append(label)
        document = {"record_annotation": POOR_QUALITY if i in poor else _spr_record_label(record.classes),
                    "event_annotation": events}
        json_folder.mkdir(parents=True, exist_ok=True)
        (json_folder / f"{name}.json").write_text(json.dumps(document), encoding="utf-8")
        written.append(record)
    return written, labels, {f"recordings annotated {POOR_QUALITY}": len(poor)}


# ---------------------------------------------------------------- HF_Lung


def _clock(seconds: float) -> str:
    ms = round(seconds * 1000)
    return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d}.{ms % 1000:03d}"


def _hf_name(plan: RecordingPlan, i: int) -> str:
    day = date(2019, 1, 1) + timedelta(days=plan.patient.pid)  # one day per patient: the day stands for the patient
    seconds = 8 * 3600 + 61 * i
    hh, mm, ss = seconds // 3600, seconds // 60 % 60, seconds % 60
    if plan.location in HF_CHANNELS:
        return f"trunc_{day:%Y-%m-%d}-{hh:02d}-{mm:02d}-{ss:02d}-{HF_CHANNELS[plan.location]}_1"
    return f"steth_{day:%Y%m%d}_{hh:02d}_{mm:02d}_{ss:02d}"


def _hf_sound(rng: np.random.Generator, plan: RecordingPlan) -> str:
    return "Rhonchi" if plan.patient.traits.wheeze_f0 < 200 else ("Stridor" if rng.random() < 0.05 else "Wheeze")


def _hf_lines(rng: np.random.Generator, plan: RecordingPlan, record: _Written, labels: Counter,
              left: Counter) -> list[tuple[float, str]]:
    """(start, line) of the label file: each cycle's inspiration and expiration, a D interval in the inspiration
    of a crackle cycle and a wheeze, rhonchus or stridor in the expiration of a wheeze cycle."""
    lines, b = [], plan.breathing
    for k, start, end, label in _cycles(plan):
        draw = rng.random()
        if draw < UNLABELLED_SHARE:
            left["cycles left unlabelled"] += 1
            continue
        length = end - start
        breath_in = start + b.insp[k] * length
        breath_out = breath_in + b.exp[k] * length
        lines.append((start, f"I {_clock(start)} {_clock(breath_in)}"))
        if draw < UNLABELLED_SHARE + LONE_INSPIRATION_SHARE:
            left["inspirations without their expiration"] += 1
            continue
        lines.append((breath_in, f"E {_clock(breath_in)} {_clock(breath_out)}"))
        if label & 1:
            lines.append((start + 0.15 * length, f"D {_clock(start + 0.15 * length)} {_clock(start + 0.28 * length)}"))
            labels["D"] += 1
        if label & 2:
            sound, at = _hf_sound(rng, plan), breath_in + 0.1 * length
            lines.append((at, f"{sound} {_clock(at)} {_clock(at + 0.25 * length)}"))
            labels[sound] += 1
        record.classes.append(label)
    return sorted(lines, key=lambda line: line[0])


def _hf_lung(out: Path, plans: list[RecordingPlan], rng: np.random.Generator) -> tuple[list[_Written], Counter, dict]:
    written, labels, left = [], Counter(), Counter()
    for i, plan in enumerate(plans):
        name, folder = _hf_name(plan, i), out / plan.split
        folder.mkdir(exist_ok=True)
        record = _Written(_at_rate(plan, 4000), folder / f"{name}.wav", plan.split)
        lines = _hf_lines(rng, plan, record, labels, left)
        (folder / f"{name}{LABEL_SUFFIX}.txt").write_text("".join(text + "\n" for _, text in lines), encoding="ascii")
        written.append(record)
    return written, labels, dict(left)


# ---------------------------------------------------------------- a label table and Audacity tracks


def _table(out: Path, plans: list[RecordingPlan], rng: np.random.Generator) -> tuple[list[_Written], Counter, dict]:
    (out / "recordings").mkdir()
    written, labels, rows = [], Counter(), ["file,start,end,label"]
    for plan in plans:
        record = _Written(plan, out / "recordings" / f"{plan.name}.wav", None)
        for _, start, end, label in _cycles(plan):
            rows.append(f"{plan.name}.wav,{start:.3f},{end:.3f},{CLASS_NAMES[label]}")
            labels[CLASS_NAMES[label]] += 1
            record.classes.append(label)
        written.append(record)
    (out / TABLE_FILE).write_text("\n".join(rows) + "\n", encoding="utf-8")
    return written, labels, {}


def _audacity(out: Path, plans: list[RecordingPlan], rng: np.random.Generator) -> tuple[list[_Written], Counter, dict]:
    written, labels = [], Counter()
    for plan in plans:
        folder = out / plan.split
        folder.mkdir(exist_ok=True)
        record = _Written(plan, folder / f"{plan.name}.wav", plan.split)
        lines = []
        for _, start, end, label in _cycles(plan):
            lines.append(f"{start:.6f}\t{end:.6f}\t{CLASS_NAMES[label]}\n")
            labels[CLASS_NAMES[label]] += 1
            record.classes.append(label)
        (folder / f"{plan.name}.txt").write_text("".join(lines), encoding="utf-8")
        written.append(record)
    return written, labels, {}


WRITERS: dict[str, Callable] = {"sprsound": _sprsound, "hf_lung": _hf_lung, "table": _table, "audacity": _audacity}


def _per_class(labels) -> dict[str, int]:
    counts = np.bincount(np.asarray(labels, dtype=int), minlength=len(CLASS_NAMES))
    return {name: int(c) for name, c in zip(CLASS_NAMES, counts)}


def write_synthetic_layout(out_dir: str | Path, layout: str, recordings: int, seed: int, label_noise: float = 0.0, *,
                           progress: Callable[[int, int], None] | None = None,
                           workers: int | None = None) -> SynthSummary | LayoutSummary:
    """Write `recordings` synthetic recordings in `layout` (one of LAYOUTS) into `out_dir`; the same seed gives
    the same files. "icbhi" is core.data.synth's own layout."""
    if layout == "icbhi":
        return write_synthetic_dataset(out_dir, recordings, seed, label_noise, progress=progress, workers=workers)
    if layout not in WRITERS:
        raise DataError(f"unknown synthetic layout '{layout}'.", fix=f"use one of {', '.join(LAYOUTS)}.")
    patients, plans = plan_dataset(recordings, seed, label_noise)
    out = empty_output_folder(out_dir)
    written, labels, left_out = WRITERS[layout](out, plans, np.random.default_rng([seed, 6]))
    for record in written:
        record.audio.parent.mkdir(parents=True, exist_ok=True)
    write_audio_files([w.audio for w in written], [w.plan for w in written], seed, progress=progress, workers=workers)
    splits = sorted({w.split for w in written if w.split})
    return LayoutSummary(
        out_dir=out, layout=layout, recordings=len(written), patients=len({p.patient.pid for p in plans}),
        cycles=_per_class([c for w in written for c in w.classes]),
        cycles_by_split={s: _per_class([c for w in written if w.split == s for c in w.classes]) for s in splits},
        source_labels=dict(sorted(labels.items())), left_out=left_out)
