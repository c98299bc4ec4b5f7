"""Review mode: the open recordings' cycles one after another, in the order most worth a look
(core.analysis.review: the labels the model gives the lowest probability first, then the teachers'
disagreement where the chosen model is an experiment's student), with the count of likely wrong labels not
reviewed yet. Keys: → next (keeps the class), ← previous, Space plays, N C W B set the class and go on, A
accepts the model's class and goes on. "Train on these recordings" takes the corrected recordings' folder to the
training wizard, whose first page also offers to adapt a model to them."""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QWidget

from lungkd.core.analysis.review import LIKELY_WRONG, ReviewCandidate, likely_wrong, review_order, review_reason
from lungkd.core.text import printable

from ..progress_bar import ProgressBar
from ..recordings.page import RecordingsPage
from ..recordings.session import Session
from ..recordings.words import OUTSIDE
from .annotation_actions import AnnotationActions, wrapping

KEYS = ("→ next (keeps the class) · ← previous · Space play · N C W B set the class and go on · A accept the "
        "model's class and go on")


@dataclass
class ReviewEntry:
    path: Path
    start: float
    end: float
    reviewed: bool = False

    @property
    def middle(self) -> float:  # still inside the cycle if its boundaries are dragged a little
        return (self.start + self.end) / 2


def data_folder(paths: list[Path]) -> Path:
    """The one folder holding the recordings, or the folder all of them are under."""
    folders = {Path(p).parent for p in paths}
    return folders.pop() if len(folders) == 1 else Path(os.path.commonpath([str(f) for f in folders]))


