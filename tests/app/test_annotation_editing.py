"""Editing a recording's cycles in LungKD Studio as a clinician would: mouse drags on the plots, key presses,
the table, undo and redo, saving (read back by the project's own loader), Raven tables, "save before
closing?" and an annotation changed on disk meanwhile. On a generated recording in ICBHI layout, so that a
clone without the real ICBHI files runs them too."""
import shutil
import threading

import pytest
import soundfile as sf
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QComboBox, QMessageBox

from lungkd.core.data.annotation_io import Span, annotation_text, read_raven_table
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.data.dataset import load_dataset
from lungkd.app.engine import EngineTask
from lungkd.app.recordings.cycle_document import snap
from studio_driver import LEFT, NO, click_row, data_x, drag, key, open_for_editing, respond, widget_point

# One recording of the session's synthetic dataset (tests/conftest.py): 21.343 s at 4000 Hz (a Litt3200), seven
# cycles end to end, times written as that device's files write them (five significant digits). Normal,
# normal, normal, normal, both, crackle, normal; after the last cycle, 0.767 s without one.
RECORDING = "104_1b3_Pr_sc_Litt3200"
ANNOTATION = ("0.59113\t3.7838\t0\t0\n"
              "3.7838\t5.7896\t0\t0\n"
              "5.7896\t8.1885\t0\t0\n"
              "8.1885\t11.943\t0\t0\n"
              "11.943\t14.474\t1\t1\n"
              "14.474\t17.878\t1\t0\n"
              "17.878\t20.576\t0\t0\n")
CTRL = Qt.KeyboardModifier.ControlModifier


@pytest.fixture
def folder(synthetic_dir, tmp_path):
    """A copy of one generated recording and its annotation, to be edited and saved (the session's synthetic
    folder is shared by other tests and stays as it is)."""
    target = tmp_path / "recordings"
    target.mkdir()
    for suffix in (".wav", ".txt"):
        shutil.copy(synthetic_dir / f"{RECORDING}{suffix}", target)
    assert (target / f"{RECORDING}.txt").read_text() == ANNOTATION, "the synthetic dataset changed: pick again"
    info = sf.info(target / f"{RECORDING}.wav")
    assert (info.samplerate, info.frames) == (4000, 85373)
    return target


@pytest.fixture
def page(window, folder, wait_idle, qtbot):
    return open_for_editing(window, folder, wait_idle, qtbot)


def document(page):
    return page.session.documents[page.session.current.path]


def spans(page):
    return [(s.start, s.end, s.label) for s in document(page).spans]


def test_dragging_a_shared_boundary_moves_both_cycles_undo_and_redo(page, window, qtbot, wait_idle):
    original = spans(page)
    boundary = original[1][1]  # cycle 2 ends where cycle 3 starts
    _, released = drag(page, page.view.wave, boundary, boundary + 0.6, 0.4)
    moved = snap(released)
    assert moved == pytest.approx(boundary + 0.6, abs=0.03)
    assert spans(page) == [*original[:1], (original[1][0], moved, 0), (moved, original[2][1], 0), *original[3:]]
    assert document(page).undo_stack.undoText() == "Move the end of cycle 2 and start of cycle 3"
    assert page.table.current_cycle() == 1  # the moved cycle is selected
    wait_idle(window)  # the two changed cycles go back to the model
    assert all(c.probabilities is not None for c in page.view.cycles)
    assert page.table.item(1, page.table.column("end (s)")).text() == f"{moved:.3f}"
    key(page, Qt.Key.Key_Z, CTRL)
    assert spans(page) == original and not document(page).modified
    key(page, Qt.Key.Key_Z, CTRL | Qt.KeyboardModifier.ShiftModifier)
    assert spans(page)[1][1] == moved and document(page).modified
    # a lone edge moves alone, and no further than its neighbour: the first cycle's start to the left
    first_start = original[0][0]
    drag(page, page.view.track, first_start, first_start + 0.8, 1.5)
    assert spans(page)[0][0] == pytest.approx(first_start + 0.8, abs=0.03) and spans(page)[0][1] == original[0][1]


