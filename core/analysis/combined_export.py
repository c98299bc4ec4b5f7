"""One export for a whole run of recordings, in the three forms analysis tools read: a CSV with one row per
cycle, a JSON document, and one Raven selection table for all files. Every row says where it came from (its
provenance): the file and the sha256 of its bytes, the model and the sha256 of its card, the LungKD version and
the time of the analysis, so a row copied out of the table still names its source.

The Raven table lists the files one after another as Raven Pro's file list does (BirdNET-Analyzer's combined
tables do the same): "Begin Time (s)" counts from the start of the first file, "Begin Path" names the file and
"File Offset (s)" is the time within it.
"""
from __future__ import annotations

import csv
import io
from dataclasses import asdict, fields
from datetime import datetime, timezone
from pathlib import Path

from lungkd.core.about import lungkd_version
from lungkd.core.analysis.batch import Batch, Failure
from lungkd.core.analysis.results import AnalysedRecording, Provenance, csv_header
from lungkd.core.data.annotation_io import format_seconds
from lungkd.core.errors import LungKDError
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.storage import json_text, write_text_atomic
from lungkd.core.text import printable, spreadsheet_cell

PROVENANCE_COLUMNS = tuple(f.name for f in fields(Provenance))
EXPORT_FILES = {"csv": "lungkd-predictions.csv", "json": "lungkd-predictions.json",
                "raven": "lungkd-predictions.selections.txt"}
RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                 "Begin Path", "File Offset (s)", "Class", "Confidence", "File SHA-256", "Model",
                 "Model Card SHA-256", "LungKD Version", "Analysed At")


def _provenance_cells(provenance: Provenance) -> list[str]:
    return [spreadsheet_cell(str(value)) for value in asdict(provenance).values()]


def combined_csv(recordings: list[AnalysedRecording]) -> str:
    """The provenance columns, then `lungkd predict --csv`'s, one row per cycle of every recording."""
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow([*PROVENANCE_COLUMNS, *csv_header()])
    for recording in recordings:
        provenance = _provenance_cells(recording.provenance)
        writer.writerows([*provenance, *row] for row in recording.csv_rows)
    return text.getvalue()


def _failure(failure: Failure) -> dict:
    return {"file": printable(str(failure.path)), "reason": printable(failure.message)}


def combined_json(batch: Batch[AnalysedRecording]) -> str:
    """Each recording's analysis (as `lungkd predict --json` writes it) under its provenance, and the files that
    gave none with their reasons."""
    return json_text({
        "lungkd_version": lungkd_version(),
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "recordings": [{"provenance": asdict(r.provenance), **r.json} for r in batch.results],
        "failures": [_failure(f) for f in batch.failures],
        "left_out": [_failure(f) for f in batch.left_out]})


def combined_raven(recordings: list[AnalysedRecording]) -> str:
    """One selection per cycle, on the spectrogram view from 0 Hz to each file's Nyquist frequency, its class the
    prediction and its confidence the predicted class's probability."""
    rows = ["\t".join(RAVEN_COLUMNS)]
    offset = 0.0
    for recording in recordings:
        p = recording.provenance
        nyquist = format_seconds(recording.json["sample_rate"] / 2)
        for cycle in recording.cycles:
            rows.append("\t".join((
                str(len(rows)), "Spectrogram 1", "1", format_seconds(round(offset + cycle["start"], 6)),
                format_seconds(round(offset + cycle["end"], 6)), "0", nyquist, printable(p.file),
                format_seconds(cycle["start"]), cycle["prediction"], f"{max(cycle[n] or 0 for n in CLASS_NAMES):.4f}",
                p.file_sha256, printable(p.model), p.model_card_sha256, p.lungkd_version, p.analysed_at)))
        offset += recording.json["duration"]
    return "\n".join(rows) + "\n"


def export_paths(folder: Path) -> dict[str, Path]:
    return {kind: Path(folder) / name for kind, name in EXPORT_FILES.items()}


def check_export_folder(folder: Path, force: bool) -> None:
    """Refuses, before any work, an export folder that is a file, or whose export files exist (without force)."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise LungKDError("the export folder is a file.", path=folder, fix="give a folder, e.g. results/.")
    existing = [p for p in export_paths(folder).values() if p.exists()]
    if existing and not force:
        raise LungKDError(f"the export files exist already ({', '.join(p.name for p in existing)}).", path=folder,
                          fix="give another folder, or add --force to replace them.")


def write_combined_export(folder: Path, batch: Batch[AnalysedRecording]) -> dict[str, Path]:
    """The three files into `folder` (made if needed), each whole or not at all; returns their paths."""
    paths = export_paths(folder)
    write_text_atomic(paths["csv"], combined_csv(batch.results))
    write_text_atomic(paths["json"], combined_json(batch) + "\n")
    write_text_atomic(paths["raven"], combined_raven(batch.results))
    return paths
