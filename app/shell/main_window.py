"""LungKD Studio's main window: pages in tabs (Recordings now; the training wizard and the Runs view
join as further pages), one model picker, one task queue for the engine, a status bar with progress."""
from __future__ import annotations

import hashlib
from pathlib import Path

from PySide6.QtCore import QSettings, Qt, Signal
from PySide6.QtGui import QAction, QGuiApplication, QKeySequence
from superqt.utils import qthrottled
from PySide6.QtWidgets import (QComboBox, QFileDialog, QLabel, QMainWindow, QMenu, QMessageBox,
                               QPushButton, QStyle, QStyleOptionComboBox, QStylePainter, QTabWidget, QToolBar)

from lungkd.core.models.inventory import ModelEntry, find_models, shipped_models_folder
from lungkd.core.text import html_text, printable

from ..editing.annotation_actions import AnnotationActions, ask_to_save
from ..editing.review_mode import ReviewMode
from ..engine import TaskQueue
from ..progress_bar import ProgressBar
from ..recordings.folder_analysis import FolderAnalysisDialog
from ..recordings.model_notes import ModelNotesLabel
from ..recordings.page import RecordingsPage
from ..recordings.playback import Player
from ..recordings.session import Session
from ..theme import STYLE_SHEET
from ..training.runs_view import RunsView
from ..training.wizard import TrainingWizard
from .about import show_about
from .import_model import ARCHIVE_FILTER, ModelImporter, dropped_archives
from .visit_report import VisitReporter

AUDIO_FILTER = "Recordings (*.wav *.flac *.ogg);;All files (*)"
MODEL_KEY = "analysis/model"
RECENT_KEY = "recent"  # files and folders opened lately, newest first
RECENT_COUNT = 10


def session_key(workspace: Path) -> str:
    """Where the settings keep the recordings open when `workspace` was last closed (one list per workspace)."""
    return "sessions/" + hashlib.sha1(str(Path(workspace).resolve()).encode()).hexdigest()[:16]


def model_label(entry: ModelEntry) -> str:
    """The model by what made it, with its Score and the data it was measured on."""
    if entry.score is None:
        return f"{entry.name} — not scored"
    return f"{entry.name} — Score {entry.score:.1f}" + (f" on {entry.scored_on}" if entry.scored_on else "")


class ModelPicker(QComboBox):
    """The model picker. Model names are long (experiment, role, seed, the data of the Score) and the toolbar is
    not: a name that does not fit ends in an ellipsis instead of being cut mid-word, and the tooltip has it
    whole. A .lungkd dropped on it is offered for import."""

    archives_dropped = Signal(list)  # the Paths of .lungkd files dropped on it
    DESCRIPTION = "The model that analyses the recordings: the workspace's models and the shipped demo, best test " \
                  "Score first; drop a .lungkd model file here to import it"

    def __init__(self):
        super().__init__(minimumContentsLength=40)
        self.setAcceptDrops(True)
        self.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.setToolTip(self.DESCRIPTION)
        self.currentTextChanged.connect(self.describe_current)

    def describe_current(self) -> None:
        """The tooltip: the chosen model's whole name (also after a refresh, whose signals are blocked)."""
        text = self.currentText()
        self.setToolTip(f"<qt>{html_text(text)}<br><br>{self.DESCRIPTION}</qt>" if text else self.DESCRIPTION)

    def dragEnterEvent(self, event) -> None:
        if dropped_archives(event.mimeData()):
            event.acceptProposedAction()
        else:
            event.ignore()  # recordings fall through to the window, which opens them

    def dropEvent(self, event) -> None:
        archives = dropped_archives(event.mimeData())
        if archives:
            self.archives_dropped.emit(archives)
            event.acceptProposedAction()
        else:
            event.ignore()

    def paintEvent(self, event) -> None:
        painter = QStylePainter(self)
        option = QStyleOptionComboBox()
        self.initStyleOption(option)
        painter.drawComplexControl(QStyle.ComplexControl.CC_ComboBox, option)
        field = self.style().subControlRect(QStyle.ComplexControl.CC_ComboBox, option,
                                            QStyle.SubControl.SC_ComboBoxEditField, self)
        option.currentText = self.fontMetrics().elidedText(option.currentText, Qt.TextElideMode.ElideRight,
                                                           field.width())
        painter.drawControl(QStyle.ControlElement.CE_ComboBoxLabel, option)


