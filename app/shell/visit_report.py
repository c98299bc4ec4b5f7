"""File > Report of this visit…: the visit of the recording on screen (its patient and session, from the
ICBHI-style names of the open recordings) as a PDF or HTML document to file or share.

The report is built in the engine thread from the analyses as they stand (edits included) and the decoded
samples already open (core/analysis/visit.py, visit_pages.py), then written on the GUI thread: HTML as it is,
PDF through Qt's own writer (app/report_pdf.py). Unsaved edits are offered for saving first, since the report
lists what a person changed from the edit history saved with each annotation.
"""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QObject, Signal
from PySide6.QtWidgets import QFileDialog, QWidget

from lungkd.core.analysis.visit import model_summary, recording_entry, visit_of, visit_reports
from lungkd.core.analysis.visit_pages import visit_html
from lungkd.core.cancel import Cancelled
from lungkd.core.models.card import read_model_card
from lungkd.core.storage import write_text_atomic
from lungkd.core.text import printable

from ..editing.annotation_actions import ask_to_save
from ..engine import EngineTask
from ..recordings.session import Session
from ..report_pdf import write_pdf

FILTERS = "PDF (*.pdf);;HTML (*.html)"


def visit_job(items: list, model_folder: Path):
    """(analysis, decoded audio) of each recording of the visit -> (VisitReport, its HTML)."""
    def job(report, cancel):
        entries = []
        for analysis, audio in items:
            if cancel.is_set():
                raise Cancelled("the report was cancelled.")
            entries.append(recording_entry(analysis, audio))
        [visit] = visit_reports(entries, model_summary(read_model_card(model_folder), model_folder))
        return visit, visit_html(visit)
    return job


class VisitReporter(QObject):
    written = Signal(object)  # the Path of the report written

    def __init__(self, session: Session, window: QWidget):
        super().__init__(window)
        self.session = session
        self.window = window

    def members(self) -> list[Path]:
        """The open, analysed recordings of the current recording's visit, by name."""
        current = self.session.current
        if current is None or self.session.model_folder is None:
            return []
        visit = visit_of(current.path.stem)
        return sorted((path for path in self.session.recordings
                       if visit_of(path.stem) == visit and self.session.documents.get(path) is not None
                       and self.session.documents[path].analysis(self.session.model_folder) is not None),
                      key=lambda p: p.name)

    def ask(self) -> EngineTask | None:
        """Asks where to write the report of the current visit, then writes it."""
        members = self.members()
        if not members:
            self.session.status.emit("Open and analyse a recording (with a model chosen) to report its visit.")
            return None
        patient, session = visit_of(members[0].stem)
        name = f"visit-{patient}" + (f"-{session}" if session else "") + ".pdf"
        path, _ = QFileDialog.getSaveFileName(self.window, "Report of this visit", str(members[0].parent / name),
                                              FILTERS)
        return self.write(Path(path)) if path else None

    def write(self, target: Path) -> EngineTask | None:
        members = self.members()
        documents = [self.session.documents[path] for path in members]
        if not members or not ask_to_save(self.window, documents, "reporting the visit"):
            return None
        folder = self.session.model_folder
        items = [(self.session.documents[path].analysis(folder), self.session.recordings[path].audio)
                 for path in members]
        task = EngineTask(visit_job(items, folder), f"Writing the report of {len(members)} recording(s)")
        task.finished.connect(lambda result: self._write(result, target))
        task.failed.connect(self.session.error)
        return self.session.queue.submit(task)

    def _write(self, result, target: Path) -> None:
        visit, html = result
        if target.suffix.lower() not in (".pdf", ".html", ".htm"):
            target = target.with_suffix(".pdf")
        try:
            if target.suffix.lower() == ".pdf":
                write_pdf(html, target, title=f"Visit report: {visit.title}")
            else:
                write_text_atomic(target, html)
        except OSError as exc:
            self.session.error.emit(printable(f"Could not write {target}: {exc.strerror or exc}"), str(exc))
            return
        self.session.status.emit(printable(f"Wrote the report of {visit.title} to {target}"))
        self.written.emit(target)
