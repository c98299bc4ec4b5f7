"""Results after an experiment whose student's test Score does not show it can be trusted (measured on too few
cycles): the page says so, and "Use the student for analysis" asks, with the reasons, before handing it over."""
from pathlib import Path

import torch  # noqa: F401  - before PySide6, as in the entry point
from PySide6.QtWidgets import QMessageBox

from lungkd.app.training.wizard import ResultsPage, RunPage
from lungkd.core.kd.report import ExperimentReport
from lungkd.core.workspace.layout import RECIPE_TOML, REPORT_JSON
from recorded_experiment import recorded_experiment
from studio_driver import respond


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
    assert results.k_plot.getViewBox().viewRange()[1] == [0, 100]  # the Score against k on its whole scale
    results.grab().save(str(tmp_path / "results-untrusted.png"))

    used: list[str] = []
    wizard.use_model.connect(used.append)
    respond(QMessageBox.StandardButton.Cancel)
    results.use_student.click()
    assert respond.text == "This student should not be trusted yet."
    assert "measured on only 25 cycles" in respond.informative
    assert respond.informative.endswith("Use it for analysis anyway?")
    assert used == []  # cancelled: the model in use stays

    respond("Use it anyway")
    results.use_student.click()
    assert len(used) == 1 and (Path(used[0]) / "lungkd.json").is_file()
    assert Path(used[0]) == results.student_model()
