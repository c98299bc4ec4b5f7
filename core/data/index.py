"""The dataset index: recordings, cycles, split and patients of a dataset folder, whatever its format (the ICBHI
layout in core.data.dataset, the others in core.data.labelled_folders), or of several datasets pooled
(core.data.pooled).

Works from annotations alone (statistics) and with audio (training). Nothing is dropped silently:
every skipped line, unmatched name and unreadable file becomes a Problem in `warnings`, and what a format's
reader leaves out on purpose (a Poor Quality recording, unlabelled time) is counted in `tally`.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from lungkd.core.data.label_maps import Tally
from lungkd.core.data.metadata import NameMatch
from lungkd.core.data.records import Cycle, Patient, Recording
from lungkd.core.errors import Problem
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.storage import json_sha256

SPLITS = ("train", "test")
ICBHI_FORMAT = "icbhi"


def class_counts(cycles: list[Cycle]) -> dict[str, int]:
    counts = Counter(c.label for c in cycles)
    return {name: counts[i] for i, name in enumerate(CLASS_NAMES)}


@dataclass
class DatasetIndex:
    root: Path
    recordings: list[Recording]  # sorted by name: the dataset order every architecture shares
    patients: dict[str, Patient] = field(default_factory=dict)
    name_matches: list[NameMatch] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)
    has_split_file: bool = False
    format: str = ICBHI_FORMAT  # core.data.labelled_folders.FORMATS
    split_from_folders: bool = False  # the official split is the train/test folders the files lie in
    label_map: dict[str, str] = field(default_factory=dict)  # the map the labels went through (none for ICBHI)
    tally: Tally = field(default_factory=Tally)  # the source labels found and what was left out, by reason
    datasets: dict[str, Path] = field(default_factory=dict)  # name -> folder, when several datasets are pooled

    @property
    def has_official_split(self) -> bool:
        return self.has_split_file or self.split_from_folders

    def recording(self, name: str) -> Recording:
        for rec in self.recordings:
            if rec.name == name:
                return rec
        raise KeyError(name)

    def cycles(self, split: str | None = None, *, need_audio: bool = False) -> list[Cycle]:
        """Cycles in dataset order: recordings by name, cycles in annotation order."""
        return [c for rec in self.recordings
                if (split is None or rec.split == split) and (rec.usable_audio or not need_audio)
                for c in rec.cycles]

    def apply_split(self, assignment: dict[str, str]) -> None:
        """Set every recording's split from `name -> train|test|val`; recordings not named get None."""
        for rec in self.recordings:
            rec.split = assignment.get(rec.name)

    def fingerprint(self) -> str:
        """Hash of names, cycles and split: what teacher logits and cached results are tied to."""
        return json_sha256([[rec.name, rec.split, [(c.start, c.end, c.label) for c in rec.cycles]]
                            for rec in self.recordings], 16)

    def _cycles_per_split(self, recordings: list[Recording]) -> dict[str, dict[str, int]]:
        def of(split: str | None) -> list[Cycle]:
            return [c for r in recordings if split is None or r.split == split for c in r.cycles]

        extra = sorted({r.split for r in recordings if r.split not in (*SPLITS, None)})
        return {("all" if split is None else split): class_counts(of(split)) for split in (*SPLITS, None, *extra)}

    def stats(self) -> dict:
        cycles = self._cycles_per_split(self.recordings)
        stats = {
            "root": str(self.root),
            "recordings": len(self.recordings),
            "recordings_with_audio": sum(r.usable_audio for r in self.recordings),
            "unannotated": [r.name for r in self.recordings if not r.annotated],
            "patients": len({r.patient for r in self.recordings}),
            "recordings_per_split": dict(Counter(r.split or "none" for r in self.recordings)),
            "cycles": cycles,
            # what training can use: cycles whose recording has readable audio, per split
            "cycles_with_audio": {split: len(self.cycles(None if split == "all" else split, need_audio=True))
                                  for split in cycles},
            "devices": dict(sorted(Counter(r.device or "unknown" for r in self.recordings).items())),
            "sample_rates": {str(k): v for k, v in sorted(Counter(r.sample_rate for r in self.recordings
                                                                   if r.sample_rate).items())},
            "split_file": self.has_split_file,
            "name_matches": [m.to_dict() for m in self.name_matches],
            "warnings": [str(w) for w in self.warnings],
            # how the labels became the four classes, and what was left out and why (core.data.label_maps)
            "format": self.format,
            "official_split": self.has_official_split,
            "labels": [{"label": label, "class": self.label_map.get(label, "unknown"), "count": count}
                       for label, count in sorted(self.tally.labels.items())],
            "left_out": [{"what": what, "why": why, "amount": round(amount, 1)}
                         for (what, why), amount in sorted(self.tally.left_out.items())],
        }
        if self.datasets:
            stats["datasets"] = {name: self._cycles_per_split([r for r in self.recordings if r.dataset == name])
                                 for name in self.datasets}
        return stats


def walk_files(root: Path, problems: list[Problem]) -> list[Path]:
    """Every file under root; a folder that cannot be listed is a warning, not a silent gap."""
    def unreadable(exc: OSError) -> None:
        problems.append(Problem(exc.filename, f"this folder cannot be read ({exc.strerror or exc}); the recordings "
                                "in it are left out.", "give your user read permission (e.g. `chmod u+rx FOLDER`)."))

    return [Path(folder) / name for folder, _, names in os.walk(root, onerror=unreadable) for name in names]


def shown(names: list[str], limit: int = 5) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def missing_audio_problems(recordings: list[Recording],
                           fix: str = "put the .wav next to its .txt, or remove the annotation.") -> list[Problem]:
    """In a folder with audio, an annotation without its recording is worth a word (one, not hundreds)."""
    if not any(r.audio_path for r in recordings):
        return []  # annotations alone: statistics mode
    missing = [r for r in recordings if r.audio_path is None]
    if not missing:
        return []
    where = str(missing[0].annotation_path) if len(missing) == 1 else None
    return [Problem(where, f"{len(missing)} annotated recording(s) have no audio file "
                    f"({shown([r.name for r in missing])}); they count in statistics but cannot be trained on.", fix)]