class MainWindow(QMainWindow):
    def __init__(self, workspace: Path, store: QSettings | None = None):
        super().__init__()
        self.workspace = Path(workspace)
        self.store = store or QSettings("LungKD", "LungKD Studio")
        self.queue = TaskQueue(self)
        self.player = Player(self)
        self.last_error: QMessageBox | None = None
        self.setWindowTitle(f"LungKD Studio — {printable(str(self.workspace))}[*]")  # [*]: unsaved edits
        self.setStyleSheet(STYLE_SHEET)
        self.resize(1440, 900)
        self.setAcceptDrops(True)

        self.session = Session(self.queue, self)  # what is open and chosen; the pages show it
        self.recordings = RecordingsPage(self.session, self.store, self.player)
        self.pages = QTabWidget(documentMode=True)
        self.pages.setTabBarAutoHide(True)  # one page today; the wizard and Runs view add theirs
        self.pages.addTab(self.recordings, "Recordings")
        self.runs = RunsView(self.workspace)
        self.runs.changed.connect(self.refresh_models)
        self.pages.addTab(self.runs, "Experiments")
        self.wizard: TrainingWizard | None = None
        self.setCentralWidget(self.pages)
        self._build_status_bar()
        self.editing = AnnotationActions(self.session, self.recordings, self)
        self.review = ReviewMode(self.session, self.recordings, self.editing, self)
        self._build_actions()

        self.session.status.connect(self.status_message)
        self.session.error.connect(self.show_error)
        self.recordings.selection_changed.connect(self._update_actions)
        self.session.model_changed.connect(self._update_actions)
        self.session.teachers_changed.connect(self._update_actions)
        self.session.documents_changed.connect(
            lambda: self.setWindowModified(any(d.modified for d in self.session.documents.values())))
        self.review.train_requested.connect(self.train_on)
        self.importer = ModelImporter(self.workspace, self.queue, self)
        self.importer.imported.connect(lambda imported: self.use_model(str(imported.folder)))
        self.importer.failed.connect(self.show_error)
        # a training step or a recording per event: the status bar needs at most ten updates a second
        self._show_progress = qthrottled(self._progress, timeout=100, parent=self)
        self.queue.progress.connect(self._show_progress)
        self.queue.busy.connect(self._busy)
        self.refresh_models()
        self._update_actions()
        self.status_message("Drop wav, flac or ogg recordings (or folders) onto the window.")

    # ---------------------------------------------------------------- actions, menus, toolbar

    def _action(self, text: str, slot, shortcut=None, tip: str = "") -> QAction:
        action = QAction(text, self)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        action.setStatusTip(tip)
        self.addAction(action)  # shortcuts work whichever widget has the focus
        return action

    def _build_actions(self) -> None:
        page = self.recordings
        self.open_action = self._action("&Open recordings…", self.open_dialog, QKeySequence.StandardKey.Open,
                                        "Open wav, flac or ogg recordings")
        self.open_folder_action = self._action("Open &folder…", self.open_folder_dialog, "Ctrl+Shift+O",
                                               "Open every wav, flac or ogg recording in a folder and its subfolders")
        self.recent_menu = QMenu("Open &recent", self)
        self.recent_menu.aboutToShow.connect(self._fill_recent_menu)
        self.analyse_folder_action = self._action("&Analyse a folder…", self.analyse_folder_dialog, "Ctrl+Shift+A",
                                                  "Every recording of a folder analysed by the model, into one "
                                                  "export; what was analysed before is skipped")
        self.export_action = self._action("&Export cycles as CSV…", self.export_dialog, "Ctrl+E",
                                          "Every analysed cycle of the open recordings, one row each")
        self.visit_reporter = VisitReporter(self.session, self)
        self.report_action = self._action("Report of this &visit…", self.visit_reporter.ask, "Ctrl+Shift+P",
                                          "A PDF or HTML report of the current recording's patient visit: quality, "
                                          "breathing, findings, the model and what a person changed")
        self.remove_action = self._action("&Close recording", self.close_recording, QKeySequence.StandardKey.Close)
        self.import_model_action = self._action("&Import model…", self.import_model_dialog, None,
                                                "Check a .lungkd model file, read its card and add it to the "
                                                "workspace's models")
        quit_action = self._action("&Quit", self.close, QKeySequence.StandardKey.Quit)
        self.play_action = self._action("&Play / stop", page.toggle_playback, "Space",
                                        "Play the selected cycle (or what is in view); double click a cycle to play it")
        zoom_in = self._action("Zoom &in", lambda: page.view.zoom(0.5), QKeySequence.StandardKey.ZoomIn)
        zoom_out = self._action("Zoom &out", lambda: page.view.zoom(2.0), QKeySequence.StandardKey.ZoomOut)
        fit = self._action("&Whole recording", page.view.fit, "Ctrl+0")
        next_cycle = self._action("&Next cycle", lambda: page.step_cycle(1), "Ctrl+Right")
        previous_cycle = self._action("P&revious cycle", lambda: page.step_cycle(-1), "Ctrl+Left")
        refresh = self._action("&Refresh model list", self.refresh_models, "F5")
        cancel = self._action("&Cancel", self.queue.cancel_all, "Esc")
        self.explain_action = self._action("&Why this class?", page.explain_selected, "X",
                                           "Show over the spectrogram which sounds of the selected cycle moved the "
                                           "model towards its class (Esc cancels)")
        self.removeAction(self.explain_action)  # a single key: only while the Recordings page has the focus
        self.explain_action.setShortcutContext(Qt.ShortcutContext.WidgetWithChildrenShortcut)
        page.addAction(self.explain_action)
        self.train_action = self._action("&Train and distil…", self.open_wizard, "Ctrl+T",
                                         "Train teachers, build soft labels and distil a student, step by step")
        self.teachers_action = self._action("Show the &teachers' votes", self.session.set_show_teachers, None,
                                            "Each teacher's vote and their ensemble beside the model (when the "
                                            "model is an experiment's student)")
        self.teachers_action.setCheckable(True)
        experiments = self._action("&Experiments", lambda: (self.runs.refresh(), self.pages.setCurrentWidget(self.runs)),
                                   "Ctrl+R", "The workspace's experiments with their Scores")
        menus = {"&File": (self.open_action, self.open_folder_action, self.recent_menu, None, self.export_action,
                           self.analyse_folder_action, self.report_action,
                           self.remove_action, None, self.import_model_action, None, quit_action),
                 "&Edit": (*self.editing.menu_actions(), None, self.review.toggle),
                 "&View": (zoom_in, zoom_out, fit, None, next_cycle, previous_cycle, None, self.teachers_action),
                 "&Analysis": (self.play_action, self.explain_action, None, refresh, cancel),
                 "&Training": (self.train_action, experiments)}
        for title, actions in menus.items():
            menu = self.menuBar().addMenu(title)
            menu.setToolTipsVisible(True)  # only actions given a tooltip show one: a disabled action's says why
            for action in actions:
                if action is None:
                    menu.addSeparator()
                elif isinstance(action, QMenu):
                    menu.addMenu(action)
                else:
                    menu.addAction(action)
        about = self._action("&About LungKD Studio", lambda: show_about(self, self.workspace))
        self.menuBar().addMenu("&Help").addAction(about)

        toolbar = QToolBar("Main", movable=False)
        toolbar.setToolButtonStyle(Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.addToolBar(toolbar)
        for action in (self.open_action, self.export_action, self.play_action, self.explain_action,
                       self.train_action):
            toolbar.addAction(action)
        toolbar.addSeparator()
        toolbar.addWidget(QLabel(" Model "))
        self.model_picker = ModelPicker()
        self.model_picker.currentIndexChanged.connect(self._model_chosen)
        self.model_picker.archives_dropped.connect(self.import_models)
        toolbar.addWidget(self.model_picker)
        self.model_notes = ModelNotesLabel()
        toolbar.addWidget(self.model_notes)

    def _build_status_bar(self) -> None:
        self.progress = ProgressBar(maximumWidth=220, textVisible=True)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.queue.cancel_all)
        for widget in (self.progress, self.cancel_button):
            widget.setVisible(False)
            self.statusBar().addPermanentWidget(widget)

    def _update_actions(self) -> None:
        session = self.session
        self.export_action.setEnabled(session.has_analyses())
        self.remove_action.setEnabled(session.current is not None)
        self.play_action.setEnabled(self.player.available and session.current is not None)
        self.play_action.setToolTip(self.player.unavailable_reason or "Play the selected cycle (Space)")
        self.teachers_action.setEnabled(bool(session.teacher_folders))
        self.explain_action.setEnabled(self.recordings.can_explain())
        self.report_action.setEnabled(bool(self.visit_reporter.members()))
        self.teachers_action.setChecked(session.show_teachers)
        self.analyse_folder_action.setEnabled(session.model_folder is not None)
        self.analyse_folder_action.setToolTip("" if session.model_folder else "Choose a model in the toolbar first")

    # ---------------------------------------------------------------- models

    def refresh_models(self) -> None:
        remembered = self.model_picker.currentData() or self.store.value(MODEL_KEY, "")
        entries = find_models(self.workspace, shipped_models_folder())
        self.model_picker.blockSignals(True)
        self.model_picker.clear()
        for entry in entries:
            self._add_model(entry)
        if not any(entry.usable for entry in entries):
            self.model_picker.insertItem(0, "no model yet — train one (lungkd demo)", None)
        usable = [str(entry.path) for entry in entries if entry.usable]
        chosen = str(remembered) if str(remembered) in usable else usable[0] if usable else None
        self.model_picker.setCurrentIndex(max(0, self.model_picker.findData(chosen)))
        self.model_picker.blockSignals(False)
        self.model_picker.describe_current()
        self._model_chosen()

    def _add_model(self, entry: ModelEntry) -> None:
        """A model in the picker; one that cannot be used (a damaged card or file) is listed, greyed, with the
        reason."""
        picker = self.model_picker
        if entry.usable:
            picker.addItem(printable(model_label(entry)), str(entry.path))
            tip = "\n".join(filter(None, (entry.description, f"{entry.arch} model in {entry.path}")))
        else:
            picker.addItem(printable(f"⚠ {entry.name} — unusable: {entry.reason}"), str(entry.path))
            picker.model().item(picker.count() - 1).setEnabled(False)
            tip = str(entry.problem)
        picker.setItemData(picker.count() - 1, f"<qt>{html_text(tip)}</qt>", Qt.ItemDataRole.ToolTipRole)

    def _model_chosen(self) -> None:
        folder = self.model_picker.currentData()
        self.model_notes.show_model(Path(folder) if folder else None)
        if folder:
            self.store.setValue(MODEL_KEY, folder)
        if (Path(folder) if folder else None) != self.session.model_folder:
            self.session.set_model(Path(folder) if folder else None)

    def import_model_dialog(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Import a model", str(self.store.value("last_folder", "")),
                                              ARCHIVE_FILTER)
        if path:
            self.import_models([Path(path)])

    def import_models(self, archives: list[Path]) -> None:
        """Each archive's card in a dialog; the ones imported are added to the workspace's models."""
        for archive in archives:
            self.importer.ask(archive)

    # ---------------------------------------------------------------- opening, exporting

    def dragEnterEvent(self, event) -> None:
        if event.mimeData().hasUrls():
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:
        archives = dropped_archives(event.mimeData())
        self.import_models(archives)
        recordings = [Path(url.toLocalFile()) for url in event.mimeData().urls() if url.isLocalFile()]
        if len(recordings) > len(archives):
            self.open_paths([path for path in recordings if path not in archives])
        event.acceptProposedAction()

    def open_paths(self, paths: list[Path]):
        self.pages.setCurrentWidget(self.recordings)
        self._remember_recent(paths)
        return self.recordings.open_paths(paths)

    def open_dialog(self) -> None:
        files, _ = QFileDialog.getOpenFileNames(self, "Open recordings", str(self.store.value("last_folder", "")),
                                                AUDIO_FILTER)
        if files:
            self.store.setValue("last_folder", str(Path(files[0]).parent))
            self.open_paths([Path(f) for f in files])

    def open_folder_dialog(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of recordings",
                                                  str(self.store.value("last_folder", "")))
        if folder:
            self.store.setValue("last_folder", folder)
            self.open_paths([Path(folder)])

    # ---------------------------------------------------------------- recent files, the last session

    def recent_paths(self) -> list[Path]:
        return [Path(p) for p in self.store.value(RECENT_KEY, [], type=list)]

    def _remember_recent(self, paths: list[Path]) -> None:
        given = [str(Path(p).resolve()) for p in paths]
        kept = [str(p) for p in self.recent_paths() if str(p) not in given]
        self.store.setValue(RECENT_KEY, (given + kept)[:RECENT_COUNT])

    def _fill_recent_menu(self) -> None:
        self.recent_menu.clear()
        for path in self.recent_paths():
            action = self.recent_menu.addAction(f"{path.name}{'/' if path.is_dir() else ''} — {path.parent}",
                                                lambda p=path: self.open_paths([p]))
            action.setEnabled(path.exists())
        if self.recent_menu.isEmpty():
            self.recent_menu.addAction("Nothing opened yet").setEnabled(False)

    def reopen_last_session(self) -> None:
        """Opens again the recordings that were open when this workspace was last closed (those still there)."""
        paths = [Path(p) for p in self.store.value(session_key(self.workspace), [], type=list)]
        present = [p for p in paths if p.exists()]
        if present:
            self.recordings.open_paths(present)
        if len(present) < len(paths):
            self.status_message(f"{len(paths) - len(present)} recording(s) of the last session are no longer there.")

    def analyse_folder_dialog(self) -> FolderAnalysisDialog:
        """Not modal: the window keeps working while a folder is analysed."""
        last = self.store.value("last_folder", "")
        dialog = FolderAnalysisDialog(self.workspace, self.session.model_folder, self.model_picker.currentText(),
                                      Path(last) if last else None, self)
        dialog.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        dialog.show()
        return dialog

    def export_dialog(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Export cycles", "cycles.csv", "CSV (*.csv)")
        if path:
            try:
                self.session.export_csv(Path(path))
            except OSError as exc:
                self.show_error(f"Could not write {path}: {exc.strerror or exc}", str(exc))

    # ---------------------------------------------------------------- progress, errors

    def status_message(self, text: str) -> None:
        self.statusBar().showMessage(printable(text))  # Qt would cut the text at a name's byte that is not UTF-8

    def _progress(self, event) -> None:
        """Any core Event: its message, and its step of total in the progress bar."""
        if event.message:
            self.status_message(event.message)
        if event.total:
            self.progress.setRange(0, event.total)
            self.progress.setValue(event.step or 0)
            self.progress.setFormat("%v of %m" + (f" · {event.eta_s:.0f} s left" if event.eta_s else ""))

    def _busy(self, busy: bool) -> None:
        if not busy:
            self._show_progress.cancel()  # a late progress message must not overwrite the summary below
        for widget in (self.progress, self.cancel_button):
            widget.setVisible(busy)
        if not busy:
            count = len(self.session.recordings)
            failed = len(self.recordings.recording_list.failures)
            self.status_message(f"{count} recording(s) open" + (f", {failed} could not be opened" if failed else ""))
        self._update_actions()

    def show_error(self, message: str, details: str) -> None:
        """Not modal: the window keeps working while the message is up."""
        message, details = printable(message), printable(details)
        box = QMessageBox(QMessageBox.Icon.Warning, "LungKD Studio", message, parent=self)
        box.setTextFormat(Qt.TextFormat.PlainText)  # messages quote file and experiment names: never markup
        box.setDetailedText(details)
        copy = box.addButton("Copy details", QMessageBox.ButtonRole.ActionRole)
        copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(f"{message}\n\n{details}"))
        box.addButton(QMessageBox.StandardButton.Close)
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_error = box

    # ---------------------------------------------------------------- training

    def open_wizard(self) -> TrainingWizard:
        if self.wizard is None:
            self.wizard = TrainingWizard(self.workspace, self, self.queue)
            self.wizard.use_model.connect(self.use_model)
            self.wizard.experiment_ended.connect(self._experiment_ended)
        self.wizard.model_in_use = self.session.model_folder  # what "Adapt a model to these recordings" starts from
        self.wizard.show()
        self.wizard.raise_()
        return self.wizard

    def train_on(self, folder: Path) -> TrainingWizard | None:
        """The wizard with this folder of (corrected) recordings as its data; it trains on the files on disk,
        so unsaved edits are offered for saving first."""
        if not ask_to_save(self, list(self.session.documents.values()), "training on the files on disk"):
            return None
        wizard = self.open_wizard()
        wizard.use_data_folder(folder)
        self.status_message(f"The wizard trains on {folder}.")
        return wizard

    def _experiment_ended(self, finished: bool) -> None:
        """New models and Scores: the picker and the Experiments page show them at once."""
        if finished:
            self.refresh_models()
        self.runs.refresh()

    def use_model(self, folder: str) -> None:
        """A model the wizard just distilled becomes the one that analyses recordings."""
        self.refresh_models()
        self.model_picker.setCurrentIndex(max(0, self.model_picker.findData(folder)))
        self.runs.refresh()
        self.pages.setCurrentWidget(self.recordings)

    def close_recording(self) -> None:
        document = self.session.current_document_or_none()
        if self.session.current is not None and ask_to_save(self, [document] if document else []):
            self.recordings.remove_current()

    def stop_all_work(self, ms: int = 120000) -> bool:
        """Cancels what runs (the analyses, and an experiment with its workers) and waits for it, asking nothing:
        Ctrl-C in the terminal (app.shell.main). False when something still ran after `ms`."""
        self.queue.cancel_all()
        task = self.wizard.task if self.wizard is not None else None
        if task is not None and task.is_running():
            task.cancel()
            task.wait(ms)
        return self.queue.wait_idle(ms) and not (task is not None and task.is_running())

    def closeEvent(self, event) -> None:
        if not ask_to_save(self, list(self.session.documents.values())):
            event.ignore()
            return
        if self.wizard is not None and not self.wizard.close():  # it asks while training runs
            event.ignore()
            return
        self.store.setValue(session_key(self.workspace), [str(p) for p in self.session.recordings])
        self.player.stop()
        self.queue.cancel_all()
        self.queue.wait_idle(30000)
        super().closeEvent(event)