class ReviewBar(QWidget):
    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("reviewBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.progress = ProgressBar(textVisible=True, minimumWidth=150, maximumWidth=200)
        self.likely_wrong = QLabel(objectName="likelyWrong")
        self.likely_wrong.setToolTip(f"Cycles not reviewed yet whose annotated class {LIKELY_WRONG}: the queue puts "
                                     "them first")
        # they quote recording names: plain text, shown as written
        self.where = wrapping(QLabel(objectName="heading", textFormat=Qt.TextFormat.PlainText))
        self.reason = wrapping(QLabel(objectName="reason", textFormat=Qt.TextFormat.PlainText))
        self.keys = wrapping(QLabel(KEYS, objectName="hint"))
        self.previous = QPushButton("‹ Previous")
        self.next = QPushButton("Next ›")
        self.play = QPushButton("▶ Play")
        self.train = QPushButton("Train on these recordings…")
        self.train.setToolTip("Open the training wizard with the folder of these recordings as its data "
                              "(save your corrections first)")
        self.done = QPushButton("Done")
        layout = QGridLayout(self)
        layout.setContentsMargins(6, 4, 6, 4)
        layout.setVerticalSpacing(1)
        layout.addWidget(self.progress, 0, 0)
        layout.addWidget(self.where, 0, 1)
        for column, button in enumerate((self.previous, self.next, self.play, self.train, self.done), start=2):
            layout.addWidget(button, 0, column)
        layout.addWidget(self.likely_wrong, 1, 0)
        layout.addWidget(self.reason, 1, 1, 1, 6)
        layout.addWidget(self.keys, 2, 0, 1, 7)
        layout.setColumnStretch(1, 1)


class ReviewMode(QObject):
    train_requested = Signal(object)  # the folder of the reviewed recordings

    def __init__(self, session: Session, page: RecordingsPage, actions: AnnotationActions, window: QWidget):
        super().__init__(window)
        self.session = session
        self.page = page
        self.edit_bar = actions.bar  # its hint and Review button give way to the review bar
        self.entries: list[ReviewEntry] = []
        self.position = 0
        self.active = False
        self.waiting = False  # for predictions (the teachers' votes) before the order can be made
        self.bar = ReviewBar()
        self.bar.setVisible(False)
        page.bars.addWidget(self.bar)
        self.toggle = QAction("&Review cycles", self, checkable=True, shortcut=QKeySequence("Ctrl+Shift+R"))
        self.toggle.setStatusTip("Walk the open recordings' cycles, those most worth a look first")
        self.toggle.toggled.connect(lambda on: self.start() if on else self.stop())
        window.addAction(self.toggle)
        self.next = self._key_action("&Next cycle in review", "Right", lambda: self.step(1, mark=True), page)
        self.previous = self._key_action("&Previous cycle in review", "Left", lambda: self.step(-1), page)
        for action in (*actions.classes, actions.accept):  # connected after the edit itself: it runs first
            action.triggered.connect(self._answered)
        actions.bar.review_button.clicked.connect(lambda: self.toggle.setChecked(True))
        self.bar.next.clicked.connect(self.next.trigger)
        self.bar.previous.clicked.connect(self.previous.trigger)
        self.bar.play.clicked.connect(page.toggle_playback)
        self.bar.play.setEnabled(page.player.available)
        self.bar.play.setToolTip(page.player.unavailable_reason or "Play the cycle (Space)")
        self.bar.train.clicked.connect(lambda: self.train_requested.emit(self.folder()))
        self.bar.done.clicked.connect(lambda: self.toggle.setChecked(False))
        session.documents_changed.connect(self._documents_changed)
        session.queue.busy.connect(lambda busy: self.waiting and not busy and self._order())

    def _key_action(self, text: str, key: str, slot, page: QWidget) -> QAction:
        action = QAction(text, self, shortcut=QKeySequence(key), enabled=False)
        action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.triggered.connect(slot)
        page.addAction(action)
        return action

    def folder(self) -> Path:
        return data_folder(list(self.session.documents))

    # ---------------------------------------------------------------- the queue

    def start(self) -> None:
        if not self.session.documents:
            self.session.status.emit("Open analysed recordings to review them.")
            self.toggle.setChecked(False)
            return
        self.active = True
        for action in (self.next, self.previous):
            action.setEnabled(True)
        self.bar.setVisible(True)
        for widget in (self.edit_bar.hint, self.edit_bar.review_button):
            widget.setVisible(False)
        if self.session.teacher_folders:
            self.session.set_show_teachers(True)  # their votes order the queue and show in the table
        self._order()

    def stop(self) -> None:
        self.active = self.waiting = False
        for action in (self.next, self.previous):
            action.setEnabled(False)
        self.bar.setVisible(False)
        for widget in (self.edit_bar.hint, self.edit_bar.review_button):
            widget.setVisible(True)

    def _ready(self) -> bool:
        return all(not d.missing_spans(folder) for d in self.session.documents.values()
                   for folder in self.session.model_folders())

    def _order(self) -> None:
        """The queue, once every model needed has predicted every cycle (or nothing more is coming)."""
        if not self.active:
            return
        if not self._ready() and self.session.queue.is_busy():
            self.waiting = True
            teachers = len(self.session.teacher_folders) if self.session.show_teachers else 0
            self.bar.where.setText("Waiting for the predictions" + (f" and the votes of {teachers} teachers"
                                                                      if teachers else "") + "…")
            self.bar.reason.setText("The order needs them; progress is in the status bar.")
            return
        self.waiting = False
        self.entries = self.queue()
        self.go(0)

    def queue(self) -> list[ReviewEntry]:
        candidates = []
        for path, document in self.session.documents.items():
            for span in document.spans:
                candidates.append(self._candidate(path, span))
        return [ReviewEntry(Path(candidates[i].recording), candidates[i].start, candidates[i].end)
                for i in review_order(candidates)]

    def _candidate(self, path: Path, span) -> ReviewCandidate:
        document, session = self.session.documents[path], self.session
        votes = document.teacher_probabilities(session.teacher_folders, span) if session.show_teachers else None
        return ReviewCandidate(str(path), span.start, span.end, span.label,
                               document.probabilities(session.model_folder, span), tuple(votes or ()))

    def go(self, position: int) -> None:
        if not self.entries:
            self.bar.where.setText("No cycles to review.")
            return
        self.position = min(max(position, 0), len(self.entries) - 1)
        entry = self.entries[self.position]
        self.page.go_to(entry.path, entry.middle)
        self.show_progress()

    def step(self, step: int, *, mark: bool = False) -> None:
        if not self.active or self.waiting or not self.entries:
            return
        if mark:
            self.entries[self.position].reviewed = True
        if step > 0 and self.position == len(self.entries) - 1:
            self.show_progress()
            return
        self.go(self.position + step)

    def _answered(self) -> None:
        """A class was set or accepted in review: that cycle is reviewed; on to the next."""
        if self.active and not self.waiting:
            self.step(1, mark=True)

    def reviewed(self) -> int:
        return sum(e.reviewed for e in self.entries)

    def _span(self, entry: ReviewEntry):
        """The entry's cycle as it stands (its class may have changed), or None when it was deleted."""
        document = self.session.documents.get(entry.path)
        return document.span_at(entry.middle) if document else None

    def likely_wrong_left(self) -> int:
        """The cycles not reviewed yet whose annotated class is likely wrong (core.analysis.review.likely_wrong)."""
        spans = ((entry, self._span(entry)) for entry in self.entries if not entry.reviewed)
        return sum(likely_wrong(self._candidate(entry.path, span)) for entry, span in spans if span is not None)

    def show_progress(self) -> None:
        if not self.entries:
            return
        done, total = self.reviewed(), len(self.entries)
        self.bar.progress.setRange(0, total)
        self.bar.progress.setValue(done)
        self.bar.progress.setFormat(f"{done} / {total} reviewed")
        left = self.likely_wrong_left()
        self.bar.likely_wrong.setText(f"{left} likely wrong label{'' if left == 1 else 's'} left")
        entry = self.entries[self.position]
        span = self._span(entry)
        finished = " — all reviewed" if done == total else ""
        if span is None:
            self.bar.where.setText(printable(f"{self.position + 1} of {total}: {entry.path.name} — this cycle was "
                                             f"deleted{finished}"))
            self.bar.reason.setText("")
            return
        index = self.session.documents[entry.path].spans.index(span)
        self.bar.where.setText(printable(f"{self.position + 1} of {total}: {entry.path.name} · cycle {index + 1} · "
                                         f"{span.start:.2f}–{span.end:.2f} s{finished}"))
        self.bar.reason.setText(review_reason(self._candidate(entry.path, span)) + self._doubt(entry.path, index))

    def _doubt(self, path: Path, index: int) -> str:
        """What the reason must add when the model is outside its training data here: its view is doubtful."""
        shown = self.session.documents[path].shown(self.session.model_folder)
        cycle = shown[index] if index < len(shown) else None
        if cycle is not None and cycle.recording_unlike:
            return f" · this recording is {OUTSIDE}: doubt the model's view"
        if cycle is not None and cycle.unlike_training:
            return f" · this cycle is {OUTSIDE}: doubt the model's view"
        return ""

    def _documents_changed(self) -> None:
        if not self.active:
            return
        if self.waiting:
            self._order()
        elif set(e.path for e in self.entries) - set(self.session.documents):  # a recording was closed
            self.entries = [e for e in self.entries if e.path in self.session.documents]
            self.go(self.position)
        else:
            self.show_progress()
