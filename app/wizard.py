"""The training wizard: Data -> Teachers -> Soft labels -> Student -> Review -> Run -> Results.

Every page edits one experiment recipe (core.recipes); Run drives core.experiment in an EngineTask.
"""
from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

import pyqtgraph as pg
from PySide6.QtCore import QEventLoop, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import (QCheckBox, QComboBox, QDoubleSpinBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel,
                               QLineEdit, QPlainTextEdit, QProgressBar, QPushButton, QSpinBox, QTableWidget,
                               QTableWidgetItem, QVBoxLayout, QWizard, QWizardPage)

from lungkd.core.data.metadata import SPLIT_FILE
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.recipes import (ARCHITECTURES, ExperimentRecipe, SyntheticData, experiment_to_toml,
                                 load_experiment, parse_experiment)
from lungkd.core.kd.soft_labels import SoftLabelSpec

from .engine import EngineTask

RECIPES_DIR = Path(__file__).resolve().parents[1] / "resources" / "recipes"


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


class TrainingWizard(QWizard):
    """Holds the recipe being edited; pages read and write it."""

    use_model = Signal(str)  # a student's model folder, for analysis in the main window

    def __init__(self, workspace: Path, parent=None):
        super().__init__(parent)
        self.workspace = workspace
        self.setWindowTitle("LungKD — train and distil")
        self.resize(1000, 720)
        self.recipe: ExperimentRecipe = load_experiment(RECIPES_DIR / "demo-cpu.toml")
        self.task: EngineTask | None = None
        self.report: dict | None = None
        self.pages = [DataPage(), TeachersPage(), SoftLabelsPage(), StudentPage(), ReviewPage(), RunPage(),
                      ResultsPage()]
        for page in self.pages:
            self.addPage(page)

    def use_data_folder(self, folder: Path) -> None:
        """Train on a folder of recordings (e.g. the ones just reviewed), under a new experiment name: the
        folder's annotations changed, and an experiment refuses changed data. Without a split file beside
        the recordings, the split is patient-wise."""
        folder = Path(folder)
        split = self.recipe.data.split if next(folder.rglob(SPLIT_FILE), None) else "patient"
        data = replace(self.recipe.data, path=str(folder), synthetic=None, split=split)
        self.recipe = replace(self.recipe, data=data, name=f"{folder.name}-{time.strftime('%Y%m%d-%H%M%S')}")
        self.restart()

    def load_recipe(self, path: Path) -> None:
        self.recipe = load_experiment(path)
        for page in self.pages:
            page.show_recipe(self.recipe)

    def closeEvent(self, event) -> None:
        if self.task is not None and self.task.is_running():
            from PySide6.QtWidgets import QMessageBox

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
        self.error = QLabel()
        self.error.setStyleSheet("color: #c0392b")
        self.error.setWordWrap(True)
        return self.error


def _arch_combo() -> QComboBox:
    combo = QComboBox()
    combo.addItems(ARCHITECTURES)
    return combo


def _spin(low, high, value=0, decimals=None) -> QSpinBox | QDoubleSpinBox:
    spin = QDoubleSpinBox() if decimals else QSpinBox()
    if decimals:
        spin.setDecimals(decimals)
    spin.setRange(low, high)
    spin.setValue(value)
    return spin


class DataPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Data")
        self.setSubTitle("Choose the recordings. An ICBHI folder is recognised by its split file.")
        self.preset = QComboBox()
        self.preset.addItems(sorted(p.stem for p in RECIPES_DIR.glob("*.toml")))
        self.preset.setCurrentText("demo-cpu")
        load = QPushButton("Start from this recipe")
        load.clicked.connect(lambda: self.wizard_().load_recipe(RECIPES_DIR / f"{self.preset.currentText()}.toml"))
        self.folder = QLineEdit()
        self.folder.setPlaceholderText("ICBHI_final_database or a folder of recordings with .txt annotations")
        browse = QPushButton("Browse…")
        browse.clicked.connect(self._browse)
        self.synthetic = QCheckBox("Generated synthetic dataset with")
        self.recordings = _spin(4, 5000, 48)
        self.split = QComboBox()
        self.split.addItems(["official", "patient"])
        self.selection = QComboBox()
        self.selection.addItems(["best_test", "best_val", "last"])
        self.inspect = QPushButton("Inspect")
        self.inspect.clicked.connect(self._inspect)
        self.counts = _table(["split", *CLASS_NAMES, "total"], [])
        self.detected = QLabel()
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
        form.addRow("Split", self.split)
        form.addRow("Checkpoint selection", self.selection)
        form.addRow(self.inspect, self.detected)
        form.addRow(self.counts)
        form.addRow(self._error_label())

    def _browse(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Dataset folder")
        if folder:
            self.folder.setText(folder)
            self.synthetic.setChecked(False)

    def show_recipe(self, recipe: ExperimentRecipe) -> None:
        self.synthetic.setChecked(recipe.data.synthetic is not None)
        if recipe.data.synthetic:
            self.recordings.setValue(recipe.data.synthetic.recordings)
        self.folder.setText(recipe.data.path or "")
        self.split.setCurrentText(recipe.data.split)
        self.selection.setCurrentText(recipe.selection)

    def updated(self, recipe: ExperimentRecipe) -> ExperimentRecipe:
        if self.synthetic.isChecked():
            old = recipe.data.synthetic or SyntheticData()
            data = replace(recipe.data, path=None, synthetic=replace(old, recordings=self.recordings.value()))
        else:
            if not self.folder.text().strip():
                raise ValueError("Choose a dataset folder, or the generated synthetic dataset.")
            data = replace(recipe.data, path=self.folder.text().strip(), synthetic=None)
        data = replace(data, split=self.split.currentText())
        return replace(recipe, data=data, selection=self.selection.currentText())

    def _inspect(self) -> None:
        if not self.validatePage():
            return
        recipe = self.wizard_().recipe
        workspace = self.wizard_().workspace

        def job(report, cancel):
            from lungkd.core.training.single_run import resolve_dataset

            return resolve_dataset(recipe.data, workspace).stats()

        self.detected.setText("Reading the dataset…")
        task = EngineTask(job, parent=self)
        task.finished.connect(self.show_stats)
        task.failed.connect(lambda message, _: self.error.setText(message))
        self._task = task.start()

    def show_stats(self, stats: dict) -> None:
        rows = [[split, *counts.values(), sum(counts.values())] for split, counts in stats["cycles"].items()]
        fill_table(self.counts, rows)
        kind = "ICBHI layout with its official split" if stats["split_file"] else "a folder without a split file"
        self.detected.setText(f"{kind}: {stats['recordings']} recordings of {stats['patients']} patients, "
                              f"{len(stats['warnings'])} warning(s)")
        self.stats = stats


class TeachersPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Teachers")
        self.setSubTitle("k models of one architecture, seeds 1..k, trained on the hard labels.")
        self.arch, self.size = _arch_combo(), QComboBox()
        self.size.addItems(["full", "tiny"])
        self.pretrained = QLineEdit()
        self.pretrained.setPlaceholderText("Hugging Face id or local folder; empty = random initialisation")
        self.k = _spin(1, 100, 5)
        self.epochs = _spin(1, 1000, 50)
        self.batch = _spin(1, 1024, 8)
        self.lr = _spin(1e-7, 1.0, 5e-5, decimals=7)
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
        t, train = recipe.teachers, recipe.teacher_train
        self.arch.setCurrentText(t.arch)
        self.size.setCurrentText(t.size)
        self.pretrained.setText(t.pretrained or "")
        self.k.setValue(t.k)
        self.epochs.setValue(train.epochs)
        self.batch.setValue(train.batch_size)
        self.lr.setValue(train.lr)
        self.device.setCurrentText(recipe.device)

    def updated(self, recipe: ExperimentRecipe) -> ExperimentRecipe:
        teachers = replace(recipe.teachers, arch=self.arch.currentText(), size=self.size.currentText(),
                           pretrained=self.pretrained.text().strip() or None, k=self.k.value())
        train = replace(recipe.teacher_train, epochs=self.epochs.value(), batch_size=self.batch.value(),
                        lr=self.lr.value(), device=self.device.currentText())
        return replace(recipe, teachers=teachers, teacher_train=train, device=self.device.currentText())

    def _estimate(self) -> None:
        arch, size, batch, device = (self.arch.currentText(), self.size.currentText(), self.batch.value(),
                                     self.device.currentText())
        stats = getattr(self.wizard_().pages[0], "stats", None)
        cycles = sum(stats["cycles"]["train"].values()) if stats else 4142  # ICBHI's training cycles
        epochs, k = self.epochs.value(), self.k.value()

        def job(report, cancel):
            from lungkd.core.training.estimates import training_seconds, training_throughput

            rate = training_throughput(arch, size, min(batch, 16), device)
            return rate, training_seconds(cycles, epochs, k, rate)

        self.estimate.setText("measuring one training step…")
        task = EngineTask(job, parent=self)
        task.finished.connect(lambda r: self.estimate.setText(
            f"≈ {r[1] / 3600:.1f} h for {k} teachers ({r[0]:.1f} cycles/s measured here on {device}, "
            f"{cycles} training cycles)"))
        task.failed.connect(lambda message, _: self.estimate.setText(message))
        self._task = task.start()


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
        students = tuple(replace(s, labels=labels) for s in recipe.students)
        return replace(recipe, students=students, curated_k=self.k.value() if self.mode.currentText() == "curated"
                       else recipe.curated_k)


class StudentPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Student")
        self.setSubTitle("Any architecture, trained on the soft labels alone.")
        self.arch, self.size = _arch_combo(), QComboBox()
        self.size.addItems(["full", "tiny"])
        self.pretrained = QLineEdit()
        self.seeds = QLineEdit()
        self.baseline = QCheckBox("Also train it on the hard labels (the baseline for the gain)")
        self.second = QCheckBox("Form the second-generation ensemble of the students (BTS-d++)")
        self.epochs, self.batch, self.lr = _spin(1, 1000, 50), _spin(1, 1024, 8), _spin(1e-7, 1.0, 5e-5, decimals=7)
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
        self.second.setChecked(recipe.second_generation == 1)
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
        student = replace(base, arch=self.arch.currentText(), size=self.size.currentText(),
                          pretrained=self.pretrained.text().strip() or None, seeds=seeds,
                          baseline=self.baseline.isChecked(),
                          train=replace(base.train, epochs=self.epochs.value(), batch_size=self.batch.value(),
                                        lr=self.lr.value()))
        return replace(recipe, students=(student,), second_generation=1 if self.second.isChecked() else 0)


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
        layout = QFormLayout(self)
        layout.addRow("Experiment name", self.name)
        layout.addRow(self.text)
        layout.addRow(save)
        layout.addRow(self._error_label())
        self.name.textChanged.connect(lambda _: self._refresh())

    def show_recipe(self, recipe: ExperimentRecipe) -> None:
        self.name.setText(recipe.name)
        self.text.setPlainText(experiment_to_toml(recipe))

    def _refresh(self) -> None:
        if self.wizard() is not None:
            self.text.setPlainText(experiment_to_toml(replace(self.wizard_().recipe, name=self.name.text())))

    def updated(self, recipe: ExperimentRecipe) -> ExperimentRecipe:
        import tomllib

        recipe = replace(recipe, name=self.name.text().strip() or recipe.name)
        return parse_experiment(tomllib.loads(experiment_to_toml(recipe)))  # validated like a file

    def save_to(self, path: Path) -> None:
        path.write_text(experiment_to_toml(self.updated(self.wizard_().recipe)), encoding="utf-8")

    def _save(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save recipe", f"{self.name.text()}.toml", "TOML (*.toml)")
        if path:
            self.save_to(Path(path))


class RunPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Run")
        self.setSubTitle("Stages with progress; closing or cancelling keeps what is finished.")
        self.stage = QLabel("Not started")
        self.bar = QProgressBar()
        self.eta = QLabel()
        self.curves = pg.GraphicsLayoutWidget()
        self.curves.setBackground("w")
        self.loss_plot = self.curves.addPlot(title="loss per epoch")
        self.score_plot = self.curves.addPlot(title="test Score per epoch")
        self.loss_plot.addLegend(offset=(-10, 10))
        self.series: dict[str, tuple[list, list, list, object, object]] = {}
        self.log = QPlainTextEdit()
        self.log.setReadOnly(True)
        self.start_button = QPushButton("Run")
        self.start_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setEnabled(False)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.cancel_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        for widget in (self.stage, self.bar, self.eta):
            layout.addWidget(widget)
        layout.addWidget(self.curves, 2)
        layout.addWidget(self.log, 1)
        layout.addLayout(buttons)
        layout.addWidget(self._error_label())
        self.finished_ok = False

    def isComplete(self) -> bool:
        return self.finished_ok

    def start(self) -> None:
        wizard = self.wizard_()
        recipe, workspace = wizard.recipe, wizard.workspace

        def job(report, cancel):
            from lungkd.core.kd.experiment import Experiment

            return Experiment(recipe, workspace, on_event=report, cancel=cancel).run()

        self.error.setText("")
        self.start_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
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
        where = f"{event.stage}{' · ' + event.run if event.run else ''}"
        if event.kind == "progress" and event.total:
            self.stage.setText(where)
            self.bar.setMaximum(event.total)
            self.bar.setValue(event.step)
            if event.eta_s is not None:
                self.eta.setText(f"about {event.eta_s / 60:.1f} min left in this run")
            return
        if event.kind == "metrics" and "epoch" in event.data and event.run:
            self._plot(event.run, event.data)
        if event.kind in ("started", "finished", "failed", "notice", "artifact") or event.kind == "metrics":
            text = event.message or (json.dumps(event.data)[:160] if event.kind in ("metrics", "artifact") else "")
            self.log.appendPlainText(f"[{where}] {event.kind} {text}".rstrip())

    def _plot(self, run: str, data: dict) -> None:
        if run not in self.series:
            colour = pg.intColor(len(self.series), hues=9)
            loss_curve = self.loss_plot.plot(pen=pg.mkPen(colour, width=2), name=run)
            score_curve = self.score_plot.plot(pen=pg.mkPen(colour, width=2), symbol="o", symbolSize=5,
                                               symbolBrush=colour)
            self.series[run] = ([], [], [], loss_curve, score_curve)
        epochs, losses, scores, loss_curve, score_curve = self.series[run]
        epochs.append(data["epoch"])
        losses.append(data["loss"])
        scores.append(((data.get("test") or {}).get("score")) or 0.0)
        loss_curve.setData(epochs, losses)
        score_curve.setData(epochs, scores)

    def _finished(self, report: dict) -> None:
        self.wizard_().report = report
        self.finished_ok = True
        self.stage.setText("Finished")
        self.cancel_button.setEnabled(False)
        self.completeChanged.emit()

    def _failed(self, message: str, details: str) -> None:
        self.error.setText(message)
        self.log.appendPlainText(details)
        self.start_button.setText("Resume")
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)

    def _cancelled(self) -> None:
        self.stage.setText("Cancelled: press Resume to continue where it stopped.")
        self.start_button.setText("Resume")
        self.start_button.setEnabled(True)
        self.cancel_button.setEnabled(False)


class ResultsPage(RecipePage):
    def __init__(self):
        super().__init__()
        self.setTitle("Results")
        self.teachers = _table(["seed", "epoch", "Sp", "Se", "Score"], [])
        self.students = _table(["student", "labels", "seeds", "distilled Score", "hard-label Score", "gain"], [])
        curve = pg.PlotWidget(background="w", title="ensemble Score against k")
        curve.setLabel("bottom", "teachers in the ensemble (k)")
        self.curve = curve.plot(pen=pg.mkPen((50, 110, 210), width=2), symbol="o")
        self.open_report = QPushButton("Open the report")
        self.open_report.clicked.connect(self._open_report)
        self.use_student = QPushButton("Use the student for analysis")
        self.use_student.clicked.connect(self._use_student)
        self.summary = QLabel()
        self.confusions = {role: _table(["true \\ predicted", *CLASS_NAMES], []) for role in ("student", "baseline")}
        self.confusion_titles = {role: QLabel() for role in self.confusions}
        layout = QVBoxLayout(self)
        layout.addWidget(self.summary)
        row = QHBoxLayout()
        row.addWidget(self.teachers, 1)
        row.addWidget(curve, 1)
        layout.addLayout(row)
        layout.addWidget(self.students)
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

    def initializePage(self) -> None:
        report = self.wizard_().report
        if not report:
            return
        fill_table(self.teachers, [[t["seed"], t["epoch"], t["sp"], t["se"], t["score"]] for t in report["teachers"]])
        self.curve.setData([e["k"] for e in report["ensembles"]], [e["score"] or 0.0 for e in report["ensembles"]])
        fill_table(self.students, [[g["arch"], g["labels"], g["distilled"]["n"], g["distilled"]["mean"],
                                    g["baseline"]["mean"], g["gain"]] for g in report["student_groups"]])
        self.summary.setText(f"Selection: {report['selection']} · {report['train_cycles']} training cycles, "
                             f"{report['test_cycles']} test cycles")
        for role, title in (("student", "distilled student"), ("baseline", "same student, hard labels")):
            runs = [s for s in report["students"] if s["role"] == role and s.get("confusion")]
            best = max(runs, key=lambda s: s["score"] or 0.0, default=None)
            self.confusion_titles[role].setText(f"Confusion, best {title}" + (f" (seed {best['seed']})" if best
                                                                              else ": not trained"))
            fill_table(self.confusions[role], [[name, *counts] for name, counts in zip(CLASS_NAMES, best["confusion"])]
                       if best else [])

    def _folder(self) -> Path:
        wizard = self.wizard_()
        return wizard.workspace / "experiments" / wizard.recipe.name

    def report_path(self) -> Path:
        return self._folder() / "report.html"

    def _open_report(self) -> None:
        QDesktopServices.openUrl(QUrl.fromLocalFile(str(self.report_path())))

    def student_model(self) -> Path | None:
        report = self.wizard_().report
        students = [s for s in report["students"] if s["role"] == "student"] if report else []
        if not students:
            return None
        best = max(students, key=lambda s: s["score"] or 0.0)
        return self._folder() / "students" / f"{best['arch']}-{best['labels']}-seed-{best['seed']}" / "model"

    def _use_student(self) -> None:
        folder = self.student_model()
        if folder is not None:
            self.wizard_().use_model.emit(str(folder))
