"""Plain records of a dataset: patients, recordings and their breathing cycles."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from lungkd.core.labels import label_from_flags


@dataclass(frozen=True)
class Cycle:
    """One annotated breathing cycle, in seconds from the start of its recording."""

    recording: str
    index: int  # position within its recording, in annotation order
    start: float
    end: float
    crackle: int
    wheeze: int
    line: int = 0  # line in the annotation file, for messages

    @property
    def label(self) -> int:
        return label_from_flags(self.crackle, self.wheeze)

    @property
    def duration(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class Patient:
    pid: str
    age: float | None = None
    sex: str | None = None  # "M" / "F"
    adult_bmi: float | None = None
    child_weight_kg: float | None = None
    child_height_cm: float | None = None
    diagnosis: str | None = None
    chest_location: str | None = None  # the per-patient 7th column of metadata_with_location.txt


@dataclass
class Recording:
    """A recording and what is known about it. `audio_path` is None when only the annotation exists."""

    name: str  # file stem, e.g. 101_1b1_Al_sc_Meditron
    patient: str
    audio_path: Path | None = None
    annotation_path: Path | None = None
    recording_index: str | None = None
    location: str | None = None
    mode: str | None = None
    device: str | None = None
    split: str | None = None  # "train" / "test" / None when not in any split
    split_name: str | None = None  # the name the split file uses, when it differs (old ICBHI names)
    cycles: tuple[Cycle, ...] = field(default_factory=tuple)
    sample_rate: int | None = None  # from the audio header, when the audio was probed
    duration: float | None = None
    audio_problem: str | None = None  # why the audio cannot be used; its cycles still count in statistics
    dataset: str | None = None  # the dataset's name, when several datasets are pooled (core.data.pooled)

    @property
    def annotated(self) -> bool:
        return self.annotation_path is not None

    @property
    def usable_audio(self) -> bool:
        return self.audio_path is not None and self.audio_problem is None
