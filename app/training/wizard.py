"""The training wizard: Data -> Teachers -> Soft labels -> Student -> Review -> Run -> Results.

Every page edits one experiment recipe (core.recipes); Run drives core.experiment in an EngineTask.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QEventLoop, Qt, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices, QGuiApplication, QValidator
from superqt.utils import qthrottled
from PySide6.QtWidgets import (QAbstractScrollArea, QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout,
                               QHBoxLayout, QLabel, QLineEdit, QMessageBox, QPlainTextEdit, QPushButton,
                               QSizePolicy, QSpinBox, QTableWidget, QTableWidgetItem, QVBoxLayout, QWizard, QWizardPage)

from lungkd.core.data.metadata import SPLIT_FILE
from lungkd.core.data.labelled_folders import FORMAT_NAMES
from lungkd.core.data.sources import data_specs, dataset_label, trainability_problem
from lungkd.core.errors import LungKDError
from lungkd.core.kd.progress import describe
from lungkd.core.kd.report import ExperimentReport
from lungkd.core.kd.store import ExperimentStore, RecipeChangedError, new_experiment_name
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.models.card import read_model_card
from lungkd.core.models.registry import ARCHITECTURES, SIZES
from lungkd.core.workspace.status import gain_text
from lungkd.core.recipes import (ExperimentRecipe, SecondGeneration, SoftLabelSpec, SyntheticData, load_experiment,
                                 recipe_to_toml, shipped_recipes_folder)
from lungkd.core.selection import Selection
from lungkd.core.workspace.layout import MODEL_FOLDER, REPORT_HTML, experiment_folder, student_run_folder, valid_name

from ..engine import EngineTask, TaskQueue
from ..progress_bar import ProgressBar
from .adapt_dialog import AdaptDialog
from .run_styles import RunStyles

SPLIT_TIP = ("Which recordings test the models. official: the dataset's own split (ICBHI's split file, or train and "
             "test folders). patient: patients drawn at random for testing, every recording of a patient on one "
             "side; a folder without an official split always gets it.")
SELECTION_TIP = ("Which epoch of each model is kept. best_test: the best on the test split (the papers' protocol; "
                 "the test Score is then optimistic). best_val: the best on a validation split carved from the "
                 "training patients (honest). last: the last epoch, nothing selected.")
RECIPES_DIR = shipped_recipes_folder()  # the package data, wherever LungKD is installed
START_NEW = "Start as a new experiment"  # the Run button where Resume cannot help: the name is another experiment's
SHOWN_CHANGES = 3  # differences named where a changed recipe meets an experiment of its name
LEGEND_ROWS = 12  # legend entries in one column; more go in two, so the legend stays within the plots' height
LEGEND_TEXT = "#303540"  # darker than pyqtgraph's grey: the legend is read, not glanced at
# where the Run page trains (core.kd.executors); child processes keep the window smooth
EXECUTOR_LABELS = {"process": "child processes on this computer", "inprocess": "the window's own process",
                   "ray": "a Ray cluster"}


def wait_for(task: EngineTask, ms: int) -> bool:
    """Run the event loop until the task is done (its signals keep arriving meanwhile)."""
    if task.is_running():
        loop = QEventLoop()
        task.done.connect(loop.quit)
        QTimer.singleShot(ms, loop.quit)
        loop.exec()
    return not task.is_running()


def _table(headers: list[str], rows: list[list]) -> QTableWidget:
    table = QTableWidget(len(rows), len(headers))
    table.setHorizontalHeaderLabels(headers)
    table.verticalHeader().setVisible(False)
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    fill_table(table, rows)
    return table


def fill_table(table: QTableWidget, rows: list[list]) -> None:
    table.setRowCount(len(rows))
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            text = "—" if value is None else (f"{value:.2f}" if isinstance(value, float) else str(value))
            table.setItem(r, c, QTableWidgetItem(text))
    table.resizeColumnsToContents()


def show_every_row(table: QTableWidget) -> QTableWidget:
    """A table exactly as tall as its rows, so none hides behind a scroll bar and no empty space is left."""
    table.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
    table.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
    table.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Maximum)
    return table


def _reason(problem: tuple[str, str]) -> str:
    message, fix = problem
    return f"{message} {fix[:1].upper()}{fix[1:]}"


class IntegerAxis(pg.AxisItem):
    """An axis of counts (epochs, teachers): ticks only at whole numbers."""

    def tickValues(self, minVal, maxVal, size):
        levels = []
        for spacing, values in super().tickValues(minVal, maxVal, size):
            whole = [v for v in values if abs(v - round(v)) < 1e-9]
            if spacing >= 1 and whole:
                levels.append((spacing, whole))
        return levels or [(1.0, [float(v) for v in range(math.ceil(minVal), math.floor(maxVal) + 1)])]


def _titled(title: str, widget) -> QVBoxLayout:
    column = QVBoxLayout()
    label = QLabel(f"<b>{title}</b>")
    column.addWidget(label)
    column.addWidget(widget)
    return column


class TrainingWizard(QWizard):
    """Holds the recipe being edited; pages read and write it."""

    use_model = Signal(str)  # a student's model folder, for analysis in the main window
    experiment_ended = Signal(bool)  # True when it finished, False when it failed or was cancelled

    def __init__(self, workspace: Path, parent=None, queue: TaskQueue | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.queue = queue or TaskQueue(self)  # the window's, so short engine calls never overlap its analyses
        self.setWindowTitle("LungKD — train and distil")
        self.resize(1000, 720)
        self.recipe: ExperimentRecipe = load_experiment(RECIPES_DIR / "demo-cpu.toml")
        self.task: EngineTask | None = None
        self.report: ExperimentReport | None = None
        self.pages = [DataPage(), TeachersPage(), SoftLabelsPage(), StudentPage(), ReviewPage(), RunPage(),
                      ResultsPage()]
        for page in self.pages:
            self.addPage(page)
        review = self.pages[4]
        self.currentIdChanged.connect(lambda _: self.currentPage() is review and review.propose_free_name())
        self.model_in_use: Path | None = None  # the main window's, for adapting
        self.adaptation: AdaptDialog | None = None
        self._offer_adaptation()

    def _offer_adaptation(self) -> None:
        """The other way to train on a folder, beside the first page's Next: adapt a trained model to it."""
        self.setOption(QWizard.WizardOption.HaveCustomButton1, True)
        self.setButtonText(QWizard.WizardButton.CustomButton1, "Adapt a model to these recordings…")
        self.button(QWizard.WizardButton.CustomButton1).setToolTip(
            "Fine-tune a trained model (the one in use, or another) on this folder's annotated recordings, instead "
            "of training teachers and a student from scratch")
        self.customButtonClicked.connect(lambda which: which == QWizard.WizardButton.CustomButton1.value
                                         and self.open_adaptation())
        self.currentIdChanged.connect(lambda page: self.button(QWizard.WizardButton.CustomButton1).setVisible(
            page == self.startId()))

    def open_adaptation(self) -> AdaptDialog:
        """The adaptation dialog, with the model in use and the first page's folder."""
        folder = self.pages[0].folder.text().strip() or self.recipe.data.path
        self.adaptation = AdaptDialog(self.workspace, self.model_in_use, Path(folder) if folder else None, self)
        self.adaptation.use_model.connect(self.use_model)
        self.adaptation.show()
        return self.adaptation

    def use_data_folder(self, folder: Path) -> None:
        """Train on a folder of recordings (e.g. the ones just reviewed), under a new experiment name: the
        folder's annotations changed, and an experiment refuses changed data. The folder's split file decides the
        split; without one it is patient-wise."""
        folder = Path(folder)
        split = "official" if next(folder.rglob(SPLIT_FILE), None) else "patient"
        data = data_specs(self.recipe.data)[0].replace(path=str(folder), synthetic=None, split=split, name=None)
        name = valid_name(folder.name, time.strftime("-%Y%m%d-%H%M%S"))
        self.recipe = self.recipe.replace(data=data, name=name)
        self.pages[0].clear_inspection()  # the old table described other data
        self.restart()

    def load_recipe(self, path: Path) -> None:
        self.recipe = load_experiment(path)
        self.pages[0].clear_inspection()  # the old table described other data
        for page in self.pages:
            page.show_recipe(self.recipe)

    def closeEvent(self, event) -> None:
        if self.task is not None and self.task.is_running():
            answer = QMessageBox.question(self, "LungKD", "Training is running. Stop it? It resumes from where it "
                                          "stopped the next time you run the same recipe.")
            if answer != QMessageBox.StandardButton.Yes:
                event.ignore()
                return
            self.task.cancel()
            wait_for(self.task, 120000)
        super().closeEvent(event)


