"""The training wizard driven end to end on the demo recipe with tiny models, cancelled and resumed."""
from pathlib import Path

import pytest
import torch  # noqa: F401  - before PySide6, as in the entry point
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QLabel, QWizard

from lungkd.app.shell.main_window import MainWindow

from lungkd.app.training.runs_view import COLUMNS, RunsView
from lungkd.app.training.wizard import (EXECUTOR_LABELS, RECIPES_DIR, DataPage, ResultsPage, ReviewPage, RunPage,
                                        SoftLabelsPage, StudentPage, TeachersPage, TrainingWizard)
from lungkd.core.kd.executors import InProcessExecutor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.recipes import EXECUTORS, load_experiment
from studio_driver import respond



def _page(wizard, cls):
    assert isinstance(wizard.currentPage(), cls), type(wizard.currentPage())
    return wizard.currentPage()


@pytest.mark.slow
def test_wizard_end_to_end_with_cancel_and_resume(wizard, qtbot, tmp_path):
    data = _page(wizard, DataPage)
    assert data.synthetic.isChecked()  # the CPU demo is the default start
    data.recordings.setValue(10)
    data.inspect.click()
    qtbot.waitUntil(lambda: data.stats is not None, timeout=60000)
    assert data.counts.rowCount() == 3 and data.detected.text().startswith("Generated recordings in the ICBHI")
    wizard.next()
    teachers = _page(wizard, TeachersPage)
    teachers.k.setValue(2)
    teachers.epochs.setValue(2)
    wizard.next()
    soft = _page(wizard, SoftLabelsPage)
    soft.mode.setCurrentText("mean")
    soft.k.setValue(2)
    wizard.next()
    student = _page(wizard, StudentPage)
    student.seeds.setText("1")
    student.epochs.setValue(1)
    student.baseline.setChecked(True)
    wizard.next()
    review = _page(wizard, ReviewPage)
    review.name.setText("wizard-test")
    assert 'labels = "mean_2"' in review.text.toPlainText() and "k = 2" in review.text.toPlainText()
    review.save_to(tmp_path / "saved.toml")
    saved = load_experiment(tmp_path / "saved.toml")
    assert (saved.name, saved.teachers.k, saved.students[0].labels, saved.students[0].seeds) == (
        "wizard-test", 2, "mean_2", (1,))
    wizard.next()
    run = _page(wizard, RunPage)
    assert not run.isComplete()
    run.start()
    qtbot.waitUntil(lambda: bool(run.series), timeout=120000)  # teacher 1 finished its first epoch
    qtbot.waitUntil(lambda: "left for the whole experiment" in run.eta.text(), timeout=120000)
    assert "of 4 models trained" in run.eta.text()  # 2 teachers, the student and its baseline
    run.cancel_button.click()
    qtbot.waitUntil(lambda: run.start_button.text() == "Resume", timeout=120000)
    assert "Cancelled" in run.stage.text() and run.eta.text() == ""
    run.start_button.click()
    qtbot.waitUntil(run.isComplete, timeout=300000)
    assert run.series  # loss and Score curves were drawn
    log = run.log.toPlainText()
    assert "Teacher seed 1: Resuming from epoch 1." in log  # the cancelled teacher went on, not from scratch
    assert "Teacher seed 1, epoch 2 of 2: loss " in log and "Student cnn6 mean_2 seed 1 finished: epoch 1" in log
    assert "{" not in log  # sentences, not raw events
    assert run.eta.text() == "" and run.stage.text() == "Finished"
    legend = run.legend.sceneBoundingRect()
    assert run.legend.items and not any(legend.intersects(plot.vb.sceneBoundingRect())
                                        for plot in (run.loss_plot, run.score_plot))  # it hides no curve
    for plot in (run.loss_plot, run.score_plot):  # epochs are whole numbers
        ticks = [v for _, values in plot.getAxis("bottom").tickValues(0.8, 2.2, 400) for v in values]
        assert ticks and all(v == int(v) for v in ticks)
    wizard.next()
    results = _page(wizard, ResultsPage)
    assert results.teachers.rowCount() == 2 and results.students.rowCount() == 1
    for role in ("student", "baseline"):
        confusion = results.confusions[role]
        assert confusion.rowCount() == 4
        total = sum(int(confusion.item(r, c).text()) for r in range(4) for c in range(1, 5))
        assert total == wizard.report.test_cycles
        qtbot.waitUntil(lambda: confusion.rowViewportPosition(3) + confusion.rowHeight(3)
                        <= confusion.viewport().height(), timeout=5000)  # all four rows in view
    titles = [label.text() for label in results.findChildren(QLabel)]
    assert any(t.startswith("<b>Teachers") for t in titles) and any(t.startswith("<b>Students") for t in titles)
    assert results.report_path().exists()
    respond("Use it anyway")  # ten recordings test the student on too few cycles: asked first
    with qtbot.waitSignal(wizard.use_model) as used:
        results.use_student.click()
    assert "cycles (fewer than 50)" in respond.informative
    assert (Path(used.args[0]) / "lungkd.json").exists()
    runs = RunsView(tmp_path / "ws")
    qtbot.addWidget(runs)
    assert runs.table.rowCount() == 1 and runs.table.item(0, COLUMNS.index("status")).text() == "finished"
    wizard.button(QWizard.WizardButton.FinishButton).click()
    assert not wizard.isVisible()  # Finish closes it

    again = TrainingWizard(tmp_path / "ws")  # the same recipe once more: everything is there already
    qtbot.addWidget(again)
    again.show()
    again.load_recipe(tmp_path / "saved.toml")
    while not isinstance(again.currentPage(), RunPage):
        again.next()
    again.currentPage().start()
    qtbot.waitUntil(again.currentPage().isComplete, timeout=120000)
    again.next()
    assert isinstance(again.currentPage(), ResultsPage) and again.currentPage().teachers.rowCount() == 2
    again.button(QWizard.WizardButton.FinishButton).click()
    assert not again.isVisible()


