"""Analyses kept by content: each recording's analysis as every export needs it, with where it came from
(its provenance), stored in the workspace under the sha256 of the recording's bytes and of the model's card.

A folder analysed again with the same model skips what was done (a cancelled run resumes where it stopped);
a recording whose bytes (or the annotation beside it, or its path: the name tells the device and the site)
changed, or a model whose card changed (its weights are in the card's checksums, its calibration in its
temperature), is analysed again. The key also holds LungKD's version and the shape of the analysis, so an
upgrade never serves an analysis in an older form. Entries are written atomically, one file per recording; a
damaged one is dropped and the recording analysed again.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path

from lungkd.core.about import lungkd_version
from lungkd.core.analysis.limits import UsableModel
from lungkd.core.analysis.predict import CyclePrediction, RecordingAnalysis, write_csv
from lungkd.core.data.annotations import annotation_beside
from lungkd.core.storage import atomic_path, file_sha256, json_sha256, json_text
from lungkd.core.workspace.layout import CARD_FILE, MODEL_FOLDER, RESULTS_FOLDER

RESULTS_FORMAT = 1  # of the stored entries; raise it when their fields change


@dataclass(frozen=True)
class ModelIdentity:
    """Which model analysed: its name as a user knows it, its folder, and the sha256 of its card."""

    name: str
    folder: str
    card_sha256: str

    @classmethod
    def of(cls, model: UsableModel) -> "ModelIdentity":
        folder = Path(model.path).resolve()
        name = folder.parent.name if folder.name == MODEL_FOLDER else folder.name  # runs/<name>/model
        if model.card.experiment and model.card.experiment != name:
            name = f"{model.card.experiment}/{name}"
        return cls(name, str(folder), file_sha256(folder / CARD_FILE))


@dataclass(frozen=True)
class Provenance:
    """Where one recording's rows came from: the file and its bytes, the model, LungKD, and when."""

    file: str  # the recording's absolute path
    file_sha256: str
    model: str
    model_card_sha256: str
    lungkd_version: str
    analysed_at: str  # ISO 8601, UTC, to the second


def csv_header() -> list[str]:
    """The per-cycle columns `lungkd predict --csv` writes."""
    text = io.StringIO()
    write_csv([], text)
    return next(csv.reader(io.StringIO(text.getvalue())))


@dataclass(frozen=True)
class AnalysedRecording:
    """One recording's analysis in the forms the exports write (its JSON object, its CSV rows), with its
    provenance. `analysis` is the RecordingAnalysis itself when it was made in this run; `reused` when it was
    read from the results cache instead."""

    provenance: Provenance
    json: dict
    csv_rows: list[list[str]]
    reused: bool = False
    analysis: RecordingAnalysis | None = field(default=None, compare=False, repr=False)

    @property
    def name(self) -> str:
        return Path(self.provenance.file).stem

    @property
    def cycles(self) -> list[dict]:
        return self.json["cycles"]

    @classmethod
    def of(cls, analysis: RecordingAnalysis, file_sha256: str, model: ModelIdentity) -> "AnalysedRecording":
        rows = io.StringIO()
        write_csv([analysis], rows)
        provenance = Provenance(str(Path(analysis.path).resolve()), file_sha256, model.name, model.card_sha256,
                                lungkd_version(), datetime.now(timezone.utc).isoformat(timespec="seconds"))
        return cls(provenance, json.loads(json_text(analysis.to_dict(), indent=None)),
                   list(csv.reader(io.StringIO(rows.getvalue())))[1:], analysis=analysis)


def _digest_or_none(path: Path | None) -> str | None:
    try:
        return file_sha256(path) if path is not None else None
    except OSError:  # the analysis goes without it (and says so), as it will while the file stays unreadable
        return "unreadable"


def _shape_of_analyses() -> dict:
    """What an entry's content depends on besides the recording and the model: LungKD, the analysis' fields and
    the CSV columns (a new column must not be missing from older entries)."""
    return {"format": RESULTS_FORMAT, "lungkd": lungkd_version(), "csv": csv_header(),
            "analysis": [f.name for f in fields(RecordingAnalysis)], "cycle": [f.name for f in fields(CyclePrediction)]}


class ResultsCache:
    """Analysed recordings by what their analysis read (the recording's path and bytes, the annotation beside it)
    and by the model's card, LungKD and the analysis' shape, in `root`."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self._shape = json_sha256(_shape_of_analyses(), 16)

    @classmethod
    def for_workspace(cls, workspace: str | Path) -> "ResultsCache":
        return cls(Path(workspace) / RESULTS_FOLDER)

    def entry(self, path: Path, file_sha256: str, model: ModelIdentity, prompt: str | None = None) -> Path:
        """Where the analysis of the recording at `path` (whose bytes hash to `file_sha256`) by `model` is kept.
        The path is part of the key since the name tells the analysis the device and the site; the annotation
        beside the recording since its cycles are the ones analysed; the `prompt` a model that reads prompts
        reads it with, since the patient metadata behind it may change."""
        annotation, _ = annotation_beside(Path(path))
        read = [str(Path(path).resolve()), file_sha256, _digest_or_none(annotation)]
        if prompt is not None:  # absent for models without prompts: their entries keep the keys they had
            read.append(prompt)
        return self.root / f"{model.card_sha256[:32]}-{self._shape}" / file_sha256[:2] / f"{json_sha256(read)}.json"

    def get(self, entry: Path, file_sha256: str, model: ModelIdentity) -> AnalysedRecording | None:
        """The stored analysis, or None (never analysed, or its entry is damaged and was dropped)."""
        try:
            stored = json.loads(entry.read_text(encoding="utf-8"))
            provenance = Provenance(**stored["provenance"])
            if (provenance.file_sha256, provenance.model_card_sha256) != (file_sha256, model.card_sha256):
                raise ValueError("the entry is not the one its name says")
            rows = [[str(cell) for cell in row] for row in stored["csv_rows"]]
            return AnalysedRecording(provenance, dict(stored["json"]), rows, reused=True)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, TypeError, KeyError):
            entry.unlink(missing_ok=True)
            return None

    def put(self, entry: Path, analysed: AnalysedRecording) -> bool:
        """Stores an analysed recording; False when the disk refused (the run goes on without it)."""
        try:
            with atomic_path(entry) as tmp:
                tmp.write_text(json_text({"provenance": asdict(analysed.provenance), "json": analysed.json,
                                          "csv_rows": analysed.csv_rows}, indent=None), encoding="utf-8")
            return True
        except OSError:
            return False