class RecipePage(QWizardPage):
    def wizard_(self) -> TrainingWizard:
        return self.wizard()

    def initializePage(self) -> None:
        self.show_recipe(self.wizard_().recipe)

    def show_recipe(self, recipe: ExperimentRecipe) -> None:
        """Fill the page's fields from the recipe."""

    def validatePage(self) -> bool:
        try:
            self.wizard_().recipe = self.updated(self.wizard_().recipe)
        except Exception as exc:  # a recipe error names the key; show it on the page
            self.error.setText(str(exc))
            return False
        self.error.setText("")
        return True

    def updated(self, recipe: ExperimentRecipe) -> ExperimentRecipe:
        return recipe

    def _error_label(self) -> QLabel:
        self.error = QLabel(textFormat=Qt.TextFormat.PlainText)  # errors quote names: shown, never markup
        self.error.setStyleSheet("color: #c0392b")
        self.error.setWordWrap(True)
        return self.error


def _arch_combo() -> QComboBox:
    combo = QComboBox()
    combo.addItems(ARCHITECTURES)
    return combo


def _spin(low: int, high: int, value: int = 0) -> QSpinBox:
    spin = QSpinBox()
    spin.setRange(low, high)
    spin.setValue(value)
    return spin


def rate_text(value: float) -> str:
    """A learning rate as people write it: 1e-3, 5e-5, 2.5e-4; 0.1 and above as decimals."""
    if value >= 0.1:
        return f"{value:g}"
    mantissa, exponent = f"{value:.6e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


class RateSpin(QDoubleSpinBox):
    """A learning rate shown and typed as written (1e-3); the arrows double or halve it."""

    def __init__(self, value: float):
        super().__init__()
        self.setDecimals(12)  # what is kept, not what is shown
        self.setRange(1e-7, 1.0)
        self.setValue(value)

    def textFromValue(self, value: float) -> str:
        return rate_text(value)

    def valueFromText(self, text: str) -> float:
        return float(text)

    def validate(self, text: str, position: int):
        try:
            inside = self.minimum() <= float(text) <= self.maximum()
        except ValueError:  # "1e-" on the way to "1e-4"
            inside = False
        return (QValidator.State.Acceptable if inside else QValidator.State.Intermediate), text, position

    def stepBy(self, steps: int) -> None:
        for _ in range(abs(steps)):  # each step by the value itself, or by its half going down
            self.setSingleStep(self.value() if steps > 0 else self.value() / 2)
            super().stepBy(1 if steps > 0 else -1)


class DataPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Data")
        self.setSubTitle("Choose the recordings: ICBHI, SPRSound, HF_Lung, a label table or Audacity label tracks, "
                         "recognised by what the folder holds.")
        self.preset = QComboBox()
        self.preset.addItems(sorted(p.stem for p in RECIPES_DIR.glob("*.toml")))
        self.preset.setCurrentText("demo-cpu")
        load = QPushButton("Start from this recipe")
        load.clicked.connect(lambda: self.wizard_().load_recipe(RECIPES_DIR / f"{self.preset.currentText()}.toml"))
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("ICBHI_final_database, SPRSound, HF_Lung_V1, or recordings with their labels")
        self.folder.textEdited.connect(lambda _: self._folder_chosen())  # typing a folder chooses it
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.synthetic = QCheckBox("Generated synthetic dataset with")
        self.recordings = _spin(4, 5000, 48)
        self.split = QComboBox()
        self.split.addItems(["official", "patient"])
        self.split.setToolTip(SPLIT_TIP)
        self.split_note = QLabel()  # what the chosen split holds out for testing
        self.split.currentTextChanged.connect(lambda _: self._show_split_note())
        self.selection = QComboBox()
        self.selection.addItems([s.value for s in Selection])
        self.selection.setToolTip(SELECTION_TIP)
        self.inspect = QPushButton("Inspect")
        self.inspect.clicked.connect(self._inspect)
        self.counts = show_every_row(_table(["split", *CLASS_NAMES, "total", "with audio"], []))
        self.detected = QLabel(wordWrap=True)
        self.mapping = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)  # labels -> classes, left out
        self.warnings = QPlainTextEdit(readOnly=True)  # every warning Inspect found, one per line
        self.warnings.setPlaceholderText("Warnings about the dataset appear here after Inspect.")
        self.stats: dict | None = None
        self.inspected: str | None = None  # the data and selection the stats describe
        self._advance_when_inspected = False
        form = QFormLayout(self)
        row = QHBoxLayout()
        row.addWidget(self.preset, 1)
        row.addWidget(load)
        form.addRow("Recipe", row)
        row = QHBoxLayout()
        row.addWidget(self.folder, 1)
        row.addWidget(browse)
        form.addRow("Folder", row)
        row = QHBoxLayout()
        row.addWidget(self.synthetic)
        row.addWidget(self.recordings)
        row.addWidget(QLabel("recordings"))
        row.addStretch(1)
        form.addRow("", row)
        row = QHBoxLayout()
        row.addWidget(self.split)
        row.addWidget(self.split_note, 1)
        form.addRow("Split", row)
        form.addRow("Checkpoint selection", self.selection)
        form.addRow(self.inspect, self.detected)
        form.addRow(self.counts)
        form.addRow(self.mapping)
        form.addRow("Warnings", self.warnings)
        form.addRow(self._error_label())

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder")
        if folder:
            self.folder.setText(folder)
            self._folder_chosen()
            self._inspect()  # shows at once what the folder holds and the split it gets

    def _folder_chosen(self) -> None:
        """A folder replaces the generated dataset, and takes its own split (the CPU demo splits its generated
        recordings by patient)."""
        self.synthetic.setChecked(False)
        self.split.setCurrentText("official")

    def show_recipe(self, recipe: ExperimentRecipe) -> None:
        pooled = isinstance(recipe.data, tuple)  # several [[data]] tables: changed in the recipe file, shown here
        for widget in (self.folder, self.synthetic, self.recordings, self.split):
            widget.setEnabled(not pooled)
        self.selection.setCurrentText(recipe.selection)
        if pooled:
            self.folder.setText(f"{dataset_label(recipe.data)} (the recipe's {len(recipe.data)} datasets)")
            return
        self.synthetic.setChecked(recipe.data.synthetic is not None)
        if recipe.data.synthetic:
            self.recordings.setValue(recipe.data.synthetic.recordings)
        self.folder.setText(recipe.data.path or "")
        self.split.setCurrentText(recipe.data.split)
        self._show_split_note()

    def _show_split_note(self) -> None:
        data = self.wizard_().recipe.data if self.wizard() is not None else None
        fraction = data.test_fraction if data is not None and not isinstance(data, tuple) else 0.4
        self.split_note.setText(f"{fraction:.0%} of the patients held out for testing, drawn at random"
                                if self.split.currentText() == "patient" else
                                "the dataset's own train and test recordings (its split file or folders)")

    def updated(self, recipe: ExperimentRecipe) -> ExperimentRecipe:
        if isinstance(recipe.data, tuple):
            return recipe.replace(selection=self.selection.currentText())
        if self.synthetic.isChecked():
            old = recipe.data.synthetic or SyntheticData()
            data = recipe.data.replace(path=None, synthetic=old.replace(recordings=self.recordings.value()),
                                       split=self.split.currentText())
        else:
            if not self.folder.text().strip():
                raise ValueError("Choose a dataset folder, or the generated synthetic dataset.")
            data = recipe.data.replace(path=self.folder.text().strip(), synthetic=None, split=self.split.currentText())
        return recipe.replace(data=data, selection=self.selection.currentText())

    def clear_inspection(self) -> None:
        """Forgets what the last Inspect found: it described other data."""
        self.stats, self.inspected = None, None
        fill_table(self.counts, [])
        self.warnings.clear()
        self.detected.setText("")
        self.mapping.setText("")
        self.error.setText("")

    def _inspection_key(self) -> str:
        recipe = self.wizard_().recipe
        return recipe.model_dump_json(include={"data", "selection"})

    def validatePage(self) -> bool:
        """Goes on only with data the chosen selection can train on: a folder is inspected first, and a split
        the selection needs without cycles that have audio is refused with the reason."""
        if not super().validatePage():
            return False
        if self.synthetic.isChecked():
            return True  # generated datasets have audio in every split
        if self.stats is None or self.inspected != self._inspection_key():
            self._advance_when_inspected = True
            self._inspect()
            return False
        problem = trainability_problem(self.stats, self.wizard_().recipe.selection)
        if problem is not None:
            self.error.setText(_reason(problem))
            return False
        return True

    def _inspect(self) -> None:
        if not RecipePage.validatePage(self):
            self._advance_when_inspected = False
            return
        recipe = self.wizard_().recipe
        workspace = self.wizard_().workspace
        key = self._inspection_key()

        def job(report, cancel):
            from lungkd.core.data.sources import resolve_dataset, with_the_folders_split

            data = with_the_folders_split(recipe.data)
            return data, resolve_dataset(data, workspace, selection=recipe.selection).stats()

        self.clear_inspection()
        self.detected.setText("Reading the dataset…")
        task = EngineTask(job, "Reading the dataset")
        task.finished.connect(lambda result: self._inspected(*result, key))
        task.failed.connect(self._inspection_failed)
        self.wizard_().queue.submit(task)

    def _inspected(self, data, stats: dict, key: str) -> None:
        """Takes the split the folder allows (patient-wise where it has no official split), then shows the stats."""
        wizard = self.wizard_()
        if data != wizard.recipe.data and key == self._inspection_key():
            wizard.recipe = wizard.recipe.replace(data=data)
            self.split.setCurrentText(data.split)
            key = self._inspection_key()
        self.show_stats(stats, key)

    def _inspection_failed(self, message: str, details: str) -> None:
        self._advance_when_inspected = False
        self.detected.setText("")
        self.error.setText(message)

    def show_stats(self, stats: dict, key: str | None = None) -> None:
        usable = stats["cycles_with_audio"]
        rows = [[split, *counts.values(), sum(counts.values()), usable.get(split, 0)]
                for split, counts in stats["cycles"].items()]
        fill_table(self.counts, rows)
        kind = self.data_kind(stats, self.wizard_().recipe.data)
        self.mapping.setText(self.mapping_text(stats))
        count = len(stats["warnings"])
        self.detected.setText(f"{kind}: {stats['recordings']} recordings ({stats['recordings_with_audio']} with "
                              f"audio) of {stats['patients']} patients; "
                              + (f"{count} warning(s), listed below" if count else "no warnings"))
        self.warnings.setPlainText("\n".join(stats["warnings"]))
        self.stats, self.inspected = stats, key
        advance, self._advance_when_inspected = self._advance_when_inspected, False
        problem = trainability_problem(stats, self.wizard_().recipe.selection)
        self.error.setText(_reason(problem) if problem else "")
        if advance and problem is None and self.wizard_().currentPage() is self:
            self.wizard_().next()

    @staticmethod
    def data_kind(stats: dict, data=None) -> str:
        """What the folder is, in a few words; generated recordings (the recipe's `data`) are said to be."""
        if stats.get("datasets"):
            return f"{len(stats['datasets'])} datasets pooled"
        if data is not None and not isinstance(data, tuple) and data.synthetic is not None:
            split = "split by patient" if data.split == "patient" else "with the split they were generated with"
            return f"Generated recordings in the {FORMAT_NAMES[stats['format']]}, {split}"
        if stats["split_file"]:
            return "ICBHI layout with its official split"
        if stats["format"] == "icbhi":
            return "a folder without a split file"
        split = "its official split (train and test folders)" if stats["official_split"] else "no official split"
        name = FORMAT_NAMES[stats["format"]]
        return f"{name[:1].upper()}{name[1:]} with {split}"

    @staticmethod
    def mapping_text(stats: dict) -> str:
        """How the folder's labels became the four classes, and what was left out and why."""
        lines = []
        if stats["labels"]:
            lines.append("Labels: " + ", ".join(f"{row['label']} → {row['class']} ({row['count']})"
                                                for row in stats["labels"]))
        if stats["left_out"]:
            lines.append("Left out: " + "; ".join(f"{row['what']} {row['why']}: {row['amount']:g}"
                                                  for row in stats["left_out"]))
        return "\n".join(lines)


class TeachersPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Teachers")
        self.setSubTitle("k models of one architecture, seeds 1..k, trained on the hard labels.")
        self.arch, self.size = _arch_combo(), QComboBox()
        self.size.addItems(SIZES)
        self.pretrained = QLineEdit()
        self.pretrained.setPlaceholderText("Hugging Face id or local folder; empty = random initialisation")
        self.k = _spin(1, 100, 5)
        self.epochs = _spin(1, 1000, 50)
        self.batch = _spin(1, 1024, 8)
        self.lr = RateSpin(5e-5)
        self.device = QComboBox()
        self.device.addItems(["auto", "cpu", "cuda"])
        self.estimate = QLabel("—")
        measure = QPushButton("Estimate time")
        measure.clicked.connect(self._estimate)
        form = QFormLayout(self)
        for label, widget in (("Architecture", self.arch), ("Size", self.size), ("Pretrained weights", self.pretrained),
                              ("Teachers (k)", self.k), ("Epochs", self.epochs), ("Batch size", self.batch),
                              ("Learning rate", self.lr), ("Device", self.device)):
            form.addRow(label, widget)
        form.addRow(measure, self.estimate)
        form.addRow(self._error_label())

    def show_recipe(self, recipe: ExperimentRecipe) -> None:
        t, train = recipe.teachers, recipe.teachers.train
        self.arch.setCurrentText(t.arch)
        self.size.setCurrentText(t.size)
        self.pretrained.setText(t.pretrained or "")
        self.k.setValue(t.k)
        self.epochs.setValue(train.epochs)
        self.batch.setValue(train.batch_size)
        self.lr.setValue(train.lr)
        self.device.setCurrentText(recipe.device)

    def updated(self, recipe: ExperimentRecipe) -> ExperimentRecipe:
        train = recipe.teachers.train.replace(epochs=self.epochs.value(), batch_size=self.batch.value(),
                                              lr=self.lr.value())
        k = self.k.value()
        teachers = recipe.teachers.replace(arch=self.arch.currentText(), size=self.size.currentText(),
                                           pretrained=self.pretrained.text().strip() or None, k=k, train=train)
        # fewer teachers: soft labels and the curated ensemble take at most k of them (the next page shows it)
        students = tuple(s.replace(labels=_at_most(s.soft_labels, k)) for s in recipe.students)
        ensembles = recipe.ensembles.replace(curated_k=min(recipe.ensembles.curated_k, k))
        return recipe.replace(teachers=teachers, students=students, ensembles=ensembles,
                              device=self.device.currentText())

    def _estimate(self) -> None:
        arch, size, batch, device = (self.arch.currentText(), self.size.currentText(), self.batch.value(),
                                     self.device.currentText())
        stats = self.wizard_().pages[0].stats
        cycles = stats["cycles_with_audio"]["train"] if stats else 4142  # ICBHI's training cycles
        epochs, k = self.epochs.value(), self.k.value()

        def job(report, cancel):
            from lungkd.core.training.estimates import training_seconds, training_throughput

            rate = training_throughput(arch, size, min(batch, 16), device)
            return rate, training_seconds(cycles, epochs, k, rate)

        self.estimate.setText("measuring one training step…")
        task = EngineTask(job, "Measuring one training step")
        task.finished.connect(lambda r: self.estimate.setText(
            f"≈ {r[1] / 3600:.1f} h for {k} teachers ({r[0]:.1f} cycles/s measured here on {device}, "
            f"{cycles} training cycles)"))
        task.failed.connect(lambda message, _: self.estimate.setText(message))
        self.wizard_().queue.submit(task)


