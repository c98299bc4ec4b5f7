"""Importing a model someone sent as one .lungkd file: File > Import model…, or the file dropped on the model
picker (or anywhere on the window). Before anything is unpacked the archive's members are checked and its card
is shown as plain text — architecture, how it was made, training data, Scores with the data they were measured
on, calibration and limits, versions — never as markup, since it comes from someone else. Import checks every
file against the card and unpacks it into the workspace's models folder in the engine
(core.models.archive); the window then analyses with it."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QMimeData, QObject, Qt, Signal
from PySide6.QtGui import QFontDatabase
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QPlainTextEdit, QVBoxLayout, QWidget

from lungkd.core.errors import LungKDError
from lungkd.core.models.archive import ARCHIVE_SUFFIX, import_archive, read_archive_card
from lungkd.core.models.card import ModelCard
from lungkd.core.models.card_summary import card_text
from lungkd.core.text import printable
from lungkd.core.workspace.layout import models_folder

from ..engine import EngineTask, TaskQueue

ARCHIVE_FILTER = f"LungKD models (*{ARCHIVE_SUFFIX});;All files (*)"


def dropped_archives(mime: QMimeData) -> list[Path]:
    """The .lungkd files among what is dragged."""
    return [Path(url.toLocalFile()) for url in mime.urls()
            if url.isLocalFile() and url.toLocalFile().endswith(ARCHIVE_SUFFIX)]


class ImportModelDialog(QDialog):
    """The archive's card, read before import; Import or Cancel."""

    def __init__(self, path: Path, card: ModelCard, parent: QWidget | None = None):
        super().__init__(parent)
        self.setWindowTitle(f"Import {printable(path.name)}")
        heading = QLabel(f"{printable(path.name)} holds a {card.architecture} model. What its card says:",
                         textFormat=Qt.TextFormat.PlainText, wordWrap=True)
        self.card = QPlainTextEdit(card_text(card), readOnly=True)  # plain text: the card is someone else's words
        self.card.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.GeneralFont))
        self.card.setMinimumSize(680, 440)
        note = QLabel("Import checks every file against this card (its sha256 and size) and adds the model to the "
                      "workspace's models.", objectName="hint", wordWrap=True)
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Cancel)
        self.import_button = self.buttons.addButton("Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        for widget in (heading, self.card, note, self.buttons):
            layout.addWidget(widget)


class ModelImporter(QObject):
    """Asks about each archive (its card in a dialog) and imports it in the engine's queue."""

    imported = Signal(object)  # an ImportedModel
    failed = Signal(str, str)  # message, details

    def __init__(self, workspace: Path, queue: TaskQueue, window: QWidget):
        super().__init__(window)
        self.workspace = workspace
        self.queue = queue
        self.window = window
        self.dialog: ImportModelDialog | None = None  # the last one shown

    def ask(self, path: Path) -> ImportModelDialog | None:
        """Shows the archive's card and imports it on Import; an archive refused already is said at once."""
        try:
            card = read_archive_card(path)
        except LungKDError as exc:
            self.failed.emit(f"{path.name} is not imported: {exc.problem.message} {exc.problem.fix}", str(exc))
            return None
        self.dialog = ImportModelDialog(path, card, self.window)
        self.dialog.accepted.connect(lambda: self._import(path))
        self.dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        self.dialog.open()
        return self.dialog

    def _import(self, path: Path) -> EngineTask:
        task = EngineTask(lambda report, cancel: import_archive(path, models_folder(self.workspace)),
                          f"Importing {path.name}")
        task.finished.connect(self.imported)
        task.failed.connect(lambda message, details: self.failed.emit(f"{path.name} is not imported: {message}",
                                                                      details))
        return self.queue.submit(task)
