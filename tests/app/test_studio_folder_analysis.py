"""File ▸ Analyse a folder…, driven as a user does: choose the folder, Analyse, Cancel part way, Resume; the
bar counts recordings and says the time left, a bad file is listed with its reason, and the export holds every
recording once with its provenance."""
import json
import shutil

import pytest
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from lungkd.app.recordings.folder_analysis import FolderAnalysisDialog
from lungkd.core.analysis.combined_export import EXPORT_FILES


@pytest.fixture
def folder(synthetic_dir, tmp_path):
    """Six of the session's recordings with their annotations, and one file that is no recording."""
    into = tmp_path / "clinic"
    into.mkdir()
    for wav in sorted(synthetic_dir.glob("*.wav"))[:6]:
        shutil.copy(wav, into)
        shutil.copy(wav.with_suffix(".txt"), into)
    (into / "broken.wav").write_bytes(b"not audio at all")
    return into


def click(button):
    QTest.mouseClick(button, Qt.MouseButton.LeftButton)


def test_analyse_a_folder_cancel_and_resume_from_the_file_menu(window, qtbot, folder, tmp_path):
    file_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&File")
    action = next(a for a in file_menu.actions() if a.text() == "&Analyse a folder…")
    assert action.isEnabled()  # the tiny model is chosen
    action.trigger()
    dialog = window.findChild(FolderAnalysisDialog)
    qtbot.waitUntil(dialog.isVisible)
    dialog.folder.setText(str(folder))
    assert dialog.export.text() == str(tmp_path / "clinic-lungkd")  # proposed beside the folder

    seen, shown_formats = [], []
    dialog.progress.valueChanged.connect(lambda _: shown_formats.append(dialog.progress.format()))
    click(dialog.start_button)
    dialog.task.progress.connect(seen.append)
    qtbot.waitUntil(lambda: dialog.progress.value() >= 2, timeout=300000)
    click(dialog.cancel_button)
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=300000)
    assert dialog.start_button.text() == "Resume" and "Resume goes on where it stopped" in dialog.status.text()
    assert not (tmp_path / "clinic-lungkd").exists()  # a stopped run exports nothing
    stopped_at = dialog.progress.value()
    assert stopped_at < 7

    first_run = list(seen)
    click(dialog.start_button)
    dialog.task.progress.connect(seen.append)
    qtbot.waitUntil(lambda: dialog.open_button.isEnabled(), timeout=300000)
    assert dialog.progress.value() == dialog.progress.maximum() == 7
    resumed = seen[len(first_run):]
    assert resumed[-1].reused >= 2  # what the first run analysed was not analysed again
    assert any(p.eta_s is not None for p in first_run)  # the bar said the time left
    assert any("left" in text for text in shown_formats)
    assert dialog.failure_list.count() == 1
    assert dialog.failure_list.item(0).text().startswith("broken.wav: ")
    assert "6 recording(s) analysed" in dialog.status.text() and "1 could not be" in dialog.status.text()

    export = json.loads((tmp_path / "clinic-lungkd" / EXPORT_FILES["json"]).read_text())
    assert sorted(r["provenance"]["file"] for r in export["recordings"]) == \
        sorted(str(p) for p in folder.glob("*.wav") if p.name != "broken.wav")
    assert [f["file"] for f in export["failures"]] == [str(folder / "broken.wav")]
    dialog.grab().save(str(tmp_path / "folder-analysis.png"))


def test_the_action_says_why_it_waits_for_a_model(qtbot, tmp_path):
    from PySide6.QtCore import QSettings

    from lungkd.app.shell.main_window import MainWindow

    empty = MainWindow(tmp_path / "empty-workspace", QSettings(str(tmp_path / "s.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(empty)
    if empty.session.model_folder is None:  # no model in the workspace nor shipped: nothing to analyse with
        assert not empty.analyse_folder_action.isEnabled()
        assert "Choose a model" in empty.analyse_folder_action.toolTip()
    else:  # the shipped demo model is chosen
        assert empty.analyse_folder_action.isEnabled()


def test_a_recording_opened_while_a_folder_is_analysed_is_analysed_without_waiting_for_it(window, qtbot, synthetic_dir,
                                                                                         recording, tmp_path):
    """The dialog is not modal: the folder's analyses run in a helper of their own, beside the window's."""
    big = tmp_path / "big"
    big.mkdir()
    for copy in range(8):  # some hundred recordings: far longer than one recording's analysis
        for wav in sorted(synthetic_dir.glob("*.wav")):
            shutil.copy(wav, big / f"{copy}_{wav.name}")
            shutil.copy(wav.with_suffix(".txt"), big / f"{copy}_{wav.stem}.txt")
    dialog = window.analyse_folder_dialog()
    dialog.folder.setText(str(big))
    click(dialog.start_button)
    qtbot.waitUntil(lambda: dialog.progress.value() >= 1, timeout=300000)  # the folder's helper is at work
    window.open_paths([recording])
    qtbot.waitUntil(lambda: window.session.current is not None and window.session.current.analysis is not None,
                    timeout=300000)
    assert not dialog.start_button.isEnabled() and dialog.progress.value() < dialog.progress.maximum()
    click(dialog.cancel_button)
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=300000)