def test_predictions_cancelled_with_esc_are_asked_for_again_when_the_model_is_chosen_again(page, window, wait_idle):
    release = threading.Event()
    window.queue.submit(EngineTask(lambda report, cancel: release.wait(30), "busy"))  # the edit's task waits behind
    document(page).move_edges([(1, "end")], spans(page)[1][1] - 0.2)
    window.queue.cancel_all()  # Esc: the edited cycles' task is dropped before it starts
    release.set()
    wait_idle(window)
    assert page.view.cycles[1].probabilities is None  # not asked again unchanged...
    page.session.set_model(page.session.model_folder)  # ...until the user chooses the model again
    wait_idle(window)
    assert all(c.probabilities is not None for c in page.view.cycles)


def test_a_drag_inside_a_cycle_pans_and_edits_nothing(page):
    page.view.zoom(0.25)
    x0 = page.view.visible_range()[0]
    middle = (spans(page)[3][0] + spans(page)[3][1]) / 2
    drag(page, page.view.wave, middle, middle - 0.5, 0.0)
    assert page.view.visible_range()[0] > x0 and document(page).undo_stack.count() == 0


def test_delete_add_by_dragging_empty_time_and_set_its_class_by_key(page, window, wait_idle):
    original = spans(page)
    page.select_cycle(6)  # the last, 17.878 to 20.576 s
    key(page, Qt.Key.Key_Delete)
    assert spans(page) == original[:6]
    pressed, released = drag(page, page.view.spec, 19.2, 19.8, 800)  # where it was: no cycle there now
    assert spans(page)[-1] == (snap(pressed), snap(released), None)
    assert page.table.current_cycle() == 6 and page.view.cycles[6].truth is None
    wait_idle(window)
    assert page.view.cycles[6].probabilities is not None  # the new cycle was predicted
    key(page, Qt.Key.Key_C)
    assert spans(page)[-1][2] == 1
    assert page.table.item(6, page.table.column("annotated")).text() == "crackle"
    key(page, Qt.Key.Key_N)
    assert spans(page)[-1][2] == 0 and page.table.item(6, page.table.column("annotated")).text() == "normal"
    assert [document(page).undo_stack.text(i) for i in range(4)] == [
        "Delete cycle 7", f"Add a cycle at {snap(pressed):.3f} s", "Set cycle 7 to crackle", "Set cycle 7 to normal"]


def test_split_at_the_mouse_merge_and_relabel_several_with_keys(page, window, qtbot, wait_idle):
    original = spans(page)
    start, end, label = original[3]
    point = widget_point(page, page.view.wave, start + 1.0, 0.2)
    QTest.mouseMove(page.view.plots.viewport(), point)
    qtbot.waitUntil(lambda: window.editing.editor.cursor_seconds is not None)
    at = snap(data_x(page, page.view.wave, point))
    key(page, Qt.Key.Key_S)
    assert spans(page)[3:5] == [(start, at, label), (at, end, label)]
    assert page.table.selected_cycles() == [3, 4]
    page.select_cycle(3)
    key(page, Qt.Key.Key_W)  # the first half has a wheeze
    page.select_cycle(4)
    key(page, Qt.Key.Key_C)  # the second a crackle
    page.select_cycle(3)
    key(page, Qt.Key.Key_M)  # merged, it holds both
    assert spans(page)[3] == (start, end, 3) and len(spans(page)) == len(original)
    click_row(page, 0)
    click_row(page, 2, Qt.KeyboardModifier.ShiftModifier)  # rows 1 to 3
    assert page.table.selected_cycles() == [0, 1, 2]
    key(page, Qt.Key.Key_B)
    assert [s[2] for s in spans(page)[:3]] == [3, 3, 3]
    assert document(page).undo_stack.undoText() == "Set 3 cycles to both"
    wait_idle(window)
    click_row(page, 5)
    click_row(page, 6, CTRL)
    key(page, Qt.Key.Key_A)  # the model's classes for both selected cycles
    predicted = [c.predicted for c in page.view.cycles[5:7]]
    assert [s[2] for s in spans(page)[5:7]] == predicted
    assert all(page.view.cycles[i].matches for i in (5, 6))
    for _ in range(8):
        window.editing.undo.trigger()
    assert spans(page) == original and not document(page).modified


