"""LungKD Studio's Recordings page, driven as a user would: drops, the analysis of an annotated ICBHI-format
recording, selection between table and plot, CSV export, settings kept, errors, the --screenshot path."""
import csv
import shutil

import numpy as np
import pytest
import soundfile as sf
from PySide6.QtCore import QPoint, QPointF, QSettings, Qt
from PySide6.QtGui import QImage

from lungkd.app.engine import EngineTask
from lungkd.app.recordings.cycle_table import TRAINING
from lungkd.app.shell.main import main
from lungkd.app.shell.main_window import MainWindow
from lungkd.app.theme import DOUBTED
from lungkd.core.analysis.predict import CSV_COLUMNS
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.models.inventory import shipped_models_folder
from studio_driver import drop as drop_on


def drop(window, paths) -> bool:
    """Drags the paths onto the window and drops them, as a file manager would; True when it took them."""
    return drop_on(window, paths, QPoint(300, 300))


@pytest.fixture
def analysed(window, recording, wait_idle):
    """The window with one annotated recording analysed."""
    window.open_paths([recording])
    wait_idle(window)
    return window.recordings


def test_dropped_files_and_folders_load_and_a_bad_file_gets_its_own_error(window, synthetic_dir, tmp_path,
                                                                          wait_idle):
    folder = tmp_path / "dropped"
    folder.mkdir()
    names = [p.stem for p in sorted(synthetic_dir.glob("*_LittC2SE.wav"))[:2]]
    for name in names:  # links: audio and annotation side by side
        for suffix in (".wav", ".txt"):
            (folder / f"{name}{suffix}").symlink_to(synthetic_dir / f"{name}{suffix}")
    bad = tmp_path / "broken.wav"
    bad.write_text("not a recording")
    assert drop(window, [bad, folder])
    wait_idle(window)
    page = window.recordings
    assert sorted(p.name for p in page.session.recordings) == [f"{name}.wav" for name in names]
    assert page.recording_list.count() == 3
    assert list(page.recording_list.failures) == [bad]
    assert "Format not recognised" in page.recording_list.failures[bad].message  # the name is in the label
    assert "broken.wav" in page.recording_list.label_text(bad)
    assert "1 could not be opened" in window.statusBar().currentMessage()
    assert window.last_error is None  # a bad file among many does not interrupt with a dialog
    assert page.session.current is not None and page.view.recording is page.session.current
    summary = page.recording_list.label_text(folder / f"{names[1]}.wav")
    cycles, _ = read_annotation_file(folder / f"{names[1]}.txt")
    duration = sf.info(folder / f"{names[1]}.wav").duration
    assert f"{duration:.1f} s" in summary and "LittC2SE" in summary and f"{len(cycles)} cycles (annotation)" in summary


def test_a_recording_shows_its_annotated_cycles_with_the_truth(analysed, recording):
    annotated, _ = read_annotation_file(recording.with_suffix(".txt"))
    table = analysed.table
    assert table.rowCount() == len(annotated)
    column = {table.horizontalHeaderItem(i).text(): i for i in range(table.columnCount())}
    assert [float(table.item(r, column["start (s)"]).text()) for r in range(table.rowCount())] == \
        [pytest.approx(c.start, abs=5e-4) for c in annotated]  # shown to the millisecond
    assert [table.item(r, column["annotated"]).text() for r in range(table.rowCount())] == \
        [CLASS_NAMES[c.label] for c in annotated]
    for row, cycle in enumerate(analysed.session.current.analysis.cycles):
        assert table.item(row, column["match"]).text() == ("✓" if cycle.matches else "✗ differs")
        assert sum(float(table.item(row, column[n]).text()) for n in CLASS_NAMES) == pytest.approx(1, abs=0.01)
    assert "from the annotation file" in analysed.view.title.text()
    assert len(analysed.view.labels) == 2 * len(annotated)  # a prediction and an annotation label per cycle


def test_table_and_plot_select_each_other(analysed, qtbot):
    view, table = analysed.view, analysed.table
    cycles = analysed.session.current.analysis.cycles
    table.selectRow(2)
    assert view.selection[0].isVisible() and view.selection[0].getRegion() == pytest.approx(
        (cycles[2].start, cycles[2].end))
    middle = (cycles[5].start + cycles[5].end) / 2
    scene_point = view.wave.vb.mapViewToScene(QPointF(middle, 0.0))
    qtbot.mouseClick(view.plots.viewport(), Qt.MouseButton.LeftButton, pos=view.plots.mapFromScene(scene_point))
    assert table.current_cycle() == 5
    assert view.selection[2].getRegion() == pytest.approx((cycles[5].start, cycles[5].end))
    assert "cycle 6" in view.describe(view.track, middle, 1.5)


