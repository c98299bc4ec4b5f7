"""Results after an experiment whose student's test Score does not show it can be trusted (measured on too few
cycles): the page says so, and "Use the student for analysis" asks, with the reasons, before handing it over."""
from pathlib import Path

import torch  # noqa: F401  - before PySide6, as in the entry point
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QApplication, QMessageBox

from lungkd.app.training.wizard import ResultsPage, RunPage
from lungkd.core.kd.report import ExperimentReport
from lungkd.core.workspace.layout import RECIPE_TOML, REPORT_JSON
from recorded_experiment import recorded_experiment


def answer_the_warning(qtbot, answer: QMessageBox.StandardButton, seen: list[str]) -> None:
    """Once the warning box is open, keeps its text and informative text in `seen` and presses `answer`."""
    def press():
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            QTimer.singleShot(20, press)
            return
        seen.extend([box.text(), box.informativeText()])
        box.button(answer).click()

    QTimer.singleShot(0, press)


def _results(wizard, model_folder) -> ResultsPage:
    folder = recorded_experiment(wizard.workspace, model_folder, "small-test")
    wizard.load_recipe(folder / RECIPE_TOML)  # the recipe it ran, as "Start from this recipe" loads one
    while not isinstance(wizard.currentPage(), RunPage):
        wizard.next()
    wizard.currentPage()._finished(ExperimentReport.read(folder / REPORT_JSON))  # as the finished run does
    wizard.next()
    assert isinstance(wizard.currentPage(), ResultsPage)
    return wizard.currentPage()


def test_an_untrusted_student_is_marked_and_used_only_after_confirming_why(wizard, qtbot, model_folder, tmp_path):
    results = _results(wizard, model_folder)
    assert results.untrusted.isVisible()
    assert results.untrusted.text().startswith("⚠ The student offered for analysis should not be trusted yet. Its "
                                               "test Score was measured on only 25 cycles (fewer than 50)")
    assert results.use_student.text() == "Use the student for analysis…"
    results.grab().save(str(tmp_path / "results-untrusted.png"))

    used: list[str] = []
    wizard.use_model.connect(used.append)
    seen: list[str] = []
    answer_the_warning(qtbot, QMessageBox.StandardButton.Cancel, seen)
    results.use_student.click()
    assert seen[0] == "This student should not be trusted yet."
    assert "measured on only 25 cycles" in seen[1] and seen[1].endswith("Use it for analysis anyway?")
    assert used == []  # cancelled: the model in use stays

    answer_the_warning(qtbot, QMessageBox.StandardButton.Yes, seen)
    results.use_student.click()
    assert len(used) == 1 and (Path(used[0]) / "lungkd.json").is_file()
    assert Path(used[0]) == results.student_model()