def test_right_click_offers_the_edits_for_the_cycle_there(page, window):
    start, end, label = spans(page)[5]
    point = widget_point(page, page.view.spec, start + 1.2, 500)
    QTest.mouseMove(page.view.plots.viewport(), point)
    QTest.mouseClick(page.view.plots.viewport(), Qt.MouseButton.RightButton, NO, point)
    menu = window.editing.menu
    assert page.table.selected_cycles() == [5]
    assert [a.text() for a in menu.actions() if a.text()][:3] == ["Split here", "&Merge with the next cycle",
                                                                  "&Delete cycles"]
    menu.actions()[0].trigger()
    at = snap(data_x(page, page.view.spec, point))
    assert spans(page)[5:7] == [(start, at, label), (at, end, label)]


def test_the_class_column_of_the_table_sets_the_class(page, qtbot):
    table = page.table
    cell = table.visualItemRect(table.item(2, table.column("annotated"))).center()
    with qtbot.assertNotEmitted(table.cycle_activated):  # a double click elsewhere plays; here it edits
        QTest.mouseClick(table.viewport(), LEFT, NO, cell)  # QTest's double click sends the second click only
        QTest.mouseDClick(table.viewport(), LEFT, NO, cell)
    qtbot.waitUntil(lambda: table.findChild(QComboBox) is not None)
    editor = table.findChild(QComboBox)
    assert editor.currentText() == "normal"
    editor.setCurrentIndex(2)
    editor.activated.emit(2)  # what choosing an entry in the open list emits
    qtbot.waitUntil(lambda: spans(page)[2][2] == 2)
    assert table.item(2, table.column("annotated")).text() == "wheeze"
    assert document(page).undo_stack.undoText() == "Set cycle 3 to wheeze"


def test_save_writes_the_edited_cycles_which_the_loader_reads_back_exactly(page, window, folder, qtbot):
    annotation = folder / f"{RECORDING}.txt"
    original_text = annotation.read_text()
    page.select_cycle(6)
    key(page, Qt.Key.Key_Delete)
    boundary = spans(page)[2][1]  # cycle 3 ends where cycle 4 starts
    drag(page, page.view.wave, boundary, boundary - 0.4, 0.3)
    page.select_cycle(0)
    key(page, Qt.Key.Key_W)
    edited = document(page).spans
    assert window.windowTitle().endswith("[*]") and window.isWindowModified()
    key(page, Qt.Key.Key_S, CTRL)
    assert not document(page).modified and not window.isWindowModified()
    cycles, problems = read_annotation_file(annotation)
    assert not problems and [Span.from_cycle(c) for c in cycles] == list(edited)
    assert annotation.read_text() == annotation_text(edited)
    saved, given = annotation.read_text().splitlines(), ANNOTATION.splitlines()
    assert saved[0] == "0.59113\t3.7838\t0\t1" and saved[1] == given[1] and saved[4:] == given[4:6]  # as written
    assert (folder / f"{RECORDING}.txt.~1~").read_text() == original_text
    index = load_dataset(folder)  # the dataset loader takes the saved file, not the backup
    assert [Span.from_cycle(c) for c in index.recordings[0].cycles] == list(edited) and len(index.recordings) == 1
    assert "Saved 6 cycles" in window.statusBar().currentMessage()
    # undo after the save: unsaved again, and saving keeps the saved version as the next backup
    key(page, Qt.Key.Key_Z, CTRL)
    assert document(page).modified and window.editing.bar.state.text().count("unsaved") == 1
    window.editing.save.trigger()
    assert (folder / f"{RECORDING}.txt.~2~").read_text() == annotation_text(edited)
    assert read_annotation_file(annotation)[0][0].label == 0