def name_taken_by(workspace: Path, recipe: ExperimentRecipe) -> str:
    """How `recipe` differs, in words, from the experiment of its name that was started with another recipe; empty
    when the name is free or continues the same recipe. The first few differences are named, the rest counted. A
    damaged experiment folder says so instead."""
    try:
        changes = ExperimentStore(workspace, recipe).changes()
    except LungKDError as exc:
        return exc.problem.message.rstrip(".")
    more = len(changes) - SHOWN_CHANGES
    return "; ".join(changes[:SHOWN_CHANGES]) + (f"; and {more} other setting{'s' * (more > 1)}" if more > 0 else "")


def _at_most(labels: SoftLabelSpec, k: int) -> str:
    """The soft-label mode with at most k teachers (the ablations use none)."""
    return labels.name if labels.k <= k else f"{labels.mode}_{k}"


class SoftLabelsPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Soft labels")
        self.setSubTitle("How the teachers' logits become the student's targets.")
        self.mode = QComboBox()
        self.mode.addItems(["mean", "random", "curated"])
        self.k = _spin(1, 100, 5)
        self.help = QLabel("mean: softmax of the mean logit of the first k teachers · random: one of the first k "
                           "teachers per cycle, drawn anew every epoch · curated: the k teachers with the best Score")
        self.help.setWordWrap(True)
        form = QFormLayout(self)
        form.addRow("Mode", self.mode)
        form.addRow("k", self.k)
        form.addRow(self.help)
        form.addRow(self._error_label())

    def show_recipe(self, recipe: ExperimentRecipe) -> None:
        spec = SoftLabelSpec.parse(recipe.students[0].labels) if recipe.students else SoftLabelSpec("mean", 1)
        self.mode.setCurrentText(spec.mode if spec.mode in ("mean", "random", "curated") else "mean")
        self.k.setValue(max(1, spec.k))
        self.k.setMaximum(recipe.teachers.k)

    def updated(self, recipe: ExperimentRecipe) -> ExperimentRecipe:
        labels = f"{self.mode.currentText()}_{self.k.value()}"
        students = tuple(s.replace(labels=labels) for s in recipe.students)
        curated_k = self.k.value() if self.mode.currentText() == "curated" else recipe.ensembles.curated_k
        return recipe.replace(students=students, ensembles=recipe.ensembles.replace(curated_k=curated_k))


class StudentPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Student")
        self.setSubTitle("Any architecture, trained on the soft labels alone.")
        self.arch, self.size = _arch_combo(), QComboBox()
        self.size.addItems(SIZES)
        self.pretrained = QLineEdit()
        self.seeds = QLineEdit()
        self.baseline = QCheckBox("Also train it on the hard labels (the baseline for the gain)")
        self.second = QCheckBox("Form the second-generation ensemble of the students (BTS-d++)")
        self.epochs, self.batch, self.lr = _spin(1, 1000, 50), _spin(1, 1024, 8), RateSpin(5e-5)
        form = QFormLayout(self)
        for label, widget in (("Architecture", self.arch), ("Size", self.size), ("Pretrained weights", self.pretrained),
                              ("Seeds", self.seeds), ("Epochs", self.epochs), ("Batch size", self.batch),
                              ("Learning rate", self.lr)):
            form.addRow(label, widget)
        form.addRow(self.baseline)
        form.addRow(self.second)
        form.addRow(self._error_label())

    def show_recipe(self, recipe: ExperimentRecipe) -> None:
        s = recipe.students[0] if recipe.students else None
        if s is None:
            return
        self.arch.setCurrentText(s.arch)
        self.size.setCurrentText(s.size)
        self.pretrained.setText(s.pretrained or "")
        self.seeds.setText(", ".join(map(str, s.seeds)))
        self.baseline.setChecked(s.baseline)
        self.second.setChecked(recipe.second_generation.student == 1)
        self.epochs.setValue(s.train.epochs)
        self.batch.setValue(s.train.batch_size)
        self.lr.setValue(s.train.lr)

    def updated(self, recipe: ExperimentRecipe) -> ExperimentRecipe:
        try:
            seeds = tuple(int(s) for s in self.seeds.text().replace(",", " ").split())
        except ValueError:
            raise ValueError("Seeds must be whole numbers, e.g. 1, 2, 3.") from None
        if not seeds:
            raise ValueError("Give at least one seed, e.g. 1, 2, 3.")
        base = recipe.students[0]
        student = base.replace(arch=self.arch.currentText(), size=self.size.currentText(),
                               pretrained=self.pretrained.text().strip() or None, seeds=seeds,
                               baseline=self.baseline.isChecked(),
                               train=base.train.replace(epochs=self.epochs.value(), batch_size=self.batch.value(),
                                                        lr=self.lr.value()))
        return recipe.replace(students=(student,),
                              second_generation=SecondGeneration(student=1 if self.second.isChecked() else 0))


class ReviewPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Review")
        self.setSubTitle("The recipe that will run. Save it to run it again, or headless with `lungkd run`.")
        self.name = QLineEdit()
        self.text = QPlainTextEdit()
        self.text.setReadOnly(True)
        save = QPushButton("Save as TOML…")
        save.clicked.connect(self._save)
        self.note = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)  # why the name was changed
        self.note.setStyleSheet("color: #9a6700")
        self.note.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)  # all its lines, not one
        layout = QFormLayout(self)
        layout.addRow("Experiment name", self.name)
        layout.addRow(self.note)
        layout.addRow(self.text)
        layout.addRow(save)
        layout.addRow(self._error_label())
        self.name.textChanged.connect(lambda _: self._refresh())

    def show_recipe(self, recipe: ExperimentRecipe) -> None:
        self.name.setText(recipe.name)
        self.text.setPlainText(recipe_to_toml(recipe))

    def propose_free_name(self) -> None:
        """A recipe whose name belongs to an experiment started with another recipe (other data, say) gets a new
        name, and the note says why: running it under the old name could only be refused. Asked each time the page
        is shown, coming back from a refused Run too."""
        self.note.setText("")
        try:
            recipe = self.updated(self.wizard_().recipe)
        except ValueError:  # a name that cannot be a folder: the error line already says so
            return
        changes = name_taken_by(self.wizard_().workspace, recipe)
        if changes:
            name = new_experiment_name(self.wizard_().workspace, recipe)
            self.name.setText(name)
            self.note.setText(f"An experiment named '{recipe.name}' was started with another recipe: {changes}. This "
                              f"one is named '{name}' so that both are kept; to continue '{recipe.name}' instead, go "
                              "back and restore its recipe.")

    def validatePage(self) -> bool:
        return super().validatePage() and not self._refresh()

    def _refresh(self) -> str:
        """Shows the recipe as it will run, or says why it cannot (returned, empty when it can)."""
        if self.wizard() is None:
            return ""
        try:
            recipe = self.updated(self.wizard_().recipe)
            self.text.setPlainText(recipe_to_toml(recipe))
            changes = name_taken_by(self.wizard_().workspace, recipe)
            self.error.setText(f"An experiment named '{recipe.name}' was started with another recipe: {changes}. "
                               "Choose another name to start a new experiment." if changes else "")
        except Exception as exc:  # a name that cannot be a folder: say so while it is typed
            self.error.setText(str(exc))
        return self.error.text()

    def updated(self, recipe: ExperimentRecipe) -> ExperimentRecipe:
        return recipe.replace(name=self.name.text().strip() or recipe.name)  # validated as a loaded file is

    def save_to(self, path: Path) -> None:
        path.write_text(recipe_to_toml(self.updated(self.wizard_().recipe)), encoding="utf-8")

    def _save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save recipe", f"{self.name.text()}.toml", "TOML (*.toml)")
        if path:
            self.save_to(Path(path))


def _curve_look(style, marker: bool = True) -> dict:
    """pyqtgraph's arguments for a curve drawn in a run's style (markers on the Score curve, at each epoch)."""
    look = {"pen": pg.mkPen(style.colour, width=2, style=style.line)}
    if marker:
        look.update(symbol=style.marker, symbolSize=7, symbolBrush=style.colour, symbolPen=style.colour)
    return look


class RunPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Run")
        self.setSubTitle("Stages with progress; closing or cancelling keeps what is finished.")
        self.stage = QLabel("Not started", textFormat=Qt.TextFormat.PlainText)
        self.bar = ProgressBar()
        self.eta = QLabel()
        self.curves = pg.GraphicsLayoutWidget()
        self.curves.setBackground("w")
        self.loss_plot = self.curves.addPlot(title="loss per epoch", axisItems={"bottom": IntegerAxis("bottom")})
        self.score_plot = self.curves.addPlot(title="test Score per epoch",
                                              axisItems={"bottom": IntegerAxis("bottom")})
        for plot in (self.loss_plot, self.score_plot):
            plot.setLabel("bottom", "epoch")
        # The legends in columns of their own, at their own size, so they never cover a curve: the kinds of run
        # (their colours), then the seeds (their lines and markers).
        self.legend, self.seed_legend = pg.LegendItem(labelTextColor=LEGEND_TEXT), pg.LegendItem(
            labelTextColor=LEGEND_TEXT)
        for column, legend in enumerate((self.legend, self.seed_legend), start=2):
            legend.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
            self.curves.addItem(legend, row=0, col=column)
            self.curves.ci.layout.setAlignment(legend, Qt.AlignmentFlag.AlignTop)
        self.series: dict[str, tuple[list, list, list, object, object]] = {}
        self.styles = RunStyles()
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.executor = QComboBox()
        for name, label in EXECUTOR_LABELS.items():
            self.executor.addItem(label, name)
        self.address = QLineEdit()  # shown for Ray only
        self.address.setPlaceholderText("Ray address: empty starts one here · auto · ray://HOST:10001")
        self.address.setToolTip("Leave empty to start Ray on this computer; auto joins the Ray cluster this computer "
                                "belongs to (`ray start`); ray://HOST:10001 joins one from outside. The workspace must "
                                "be on storage every node mounts at the same path.")
        self.executor.currentIndexChanged.connect(
            lambda _: self.address.setVisible(self.executor.currentData() == "ray"))
        self.address.setVisible(False)
        self.address.setMinimumWidth(self.address.fontMetrics().horizontalAdvance(self.address.placeholderText()) + 24)
        self.details = ""  # the last failure's traceback, for "Copy details"
        self.copy_details = QPushButton("Copy error details")
        self.copy_details.clicked.connect(lambda: QGuiApplication.clipboard().setText(self.details))
        self.copy_details.setVisible(False)
        self.ran: ExperimentRecipe | None = None  # the recipe the Run button last started
        self.start_button = QPushButton("Run")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(QLabel("Train in"))
        buttons.addWidget(self.executor)
        buttons.addWidget(self.address)
        buttons.addStretch(1)
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.copy_details)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        for widget in (self.stage, self.bar, self.eta):
            layout.addWidget(widget)
        layout.addWidget(self.curves, 2)
        layout.addWidget(self.log, 1)
        layout.addLayout(buttons)
        layout.addWidget(self._error_label())
        self.finished_ok = False
        self._show_progress = qthrottled(self._progress_now, timeout=100, parent=self)  # one event per step

    def isComplete(self) -> bool:
        return self.finished_ok

    def show_recipe(self, recipe: ExperimentRecipe) -> None:
        self.executor.setCurrentIndex(self.executor.findData(recipe.executor_name))

    def initializePage(self) -> None:
        """Another recipe (a new name) starts afresh: the last one's error, log, curves and Resume are forgotten."""
        super().initializePage()
        if self.ran is not None and self.ran != self.wizard_().recipe and not self._running():
            self.reset()

    def _running(self) -> bool:
        task = self.wizard_().task
        return task is not None and task.is_running()

    def reset(self) -> None:
        self.ran, self.finished_ok, self.details = None, False, ""
        self.stage.setText("Not started")
        self.bar.reset()
        self.eta.setText("")
        self.log.clear()
        self.error.setText("")
        self.copy_details.setVisible(False)
        self.start_button.setText("Run")
        self.start_button.setEnabled(True)
        self.legend.clear()
        self.seed_legend.clear()
        for plot in (self.loss_plot, self.score_plot):
            plot.clear()
        self.series.clear()
        self.styles.clear()
        self.completeChanged.emit()

    def start(self) -> None:
        wizard = self.wizard_()
        wizard.recipe = wizard.recipe.replace(executor=self.executor.currentData())  # saved with the recipe
        if self.start_button.text() == START_NEW:  # the name is another experiment's: this recipe starts anew
            wizard.recipe = wizard.recipe.replace(name=new_experiment_name(wizard.workspace, wizard.recipe))
            self.log.appendPlainText(f"Started as the new experiment '{wizard.recipe.name}'.")
        recipe, workspace = wizard.recipe, wizard.workspace
        address = self.address.text().strip() or None if recipe.executor == "ray" else None
        self.ran = recipe

        def job(report, cancel):
            from lungkd.core.kd.executors import create_executor
            from lungkd.core.kd.experiment import Experiment

            executor = create_executor(recipe.executor, workers=recipe.workers, address=address)
            try:
                return Experiment(recipe, workspace, on_event=report, cancel=cancel, executor=executor).run()
            finally:
                executor.close()

        self.error.setText("")
        self.copy_details.setVisible(False)
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        # Deliberately not through the window's task queue: an experiment trains for minutes to days, and the
        # recordings must stay analysable meanwhile.
        task = EngineTask(job, parent=self)
        task.progress.connect(self.on_event)
        task.finished.connect(self._finished)
        task.failed.connect(self._failed)
        task.cancelled.connect(self._cancelled)
        wizard.task = task.start()

    def cancel(self) -> None:
        if self.wizard_().task is not None:
            self.wizard_().task.cancel()
            self.stage.setText("Cancelling after the current step…")

    def on_event(self, event) -> None:
        if event.kind == "progress" and event.stage == "experiment":
            self._show_time_left(event)
            return
        if event.kind == "progress" and event.total:
            self._show_progress(event)
            return
        if event.kind == "metrics" and "epoch" in event.data and event.run:
            self._plot(event.run, event.data)
        if (sentence := describe(event)) is not None:
            self.log.appendPlainText(sentence)

    def _show_time_left(self, event) -> None:
        minutes = event.eta_s / 60
        left = f"About {minutes:.0f} min" if minutes >= 2 else "Under 2 min" if minutes >= 1 else "Under a minute"
        self.eta.setText(f"{left} left for the whole experiment ({event.step} of {event.total} models trained; "
                         "data preparation and evaluation come on top).")

    def _progress_now(self, event) -> None:
        what = event.run or event.message or event.stage
        self.stage.setText(f"{event.stage.capitalize()}: {what}")
        self.bar.setMaximum(event.total)
        self.bar.setValue(event.step)

    def _plot(self, run: str, data: dict) -> None:
        if run not in self.series:
            entries = len(self.styles.kinds), len(self.styles.seeds)
            style = self.styles.style(run)
            loss_curve = self.loss_plot.plot(**_curve_look(style, marker=False))
            score_curve = self.score_plot.plot(**_curve_look(style))
            self.series[run] = ([], [], [], loss_curve, score_curve)
            if (len(self.styles.kinds), len(self.styles.seeds)) != entries:
                self._fill_legend()
        epochs, losses, scores, loss_curve, score_curve = self.series[run]
        epochs.append(data["epoch"])
        losses.append(data["loss"])
        scores.append(((data.get("test") or {}).get("score")) or 0.0)
        loss_curve.setData(epochs, losses)
        score_curve.setData(epochs, scores)

    def _fill_legend(self) -> None:
        """One entry per kind of run (its colour), and one per seed (its line and marker) beside them."""
        for legend, entries in ((self.legend, self.styles.kind_styles()), (self.seed_legend, self.styles.seed_styles())):
            legend.clear()
            legend.setColumnCount(1 if len(entries) <= LEGEND_ROWS else 2)
            for name, style in entries:
                legend.addItem(pg.PlotDataItem(**_curve_look(style, marker=bool(style.marker))), name)

    def _finished(self, report: dict) -> None:
        self._show_progress.cancel()  # a late progress event must not overwrite "Finished"
        self.wizard_().report = report
        self.finished_ok = True
        self.stage.setText("Finished")
        self.eta.setText("")
        self.cancel_button.setEnabled(False)
        self.completeChanged.emit()
        self.wizard_().experiment_ended.emit(True)

    def _stopped(self, stage: str) -> None:
        self._show_progress.cancel()
        self.stage.setText(stage)
        self.eta.setText("")
        self.start_button.setText("Resume")
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.wizard_().experiment_ended.emit(False)

    def _failed(self, message: str, details: str) -> None:
        self.error.setText(message)
        self.log.appendPlainText("Stopped by an error; the reason is below.")
        self.details = f"{message}\n\n{details}"
        self.copy_details.setVisible(True)
        if isinstance(self.wizard_().task.error, RecipeChangedError):  # Resume would be refused the same way
            self._stopped("Stopped: the name is another experiment's, so Resume cannot help; start this recipe as a "
                          "new experiment.")
            self.start_button.setText(START_NEW)
            return
        self._stopped("Stopped by an error: correct what it names, then press Resume (nothing finished is lost).")

    def _cancelled(self) -> None:
        self._stopped("Cancelled: press Resume to continue where it stopped.")


class ResultsPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Results")
        self.teachers = _table(["seed", "epoch", "Sp", "Se", "Score"], [])
        self.students = show_every_row(_table(["student", "labels", "seeds", "distilled Score", "hard-label Score",
                                               "gain"], []))
        curve = pg.PlotWidget(background="w", title="ensemble Score against k",
                              axisItems={"bottom": IntegerAxis("bottom")})
        curve.setLabel("bottom", "teachers in the ensemble (k)")
        curve.setLabel("left", "Score")
        curve.setYRange(0, 100, padding=0)  # Scores on their own scale: a 0.5-point wobble is not a cliff
        curve.setMouseEnabled(x=False, y=False)
        self.k_plot = curve
        self.curve = curve.plot(pen=pg.mkPen((50, 110, 210), width=2), symbol="o")
        self.open_report = QPushButton("Open the report")
        self.open_report.clicked.connect(self._open_report)
        self.use_student = QPushButton("Use the student for analysis")
        self.use_student.clicked.connect(self._use_student)
        self.summary = QLabel(wordWrap=True)
        self.notes = QLabel(wordWrap=True)  # checkpoint selections that found no epoch with Se > 5 %
        self.notes.setStyleSheet("color: #9a6700")
        self.untrusted = QLabel(wordWrap=True, textFormat=Qt.TextFormat.PlainText)  # the student's test warnings
        self.untrusted.setStyleSheet("color: #c0392b")
        self.confusions = {role: show_every_row(_table(["true \\ predicted", *CLASS_NAMES], []))
                           for role in ("student", "baseline")}
        self.confusion_titles = {role: QLabel() for role in self.confusions}
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        layout.addWidget(self.notes)
        row = QHBoxLayout()
        row.addLayout(_titled("Teachers: test Scores of the selected epochs", self.teachers), 1)
        row.addWidget(curve, 1)
        layout.addLayout(row, 1)
        layout.addLayout(_titled("Students: distilled against the same student on hard labels (mean over seeds)",
                                 self.students))
        layout.addWidget(self.untrusted)
        row = QHBoxLayout()
        for role, table in self.confusions.items():
            column = QVBoxLayout()
            column.addWidget(self.confusion_titles[role])
            column.addWidget(table)
            row.addLayout(column)
        layout.addLayout(row)
        buttons = QHBoxLayout()
        buttons.addWidget(self.open_report)
        buttons.addWidget(self.use_student)
        buttons.addStretch(1)
        layout.addLayout(buttons)
        layout.addWidget(self._error_label())

    def validatePage(self) -> bool:
        return True  # Finish: the experiment is done and its recipe is already saved with it

    def initializePage(self) -> None:
        report = self.wizard_().report
        if not report:
            return
        fill_table(self.teachers, [[t.seed, t.epoch, t.sp, t.se, t.score] for t in report.teachers])
        self.curve.setData([e.k for e in report.ensembles], [e.score or 0.0 for e in report.ensembles])
        fill_table(self.students, [[g.arch, g.labels, g.distilled.n, g.distilled.mean, g.baseline.mean,
                                    gain_text(g.gain, dash=True)]
                                   for g in report.student_groups])
        self.summary.setText(f"Selection: {report.selection} · {report.train_cycles} training cycles, "
                             f"{report.test_cycles} test cycles")
        notes = report.selection_notes()
        self.notes.setText("Checkpoint selection fell back for " + " ".join(notes) if notes else "")
        self.notes.setVisible(bool(notes))
        warnings = self.student_warnings()
        self.untrusted.setText("⚠ The student offered for analysis should not be trusted yet. " + " ".join(warnings)
                               if warnings else "")
        self.untrusted.setVisible(bool(warnings))
        self.use_student.setText("Use the student for analysis…" if warnings else "Use the student for analysis")
        for role, title in (("student", "distilled student"), ("baseline", "same student, hard labels")):
            runs = [s for s in report.students if s.role == role and s.confusion]
            best = max(runs, key=lambda s: s.score or 0.0, default=None)
            self.confusion_titles[role].setText(f"<b>Confusion, best {title}</b>" + (
                f" (seed {best.seed}; rows true, columns predicted)" if best else ": not trained"))
            fill_table(self.confusions[role], [[name, *counts] for name, counts in zip(CLASS_NAMES, best.confusion)]
                       if best else [])

    def _folder(self) -> Path:
        wizard = self.wizard_()
        return experiment_folder(wizard.workspace, wizard.recipe.name)

    def report_path(self) -> Path:
        return self._folder() / REPORT_HTML

    def _open_report(self) -> None:
        path = self.report_path()
        if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
            self.error.setText(f"No web browser could be started to show the report; open {path} yourself.")

    def student_model(self) -> Path | None:
        report = self.wizard_().report
        students = [s for s in report.students if s.role == "student"] if report else []
        if not students:
            return None
        best = max(students, key=lambda s: s.score or 0.0)
        return student_run_folder(self._folder(), "student", best.arch, best.labels, best.seed) / MODEL_FOLDER

    def student_warnings(self) -> list[str]:
        """Why the student offered for analysis should not be trusted (its card's test warnings), in sentences."""
        folder = self.student_model()
        try:
            return [warning.text for warning in read_model_card(folder).test_warnings] if folder else []
        except LungKDError as exc:  # a damaged card: that is the reason
            return [str(exc)]

    def _use_student(self) -> None:
        """Hands the best student to the main window; one whose test Score does not show it can be trusted only
        after the user has read why and confirmed."""
        folder = self.student_model()
        if folder is None:
            return
        warnings = self.student_warnings()
        if warnings:
            box = QMessageBox(QMessageBox.Icon.Warning, "LungKD", "This student should not be trusted yet.",
                              parent=self)
            box.setInformativeText("\n\n".join(warnings) + "\n\nUse it for analysis anyway?")
            box.setStandardButtons(QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel)
            box.setDefaultButton(QMessageBox.StandardButton.Cancel)
            box.button(QMessageBox.StandardButton.Yes).setText("Use it anyway")
            if box.exec() != QMessageBox.StandardButton.Yes:
                return
        self.wizard_().use_model.emit(str(folder))
