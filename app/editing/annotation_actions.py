"""The Edit menu of the Recordings page — undo and redo, save, Raven selection tables, the class keys
(N, C, W, B), accepting the model's class (A), split (S), merge (M), delete — the edit bar above the plots
that says what is unsaved, and the questions asked before unsaved edits could be lost."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QMenu, QMessageBox, QPushButton, QSizePolicy,
                               QWidget)

from lungkd.core.data.annotation_io import AnnotationChanged, read_raven_table, write_raven_table
from lungkd.core.errors import LungKDError
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.text import html_text, printable

from ..recordings.cycle_document import CycleDocument
from ..recordings.page import RecordingsPage
from ..recordings.session import Session
from ..theme import EDITED, MISMATCH, MUTED
from .edit_overlay import CycleEditor
from .segmentation_actions import SegmentationActions

RAVEN_FILTER = "Raven selection tables (*.selections.txt *.txt);;All files (*)"
HINT = ("Drag an edge to move it, or empty time to add a cycle · S split at the mouse · M merge with the next · "
        "Del delete · N C W B class · A accept the model's · Ctrl+Z undo")


def message_box(parent: QWidget, icon: QMessageBox.Icon, text: str, details: str = "",
                buttons=QMessageBox.StandardButton.NoButton) -> QMessageBox:
    """A message that quotes file names: plain text (the informative text too), so a name is shown as written and
    never read as markup."""
    box = QMessageBox(icon, "LungKD Studio", printable(text), buttons, parent)
    box.setTextFormat(Qt.TextFormat.PlainText)
    box.setInformativeText(printable(details))
    return box


def ask_to_save(parent: QWidget, documents: list[CycleDocument], before: str = "closing") -> bool:
    """"Save before closing?" for the documents with unsaved edits: True when closing may go on (saved,
    or the user chose not to), False to stay."""
    modified = [d for d in documents if d.modified]
    if not modified:
        return True
    what = (f"the annotation of {modified[0].name}" if len(modified) == 1
            else f"the annotations of {len(modified)} recordings")
    names = "\n".join(d.name for d in modified[:10]) + ("\n…" if len(modified) > 10 else "")
    box = message_box(parent, QMessageBox.Icon.Question, f"Save your edits to {what} before {before}?",
                      names + ("\n\nIf you don't save, these edits are lost." if before == "closing" else ""),
                      QMessageBox.StandardButton.Save | QMessageBox.StandardButton.Discard
                      | QMessageBox.StandardButton.Cancel)
    box.setDefaultButton(QMessageBox.StandardButton.Save)
    answer = box.exec()
    if answer == QMessageBox.StandardButton.Save:
        return save_documents(parent, modified)
    return answer == QMessageBox.StandardButton.Discard


def save_documents(parent: QWidget, documents: list[CycleDocument]) -> bool:
    """Saves each; an annotation changed on disk meanwhile is only overwritten when the user says so (the
    changed file is then kept as a numbered backup). False when something was not saved."""
    for document in documents:
        try:
            try:
                document.save()
            except AnnotationChanged as exc:
                box = message_box(parent, QMessageBox.Icon.Warning,
                                  f"{document.annotation_path.name}: {exc.problem.message}",
                                  "Saving anyway keeps the file on disk as a numbered backup beside it.\n\n"
                                  f"{exc.problem.path}")
                anyway = box.addButton("Save anyway", QMessageBox.ButtonRole.AcceptRole)
                box.addButton(QMessageBox.StandardButton.Cancel)
                box.exec()
                if box.clickedButton() is not anyway:
                    return False
                document.save(overwrite_changes=True)
        except (LungKDError, OSError) as exc:
            message_box(parent, QMessageBox.Icon.Warning, str(exc), buttons=QMessageBox.StandardButton.Ok).exec()
            return False
    return True


def wrapping(label: QLabel) -> QLabel:
    """A label that wraps instead of widening the window."""
    label.setWordWrap(True)
    label.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
    return label


class EditBar(QWidget):
    """Above the plots: the current recording's annotation file and whether it is saved, and the keys."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("editBar")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)
        self.state = QLabel()
        self.hint = wrapping(QLabel(HINT, objectName="hint"))
        self.save_button = QPushButton("Save")
        self.review_button = QPushButton("Review cycles…")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.addWidget(self.state)
        layout.addWidget(self.hint, 1)
        for button in (self.save_button, self.review_button):
            button.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            layout.addWidget(button)

    def show_document(self, document: CycleDocument | None) -> None:
        self.setVisible(document is not None)
        if document is None:
            return
        name = html_text(document.annotation_path.name)
        if document.changed_on_disk:
            text = f"<b>{name}</b> <span style='color:{MISMATCH.name()}'>⚠ changed on disk</span>"
        elif document.modified:
            clean = document.undo_stack.cleanIndex()  # -1: the saved state was undone and edited over
            edits = abs(document.undo_stack.index() - clean) if clean >= 0 else 0
            count = f"{edits} unsaved edit{'s' * (edits != 1)}" if edits else "unsaved edits"
            text = f"<b>{name}</b> <span style='color:{EDITED.name()}'>● {count}</span>"
        elif document.annotation_path.exists():
            text = f"<b>{name}</b> <span style='color:{MUTED.name()}'>saved</span>"
        else:
            text = f"<span style='color:{MUTED.name()}'>no annotation file yet ({name})</span>"
        self.state.setText(text)
        self.save_button.setEnabled(document.modified)