def test_export_is_offered_while_the_model_has_analysed_an_open_recording(window, recording, wait_idle):
    assert not window.export_action.isEnabled() and not window.session.has_analyses()
    window.open_paths([recording])
    wait_idle(window)
    assert window.export_action.isEnabled() and window.session.has_analyses() and window.session.analyses()
    window.recordings.remove_current()
    assert not window.export_action.isEnabled() and not window.session.has_analyses()


def test_cycles_export_as_csv(analysed, window, recording, tmp_path, monkeypatch):
    target = tmp_path / "cycles.csv"
    monkeypatch.setattr("lungkd.app.shell.main_window.QFileDialog.getSaveFileName", lambda *a, **k: (str(target), ""))
    assert window.export_action.isEnabled()
    window.export_action.trigger()
    with open(target, newline="") as f:
        rows = list(csv.DictReader(f))
    cycles = analysed.session.current.analysis.cycles
    assert list(rows[0]) == list(CSV_COLUMNS)
    assert len(rows) == len(cycles) and {r["recording"] for r in rows} == {recording.stem}
    assert [r["prediction"] for r in rows] == [CLASS_NAMES[c.predicted] for c in cycles]
    assert [r["truth"] for r in rows] == [CLASS_NAMES[c.truth] for c in cycles]


def test_spectrogram_settings_apply_and_are_kept_between_sessions(analysed, window, workspace, store, qtbot):
    bar = analysed.spectrogram_bar
    bar.spins["window_ms"].setValue(64)
    bar.spins["fmax"].setValue(1500)
    bar.colour_map.setCurrentText("greyscale")
    qtbot.waitUntil(lambda: analysed.session.current.spectrogram.key == (64.0, 8.0), timeout=10000)
    assert analysed.view.spec.vb.viewRange()[1] == pytest.approx([0, 1500])
    assert analysed.view.colour_bar.levels() == pytest.approx((-70, 0))
    store.sync()
    reopened = MainWindow(workspace, QSettings(store.fileName(), QSettings.Format.IniFormat))
    qtbot.addWidget(reopened)
    kept = reopened.recordings.settings
    assert (kept.window_ms, kept.fmax, kept.colour_map) == (64, 1500, "greyscale")
    assert reopened.recordings.spectrogram_bar.colour_map.currentText() == "greyscale"


def test_choosing_another_model_analyses_the_open_recordings_again(analysed, window, workspace, wait_idle):
    document = analysed.session.documents[analysed.session.current.path]
    first, copy = workspace / "runs" / "tiny-cnn6" / "model", workspace / "runs" / "tiny-copy" / "model"
    shutil.copytree(first, copy)
    window.refresh_models()
    picker = window.model_picker
    names = [picker.itemText(i) for i in range(picker.count())]
    assert "runs/tiny-copy (cnn6) — Score 51.5" in names and "runs/tiny-cnn6 (cnn6) — Score 51.5" in names
    assert "demo-cnn6 — Score 89.0 on the test split of synthetic-360-seed0-noise0 (545 cycles)" in names  # shipped
    picker.setCurrentIndex(picker.findData(str(copy)))
    wait_idle(window)
    assert analysed.session.model_folder == copy and document.missing_spans(copy) == []
    np.testing.assert_allclose([document.probabilities(copy, s) for s in document.spans],  # the same weights
                               [document.probabilities(first, s) for s in document.spans], atol=1e-5)
    assert [c.probabilities for c in analysed.view.cycles] == [document.probabilities(copy, s) for s in document.spans]