def test_a_cycle_without_a_class_is_not_saved_and_the_error_says_which(page, window, folder, qtbot):
    annotation = folder / f"{RECORDING}.txt"
    before = annotation.read_text()
    page.select_cycle(6)
    key(page, Qt.Key.Key_Delete)
    drag(page, page.view.wave, 19.3, 19.9, 0.0)  # a new cycle where the last one was
    respond(QMessageBox.StandardButton.Ok)
    assert not window.editing.save_current()
    assert "cycle 7" in respond.text and "has no class" in respond.text and str(annotation) in respond.text
    assert annotation.read_text() == before and document(page).modified


def test_raven_tables_export_and_import_in_the_window(page, window, folder, monkeypatch):
    table = folder / f"{RECORDING}.Table.1.selections.txt"
    page.select_cycle(2)
    key(page, Qt.Key.Key_C)
    exported = document(page).spans
    monkeypatch.setattr("lungkd.app.editing.annotation_actions.QFileDialog.getSaveFileName",
                        lambda *a, **k: (str(table), ""))
    window.editing.export_raven.trigger()
    read, problems = read_raven_table(table)
    assert not problems and read == list(exported)
    assert table.read_text().splitlines()[1].split("\t")[:7] == ["1", "Spectrogram 1", "1", "0.59113", "3.7838",
                                                                  "0", "2000"]
    page.table.select_cycles(list(range(len(exported))))
    key(page, Qt.Key.Key_Delete)
    assert document(page).spans == ()
    monkeypatch.setattr("lungkd.app.editing.annotation_actions.QFileDialog.getOpenFileName",
                        lambda *a, **k: (str(table), ""))
    window.editing.import_raven.trigger()
    assert document(page).spans == exported
    assert document(page).undo_stack.undoText() == f"Import 7 cycles from {table.name}"
    assert page.table.rowCount() == 7


def test_closing_a_recording_with_unsaved_edits_asks_first(page, window, folder, qtbot):
    annotation = folder / f"{RECORDING}.txt"
    before = annotation.read_text()
    page.select_cycle(1)
    key(page, Qt.Key.Key_B)
    respond(QMessageBox.StandardButton.Cancel)
    window.remove_action.trigger()
    assert f"Save your edits to the annotation of {RECORDING}.wav before closing?" == respond.text
    assert page.session.current is not None and document(page).modified  # still open, edits kept
    respond(QMessageBox.StandardButton.Discard)
    window.remove_action.trigger()
    assert page.session.current is None and not page.session.documents and annotation.read_text() == before


def test_closing_the_window_can_save_the_edits(page, window, folder, qtbot):
    page.select_cycle(1)
    key(page, Qt.Key.Key_B)
    respond(QMessageBox.StandardButton.Cancel)
    assert not window.close() and window.isVisible()
    respond(QMessageBox.StandardButton.Save)
    assert window.close()
    assert read_annotation_file(folder / f"{RECORDING}.txt")[0][1].label == 3


def test_an_annotation_changed_on_disk_is_reported_and_not_overwritten(page, window, folder, qtbot):
    annotation = folder / f"{RECORDING}.txt"
    page.select_cycle(0)
    key(page, Qt.Key.Key_W)
    theirs = "0.59113\t3.7838\t1\t0\n"
    annotation.write_text(theirs)  # another program saves meanwhile
    qtbot.waitUntil(lambda: document(page).changed_on_disk, timeout=10000)
    assert "changed on disk" in page.recording_list.label_text(page.session.current.path)
    assert "changed on disk" in window.editing.bar.state.text()
    respond(QMessageBox.StandardButton.Cancel)
    assert not window.editing.save_current()
    assert "changed on disk after it was opened here" in respond.text
    assert annotation.read_text() == theirs and document(page).modified
    respond("Save anyway")
    assert window.editing.save_current()
    assert (folder / f"{RECORDING}.txt.~1~").read_text() == theirs
    assert read_annotation_file(annotation)[0][0].label == 2 and not document(page).changed_on_disk
