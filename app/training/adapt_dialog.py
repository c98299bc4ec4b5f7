"""Adapt a model to these recordings: the Studio's face of `lungkd adapt` (core.kd.adapt). A trained model goes on
learning from a folder of annotated recordings (a clinic's own stethoscope), split by patient; the dialog says
what it scored on the held-out patients before and after, and offers the new model for analysis.

Reached from the training wizard's first page, which the review mode's "Train on these recordings" opens with
the reviewed folder."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDialog, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPushButton, QSpinBox, QVBoxLayout)

from lungkd.core.kd.adapt import AdaptSettings, adapt_to_folder, adapted_name
from lungkd.core.kd.store import teachers_for_model
from lungkd.core.models.inventory import find_models, shipped_models_folder

from ..engine import EngineTask
from ..progress_bar import ProgressBar

LAYER_CHOICES = (("last", "The head and the last block (recommended)"), ("head", "The head only"),
                 ("all", "The whole model"))


class AdaptDialog(QDialog):
    use_model = Signal(str)  # the adapted model's folder, for analysis in the main window

    def __init__(self, workspace: Path, model: Path | None = None, folder: Path | None = None, parent=None):
        super().__init__(parent)
        self.workspace = Path(workspace)
        self.task: EngineTask | None = None
        self.adapted: Path | None = None
        self.setWindowTitle("LungKD — adapt a model to these recordings")
        intro = QLabel("A trained model goes on learning from a few annotated recordings, such as those of a new "
                       "stethoscope. Their patients are split: some to learn from, some to calibrate the model's "
                       "probabilities and limits, the rest to test it before and after. The model reads its input "
                       "as before; the adapted one is a new model that names its parent.", wordWrap=True)
        self.model = QComboBox()
        for entry in find_models(self.workspace, shipped_models_folder()):
            self.model.addItem(entry.name, str(entry.path))
        if model is not None:
            self.choose_model(Path(model))
        self.folder = QLineEdit(str(folder) if folder else "")
        self.folder.setPlaceholderText("a folder of recordings with .txt annotations")
        self.folder.textChanged.connect(self._suggest_name)
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.layers = QComboBox()
        for value, text in LAYER_CHOICES:
            self.layers.addItem(text, value)
        self.epochs = QSpinBox(minimum=1, maximum=1000, value=20)
        self.distil = QCheckBox("Also learn from its teachers (half of each target is their ensemble)")
        self.model.currentIndexChanged.connect(self._model_chosen)
        self.name = QLineEdit()
        self.status = QLabel(textFormat=Qt.TextFormat.PlainText, wordWrap=True)  # names files: never markup
        self.bar = ProgressBar()
        self.start_button = QPushButton("Adapt")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel", enabled=False)
        self.cancel_button.clicked.connect(lambda: self.task and self.task.cancel())
        self.use_button = QPushButton("Use the adapted model for analysis", enabled=False)
        self.use_button.clicked.connect(self._use)
        form = QFormLayout()
        form.addRow("Model", self.model)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Recordings", row)
        form.addRow("What learns", self.layers)
        form.addRow("Epochs", self.epochs)
        form.addRow("", self.distil)
        form.addRow("New model's name", self.name)
        buttons = QHBoxLayout()
        for button in (self.start_button, self.cancel_button, self.use_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.bar)
        layout.addWidget(self.status)
        layout.addLayout(buttons)
        self._model_chosen()
        self._suggest_name()
        self.resize(760, 420)

    def choose_model(self, folder: Path) -> None:
        index = self.model.findData(str(folder))
        if index < 0:  # a model outside the workspace: named by its folder
            self.model.addItem(str(folder), str(folder))
            index = self.model.count() - 1
        self.model.setCurrentIndex(index)

    def _model_chosen(self) -> None:
        folder = self.model.currentData()
        has_teachers = bool(folder and teachers_for_model(folder))
        self.distil.setEnabled(has_teachers)
        self.distil.setChecked(self.distil.isChecked() and has_teachers)
        self.distil.setToolTip("" if has_teachers else "Only an experiment's students have their teachers at hand.")

    def _suggest_name(self) -> None:
        text = self.folder.text().strip()
        self.name.setText(adapted_name(text) if text else "")

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Folder of annotated recordings", self.folder.text())
        if folder:
            self.folder.setText(folder)

    def start(self) -> None:
        model, folder, name = self.model.currentData(), self.folder.text().strip(), self.name.text().strip()
        if not model or not folder:
            self.status.setText("Choose a model and a folder of annotated recordings.")
            return
        settings = AdaptSettings(layers=self.layers.currentData(), epochs=self.epochs.value(),
                                 distil=self.distil.isChecked())
        workspace = self.workspace

        def job(report, cancel):
            return adapt_to_folder(Path(model), Path(folder), workspace, name or None, settings, on_progress=report,
                                   cancel=cancel)

        self.status.setText("Reading the recordings…")
        self.bar.reset()
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.use_button.setEnabled(False)
        # not through the window's queue: adapting takes minutes, and the recordings stay analysable meanwhile
        task = EngineTask(job, parent=self)
        task.progress.connect(self._progress)
        task.finished.connect(self._finished)
        task.failed.connect(lambda message, _: self._stopped(message))
        task.cancelled.connect(lambda: self._stopped("Cancelled; nothing was saved."))
        self.task = task.start()

    def _progress(self, progress) -> None:
        if progress.stage == "train" and progress.steps:
            self.bar.setRange(0, progress.epochs * progress.steps)
            self.bar.setValue((progress.epoch - 1) * progress.steps + progress.step)
            self.status.setText(f"Adapting: epoch {progress.epoch} of {progress.epochs}")

    def _finished(self, adaptation) -> None:
        self.adapted = adaptation.folder
        self.bar.setValue(self.bar.maximum())
        self.status.setText("\n".join([*adaptation.summary(), f"Saved to {adaptation.folder}"]))
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.use_button.setEnabled(True)

    def _stopped(self, message: str) -> None:
        self.status.setText(message)
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _use(self) -> None:
        if self.adapted is not None:
            self.use_model.emit(str(self.adapted))
            self.accept()

    def closeEvent(self, event) -> None:
        if self.task is not None and self.task.is_running():
            self.task.cancel()
            self.task.wait(120000)
        super().closeEvent(event)
