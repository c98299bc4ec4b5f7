"""LungKD Studio's main window, offscreen, on real ICBHI recordings with the shipped demo model."""
import csv
import subprocess
import sys
from pathlib import Path

import pytest
import torch  # noqa: F401  - before PySide6, as in the entry point
from PySide6.QtCore import QMimeData, QPointF, QSettings, Qt, QUrl
from PySide6.QtGui import QDropEvent
from PySide6.QtWidgets import QApplication

from lungkd.app.main_window import MainWindow
from lungkd.core.annotations import read_annotation_file

RECORDING = "107_2b3_Pr_mc_AKGC417L"


@pytest.fixture
def window(qtbot, tmp_path):
    settings = QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat)
    w = MainWindow(tmp_path / "ws", settings)
    qtbot.addWidget(w)
    w.show()
    return w


def _open(window, paths):
    task = window.open_paths(paths)
    assert task is not None
    assert task.wait(120000)
    return task


def test_a_real_recording_is_analysed_with_its_annotation(window, icbhi_audio_dir):
    _open(window, [icbhi_audio_dir / f"{RECORDING}.wav"])
    cycles, _ = read_annotation_file(icbhi_audio_dir / f"{RECORDING}.txt")
    analysis = window.current.analysis
    assert analysis.cycle_source == "annotation"
    assert window.table.rowCount() == len(cycles) == 8
    assert [float(window.table.item(r, 0).text()) for r in range(8)] == pytest.approx([c.start for c in cycles])
    truth = [window.table.item(r, 7).text() for r in range(8)]
    assert truth == [("normal", "crackle", "wheeze", "both")[c.label] for c in cycles]
    for row in range(8):
        probabilities = [float(window.table.item(row, col).text()) for col in range(3, 7)]
        assert sum(probabilities) == pytest.approx(1.0, abs=0.01)
    assert len(window.view.regions) == 8
    assert "8 cycles (annotation)" in window.recording_list.item(0).text()


def test_drop_files_and_a_bad_one_the_rest_load(window, icbhi_audio_dir, tmp_path):
    bad = tmp_path / "broken.wav"
    bad.write_text("not audio")
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(icbhi_audio_dir / f"{RECORDING}.wav")), QUrl.fromLocalFile(str(bad))])
    event = QDropEvent(QPointF(200, 200), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
                       Qt.KeyboardModifier.NoModifier)
    window.dropEvent(event)
    task = window.tasks[-1]
    assert task.wait(120000)
    assert window.recording_list.count() == 2
    assert str(bad) in window.errors and "not a readable audio file" in window.errors[str(bad)]
    assert window.recording_list.item(1).text().startswith("⚠ broken.wav")
    assert len(window.recordings) == 1


def test_table_and_plot_select_each_other(window, icbhi_audio_dir):
    _open(window, [icbhi_audio_dir / f"{RECORDING}.wav"])
    cycles = window.current.analysis.cycles
    window.table.selectRow(3)
    assert window.view.selection.isVisible()
    assert window.view.selection.getRegion() == pytest.approx((cycles[3].start, cycles[3].end))
    window.view.regions[5]._on_click(5)  # what a click on the region does
    assert window.table.selectionModel().selectedRows()[0].row() == 5
    assert window.view.selection.getRegion() == pytest.approx((cycles[5].start, cycles[5].end))


def test_csv_export_has_one_row_per_cycle(window, icbhi_audio_dir, tmp_path):
    _open(window, [icbhi_audio_dir])  # a folder: its ten recordings
    out = tmp_path / "cycles.csv"
    window.export_csv(out)
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 80  # the ten recordings' annotated cycles
    assert set(rows[0]) >= {"recording", "start", "end", "prediction", "p_normal", "p_crackle", "p_wheeze", "p_both",
                            "truth", "match"}
    assert {r["recording"] for r in rows} == {p.stem for p in icbhi_audio_dir.glob("*.wav")}


def test_spectrogram_settings_are_kept_between_sessions(qtbot, tmp_path):
    ini = str(tmp_path / "studio.ini")
    first = MainWindow(tmp_path / "ws", QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(first)
    first.colour_map.setCurrentText("greyscale")
    first._set_setting("fmax", 2000.0)
    first.settings.sync()
    second = MainWindow(tmp_path / "ws", QSettings(ini, QSettings.Format.IniFormat))
    qtbot.addWidget(second)
    assert second.display_settings()["colour_map"] == "greyscale"
    assert second.display_settings()["fmax"] == 2000.0
    assert second.colour_map.currentText() == "greyscale"


def test_screenshot_flag_writes_a_png(icbhi_audio_dir, tmp_path):
    shot = tmp_path / "window.png"
    result = subprocess.run([sys.executable, "-m", "lungkd.app.main", "--workspace", str(tmp_path / "ws"),
                             "--open", str(icbhi_audio_dir / f"{RECORDING}.wav"), "--screenshot", str(shot)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000


def test_the_model_picker_lists_the_demo_model(window):
    assert window.model_picker.count() >= 1
    assert "cnn6" in window.model_picker.itemText(0) and "Score" in window.model_picker.itemText(0)
    assert QApplication.instance() is not None