def test_the_model_says_what_it_learnt_from_and_predictions_on_unlike_sounds_are_greyed(window, recording,
                                                                                        tone_recording, wait_idle,
                                                                                        tmp_path):
    """The shipped demo model (synthetic recordings only) beside the picker and above the predictions; a tone,
    unlike its training data, with every prediction greyed in the table and the plot; a synthetic recording not."""
    picker = window.model_picker
    picker.setCurrentIndex(picker.findData(str(shipped_models_folder() / "demo-cnn6")))
    assert "⚠ trained on synthetic recordings only<br><small>201 recordings, 1194 cycles" in window.model_notes.text()
    assert "demonstration, not a diagnosis" in window.model_notes.toolTip()
    window.open_paths([recording, tone_recording])
    wait_idle(window)
    page = window.recordings
    page.session.set_current(tone_recording)
    wait_idle(window)  # shown in turns: plots, notice, table
    window.grab().save(str(tmp_path / "unlike.png"))
    analysis = page.session.current.analysis
    assert analysis.unlike_training and analysis.calibrated
    assert page.notice.isVisible() and "This recording is outside the model's training data" in page.notice.text()
    assert "outside the model's training data" in page.recording_list.label_text(tone_recording)
    assert "training data" not in page.recording_list.label_text(recording)
    assert "synthetic recordings only" in page.notice.text()
    for row in range(page.table.rowCount()):
        assert page.table.item(row, 3).foreground().color() == DOUBTED
        assert page.table.item(row, TRAINING).text().startswith("outside · ")
    page.session.set_current(recording)
    wait_idle(window)
    assert page.session.current.analysis.unlike_training is False and "outside" not in page.notice.text()
    assert "synthetic recordings only" in page.notice.text()  # the model's warning stays on every prediction view
    assert page.table.item(0, 3).foreground().color() != DOUBTED
    picker.setCurrentIndex(picker.findData(str(window.workspace / "runs" / "tiny-cnn6" / "model")))
    wait_idle(window)
    assert "synthetic recordings only" not in window.model_notes.text() + page.notice.text()


def test_edited_cycles_keep_their_marks_and_the_recording_is_judged_as_it_stands(window, tone_recording, wait_idle):
    """Cycles split on a recording unlike the demo model's training data are predicted again with their own
    distances and stay greyed; undo brings back the old ones with theirs; the export says "edited"."""
    picker = window.model_picker
    picker.setCurrentIndex(picker.findData(str(shipped_models_folder() / "demo-cnn6")))
    window.open_paths([tone_recording])
    wait_idle(window)
    page = window.recordings
    document = page.session.documents[tone_recording]
    before = [(c.start, c.end, c.training_distance) for c in page.view.cycles]
    first = document.spans[0]
    document.split(0, (first.start + first.end) / 2)
    wait_idle(window)  # the two halves go to the model
    halves = page.view.cycles[:2]
    assert [(c.start, c.end) for c in halves] == [(first.start, halves[0].end), (halves[0].end, first.end)]
    assert all(c.training_distance is not None and c.doubted for c in page.view.cycles)
    for row in range(page.table.rowCount()):
        assert page.table.item(row, 3).foreground().color() == DOUBTED
        assert page.table.item(row, TRAINING).text().startswith("outside · ")
    assert "This recording is outside the model's training data" in page.notice.text()
    assert "outside the model's training data" in page.recording_list.label_text(tone_recording)
    (analysis,) = page.session.analyses()
    assert analysis.cycle_source == "edited" and analysis.unlike_training and len(analysis.cycles) == len(before) + 1
    document.undo_stack.undo()
    assert [(c.start, c.end, c.training_distance) for c in page.view.cycles] == before  # no model needed


def test_an_engine_failure_shows_details_and_the_window_keeps_working(window, recording, wait_idle):
    def broken(report, cancel):
        raise RuntimeError("the engine broke")

    task = EngineTask(broken)
    task.failed.connect(window.show_error)
    window.queue.submit(task)
    wait_idle(window)
    assert window.last_error.text() == "the engine broke"
    assert "RuntimeError" in window.last_error.detailedText()
    window.open_paths([recording])
    wait_idle(window)
    assert window.recordings.table.rowCount() > 0


def test_playback_is_disabled_with_the_reason_when_there_is_no_audio_output(analysed, window):
    if window.player.available:
        pytest.skip("this machine has an audio output device")
    assert not window.play_action.isEnabled()
    assert window.play_action.toolTip().startswith("Playback is unavailable")
    analysed.toggle_playback()  # harmless without a device
    assert not window.player.is_playing()


def test_screenshot_option_writes_a_png(workspace, tmp_path, recording, qapp):
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    png = tmp_path / "shots" / "main.png"
    assert main(["--workspace", str(workspace), "--open", str(recording),
                 "--screenshot", str(png)]) == 0
    image = QImage(str(png))
    assert image.width() >= 1000 and image.height() >= 600
    assert len({image.pixel(x, y) for x in range(0, image.width(), 37) for y in range(0, image.height(), 37)}) > 20
