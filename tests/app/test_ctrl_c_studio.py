"""Ctrl-C in the terminal that started the Studio ends it as it ends a `lungkd` command (issue 22): the experiment
running in the wizard is cancelled and its worker processes stop, the Studio leaves with 130, and the same recipe
resumes from where it stopped."""
import os
import re
import signal

import pytest
import torch  # noqa: F401  - before PySide6, as in the entry point
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from lungkd.app.shell.main import end_on_ctrl_c
from lungkd.app.shell.main_window import MainWindow
from lungkd.core.kd.executors import InProcessExecutor
from lungkd.core.kd.experiment import Experiment


@pytest.mark.slow
def test_ctrl_c_during_a_studio_run_stops_its_workers_leaves_with_130_and_the_recipe_resumes(qtbot, tmp_path):
    window = MainWindow(tmp_path / "ws", QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    wizard = window.open_wizard()
    recipe = wizard.recipe
    wizard.recipe = recipe.replace(name="ctrl-c", executor="process",
                                   teachers=recipe.teachers.replace(train=recipe.teachers.train.replace(epochs=3)),
                                   data=recipe.data.replace(synthetic=recipe.data.synthetic.replace(recordings=10)))
    run = wizard.pages[5]
    run.show_recipe(wizard.recipe)
    run.start()
    qtbot.waitUntil(lambda: bool(run.series), timeout=300000)  # teacher 1 finished its first epoch
    left, before = [], signal.getsignal(signal.SIGINT)
    try:
        end_on_ctrl_c(QApplication.instance(), window, leave=left.append)
        os.kill(os.getpid(), signal.SIGINT)  # what the terminal sends on Ctrl-C
        qtbot.waitUntil(lambda: bool(left), timeout=300000)
    finally:
        signal.signal(signal.SIGINT, before)
        window.signal_timer.stop()
    assert left == [130] and not wizard.task.is_running()
    pids = [int(p) for p in re.findall(r"training in worker process (\d+)", run.log.toPlainText())]
    assert pids
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    events = []  # the same recipe again, here headless
    Experiment(wizard.recipe, tmp_path / "ws", on_event=events.append, executor=InProcessExecutor()).run()
    assert any(e.message.startswith("Resuming from epoch") for e in events if e.kind == "notice")