def test_the_run_page_chooses_where_the_runs_train(wizard, tmp_path):
    for _ in range(5):
        wizard.next()
    run = _page(wizard, RunPage)
    assert [run.executor.itemData(i) for i in range(run.executor.count())] == list(EXECUTOR_LABELS)
    assert set(EXECUTOR_LABELS) == set(EXECUTORS)
    assert run.executor.currentData() == "process" and run.address.isHidden()  # the window's default
    run.executor.setCurrentIndex(run.executor.findData("ray"))
    assert not run.address.isHidden() and "auto" in run.address.placeholderText()
    run.show_recipe(wizard.recipe.replace(executor="inprocess"))  # a recipe that names one
    assert run.executor.currentData() == "inprocess" and run.address.isHidden()
    wizard.grab().save(str(tmp_path / "run.png"))
    assert (tmp_path / "run.png").stat().st_size > 10_000


def test_a_bad_value_stays_on_the_page_with_the_reason(wizard):
    wizard.next()
    wizard.next()
    wizard.next()
    student = _page(wizard, StudentPage)
    student.seeds.setText("one, two")
    assert not student.validatePage()
    assert "whole numbers" in student.error.text()


def test_paper_recipes_are_one_click_away(wizard):
    data = _page(wizard, DataPage)
    data.preset.setCurrentText("paper-bts-mean5")
    wizard.load_recipe(RECIPES_DIR / f"{data.preset.currentText()}.toml")  # what "Start from this recipe" does
    assert wizard.recipe.teachers.arch == "bts" and wizard.recipe.teachers.k == 5
    assert not data.synthetic.isChecked() and data.folder.text() == "ICBHI_final_database"
    assert wizard.button(QWizard.WizardButton.NextButton).isEnabled()


@pytest.mark.slow
def test_closing_during_training_asks_cancels_and_the_run_resumes_next_time(qtbot, tmp_path, monkeypatch):
    from PySide6.QtWidgets import QMessageBox

    window = MainWindow(tmp_path / "ws", QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    wizard = window.open_wizard()
    recipe = wizard.recipe
    wizard.recipe = recipe.replace(name="closing",
                                   teachers=recipe.teachers.replace(train=recipe.teachers.train.replace(epochs=3)),
                                   data=recipe.data.replace(synthetic=recipe.data.synthetic.replace(recordings=10)))
    run = wizard.pages[5]
    run.start()
    qtbot.waitUntil(lambda: bool(run.series), timeout=120000)
    asked = []
    monkeypatch.setattr(QMessageBox, "question", lambda *args: asked.append(args) or QMessageBox.StandardButton.Yes)
    assert window.close()
    assert asked and not wizard.task.is_running()
    events = []  # next time: the same recipe, here run headless
    Experiment(wizard.recipe, tmp_path / "ws", on_event=events.append, executor=InProcessExecutor()).run()
    notices = [e.message for e in events if e.kind == "notice"]
    assert any(m.startswith("Resuming from epoch") for m in notices)


def test_the_main_window_opens_the_wizard_and_takes_its_student(qtbot, tmp_path):
    from lungkd.core.models.inventory import shipped_models_folder

    window = MainWindow(tmp_path / "ws", QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.train_action.trigger()
    assert window.wizard is not None and window.wizard.isVisible()
    demo = str(shipped_models_folder() / "demo-cnn6")
    window.wizard.use_model.emit(demo)
    assert window.model_picker.currentData() == demo
    assert window.pages.indexOf(window.runs) >= 0


@pytest.mark.slow
def test_first_start_opens_generated_recordings_with_predictions(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))  # a fresh user: no settings yet
    for name in ("QT_QPA_PLATFORM", "DISPLAY", "WAYLAND_DISPLAY"):  # no display: a screenshot renders offscreen
        monkeypatch.delenv(name, raising=False)
    shot = tmp_path / "first.png"
    result = subprocess.run([sys.executable, "-m", "lungkd.app.shell.main", "--workspace", str(tmp_path / "ws"),
                             "--screenshot", str(shot)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    demo = tmp_path / "ws" / "datasets" / "studio-demo"
    assert len(list(demo.glob("*.wav"))) == 6 and (demo / "ICBHI_challenge_train_test.txt").exists()
    assert shot.stat().st_size > 50_000