class AnnotationActions(QObject):
    """The editing actions on the session's current recording, over a RecordingsPage (with the mouse editor on
    its plots). Undo, redo and save work from anywhere in the window; the single-key ones only while the
    Recordings page has the focus (so typing elsewhere is typing)."""

    def __init__(self, session: Session, page: RecordingsPage, window: QWidget):
        super().__init__(window)
        self.session = session
        self.page = page
        self.window = window
        self.editor = CycleEditor(page.view, session)
        self.undo = session.undo_group.createUndoAction(self, "&Undo")
        self.undo.setShortcut(QKeySequence.StandardKey.Undo)
        self.redo = session.undo_group.createRedoAction(self, "&Redo")
        self.redo.setShortcuts([QKeySequence("Ctrl+Shift+Z"), QKeySequence("Ctrl+Y")])
        window.addAction(self.undo)
        window.addAction(self.redo)
        self.save = self._action("&Save annotation", self.save_current, QKeySequence.StandardKey.Save, window,
                                 "Write the cycles as ICBHI text beside the recording (the old file is kept as "
                                 "NAME.txt.~N~)")
        self.save_all = self._action("Save a&ll annotations", self.save_everything, "Ctrl+Shift+S", window)
        self.import_raven = self._action("&Import Raven selection table…", self.import_dialog, None, window,
                                         "Replace the cycles with the selections of a Raven table (undoable)")
        self.export_raven = self._action("E&xport Raven selection table…", self.export_dialog, None, window,
                                         "The cycles as a Raven selection table, for bioacoustics tools")
        self.classes = [self._action(f"Set class: &{name}", lambda _=False, k=k: self.set_class(k),
                                     name[0].upper(), page) for k, name in enumerate(CLASS_NAMES)]
        self.accept = self._action("&Accept the model's class", self.accept_predictions, "A", page,
                                   "The model's class for every selected cycle")
        self.split = self._action("S&plit at the mouse", self.split_at_mouse, "S", page,
                                  "Split the cycle under the mouse pointer where it points")
        self.merge = self._action("&Merge with the next cycle", self.merge_with_next, "M", page)
        self.delete = self._action("&Delete cycles", self.delete_selected, QKeySequence.StandardKey.Delete, page)
        self.delete.setShortcuts([QKeySequence(QKeySequence.StandardKey.Delete), QKeySequence("Backspace")])
        self.segmentation = SegmentationActions(session, page, window)  # the automatic cycles steered
        self.bar = EditBar()
        page.bars.addWidget(self.bar)
        self.bar.save_button.clicked.connect(self.save_current)
        self.editor.menu_requested.connect(self.context_menu)
        page.selection_changed.connect(self.update)
        session.documents_changed.connect(self.update)
        self.update()

    def _action(self, text: str, slot, shortcut, owner: QWidget, tip: str = "") -> QAction:
        action = QAction(text, self)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if owner is self.page:
            action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.setStatusTip(tip)
        owner.addAction(action)
        return action

    def menu_actions(self) -> list[QAction | None]:
        return [self.undo, self.redo, None, self.save, self.save_all, None, *self.classes, self.accept, None,
                self.split, self.merge, self.delete, None, *self.segmentation.actions(), None, self.import_raven,
                self.export_raven]

    def update(self) -> None:
        session = self.session
        document = session.current_document_or_none()
        selected = self.page.selected_cycles() if document else []
        self.save.setEnabled(bool(document and document.modified))
        self.save_all.setEnabled(any(d.modified for d in session.documents.values()))
        for action in (*self.classes, self.accept, self.delete):
            action.setEnabled(bool(selected))
        self.merge.setEnabled(bool(selected) and selected[0] + 1 < len(document.spans))
        self.split.setEnabled(document is not None)
        self.import_raven.setEnabled(session.current is not None)
        self.export_raven.setEnabled(bool(document and document.spans))
        self.bar.show_document(document)

    # ---------------------------------------------------------------- edits

    def set_class(self, label: int) -> None:
        rows = self.page.selected_cycles()
        if rows:
            self.session.current_document().set_labels({row: label for row in rows})

    def accept_predictions(self) -> None:
        rows = self.page.selected_cycles()
        if rows and not self.session.current_document().accept_predictions(rows, self.session.model_folder):
            self.session.status.emit("The model has not predicted the selected cycles yet (or its class is already "
                                  "the annotated one).")

    def split_at_mouse(self, _=False, seconds: float | None = None) -> None:
        seconds = self.editor.cursor_seconds if seconds is None else seconds
        index = self.page.cycle_at(seconds) if seconds is not None else None
        if index is None or not self.session.current_document().split(index, seconds):
            self.session.status.emit("Point with the mouse at the place in a cycle where it should be split, then "
                                  "press S (each part keeps at least 50 ms).")

    def merge_with_next(self) -> None:
        """The (first) selected cycle and the one after it become one."""
        rows = self.page.selected_cycles()
        if rows:
            self.session.current_document().merge_with_next(rows[0])

    def delete_selected(self) -> None:
        rows = self.page.selected_cycles()
        if rows:
            self.session.current_document().delete(rows)

    def context_menu(self, seconds: float, where) -> None:
        """Right click on a plot: the edits for the cycle there (it becomes the selection)."""
        index = self.page.cycle_at(seconds)
        if index is not None and index not in self.page.selected_cycles():
            self.page.select_cycle(index)
        menu = QMenu(self.window)
        menu.setToolTipsVisible(True)  # a disabled action's tooltip says why
        split = menu.addAction("Split here", lambda: self.split_at_mouse(seconds=seconds))
        split.setEnabled(index is not None)
        for action in (self.merge, self.delete, None, *self.classes, self.accept, None, *self.segmentation.actions()):
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        menu.popup(where)
        self.menu = menu  # kept until the next one: a popup without an owner would be collected at once

    # ---------------------------------------------------------------- files

    def save_current(self) -> bool:
        document = self.session.current_document()
        if document is None:
            return False
        backup_before = document.annotation_path.exists()
        if save_documents(self.window, [document]):
            kept = " (the previous file is kept beside it as a numbered backup)" if backup_before else ""
            self.session.status.emit(f"Saved {len(document.spans)} cycles to {document.annotation_path}{kept}")
            return True
        return False

    def save_everything(self) -> bool:
        modified = [d for d in self.session.documents.values() if d.modified]
        if save_documents(self.window, modified):
            self.session.status.emit(f"Saved the annotations of {len(modified)} recording(s).")
            return True
        return False

    def import_dialog(self) -> None:
        recording = self.session.current
        path, _ = QFileDialog.getOpenFileName(self.window, "Import a Raven selection table",
                                              str(recording.path.parent), RAVEN_FILTER)
        if path:
            self.import_table(Path(path))

    def import_table(self, path: Path) -> None:
        """The table's selections replace the cycles (one undoable edit); rows that could not be read are
        listed, the others still come in."""
        try:
            spans, problems = read_raven_table(path)
        except LungKDError as exc:
            self.session.error.emit(str(exc), "")
            return
        duration = self.session.current.duration
        beyond = [s for s in spans if s.start >= duration]
        spans = [replace(s, end=min(s.end, duration)) for s in spans if s.start < duration]
        if beyond:
            problems.append(f"{path}: {len(beyond)} selection(s) start after the recording ends ({duration:.3f} s); "
                            "left out.")
        if spans:
            self.session.current_document().replace_all(spans, f"Import {len(spans)} cycles from {path.name}")
        self.session.status.emit(f"Imported {len(spans)} cycles from {path.name}" +
                              (f"; {len(problems)} row(s) need a look" if problems else ""))
        if problems:
            self.session.error.emit(f"{path.name}: {len(problems)} row(s) could not be imported as they are.",
                                 "\n".join(map(str, problems)))

    def export_dialog(self) -> None:
        document = self.session.current_document()
        suggested = document.audio_path.with_name(f"{document.audio_path.stem}.Table.1.selections.txt")
        path, _ = QFileDialog.getSaveFileName(self.window, "Export a Raven selection table", str(suggested),
                                              RAVEN_FILTER)
        if path:
            try:
                write_raven_table(path, document.spans, document.sample_rate / 2)
            except (LungKDError, OSError) as exc:
                self.session.error.emit(f"Could not write {path}: {exc}", "")
                return
            self.session.status.emit(f"Wrote {len(document.spans)} selections to {path}")
