"""Steering the automatic segmentation in LungKD Studio as a user does: Edit › Shift cycles to start at the other
phase and Edit › Segment again with this breath period… (and the same from the plots' right-click menu), each one
edit that Ctrl+Z undoes with its predictions and Ctrl+Shift+Z redoes; a period outside what the segmentation looks
for refused in the engine's words; on annotated cycles, and on fixed windows, the actions say why they are
disabled. On a generated recording opened without its annotation, so that a clone without ../shared runs them."""
import shutil

import pytest
import soundfile as sf
from PySide6.QtCore import QEvent, Qt
from PySide6.QtGui import QHelpEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QToolTip

from lungkd.core.analysis.segmentation import segment_cycles, shift_to_other_phase
from studio_driver import NO, key, open_for_editing, widget_point

RECORDING = "104_1b3_Pr_sc_Litt3200"  # 21.3 s at 4000 Hz; found automatically: 7 cycles, a breath every 2.66 s
SHIFT = "Shift cycles to start at the other phase"
AGAIN = "Segment again with this breath period…"
CTRL, SHIFT_KEY = Qt.KeyboardModifier.ControlModifier, Qt.KeyboardModifier.ShiftModifier


def copy_of(synthetic_dir, tmp_path, annotated: bool):
    folder = tmp_path / ("annotated" if annotated else "unannotated")
    folder.mkdir()
    for suffix in (".wav", ".txt") if annotated else (".wav",):
        shutil.copy(synthetic_dir / f"{RECORDING}{suffix}", folder)
    return folder


@pytest.fixture
def page(window, synthetic_dir, tmp_path, wait_idle, qtbot):
    return open_for_editing(window, copy_of(synthetic_dir, tmp_path, annotated=False), wait_idle, qtbot)


def edit_menu(window):
    return next(a.menu() for a in window.menuBar().actions() if a.text() == "&Edit")


def edit_menu_action(window, text):
    return next(a for a in edit_menu(window).actions() if a.text().replace("&", "") == text)


def tooltip_shown(menu, action, qtbot) -> str:
    """The tooltip the menu shows when the pointer rests on `action`, as a user sees it."""
    menu.popup(menu.parentWidget().mapToGlobal(menu.parentWidget().rect().topLeft()))
    qtbot.waitExposed(menu)
    point = menu.actionGeometry(action).center()
    QTest.mouseMove(menu, point)
    QApplication.sendEvent(menu, QHelpEvent(QEvent.Type.ToolTip, point, menu.mapToGlobal(point)))
    shown = QToolTip.text() if QToolTip.isVisible() else ""
    QToolTip.hideText()
    menu.hide()
    return shown


def document(page):
    return page.session.documents[page.session.current.path]


def spans(page):
    return [(s.start, s.end) for s in document(page).spans]


def right_click_menu(page, window):
    point = widget_point(page, page.view.spec, 1.0, 500)
    QTest.mouseMove(page.view.plots.viewport(), point)
    QTest.mouseClick(page.view.plots.viewport(), Qt.MouseButton.RightButton, NO, point)
    return {a.text().replace("&", ""): a for a in window.editing.menu.actions() if a.text()}


def test_shifting_the_cycles_to_the_other_phase_is_one_edit_undone_and_redone_with_its_predictions(
        page, window, wait_idle):
    found = document(page).segmentation
    original = spans(page)
    assert page.session.current.analysis.cycle_source == "automatic" and original == found.spans
    assert "Phase uncertain" not in page.view.title.text()  # the generated breaths' phases are clear
    shift = edit_menu_action(window, SHIFT)
    assert shift.isEnabled() and "start every cycle at the other breathing phase" in shift.toolTip()
    shift.trigger()
    shifted = shift_to_other_phase(found)
    assert spans(page) == shifted.spans != original
    assert document(page).undo_stack.count() == 1
    assert document(page).undo_stack.undoText() == "Shift the cycles to start at the other phase"
    assert "⚠ Phase uncertain: the cycles were shifted to start at the other phase, which the segmentation took " \
           "for expiration (100% sure)." in page.view.title.text()
    wait_idle(window)  # the new spans go to the model as any edited cycle does
    assert all(c.probabilities is not None for c in page.view.cycles)
    analysis = page.session.current_analysis()
    assert analysis.cycle_source == "edited" and analysis.phase_uncertain and analysis.phase_confidence == 0
    assert [c.segmentation_confidence for c in analysis.cycles] == [c.confidence for c in shifted.cycles]

    key(page, Qt.Key.Key_Z, CTRL)  # undo: the cycles, their predictions and the sure phase are back at once
    assert spans(page) == original and not document(page).modified
    assert all(c.probabilities is not None for c in page.view.cycles)
    assert "Phase uncertain" not in page.view.title.text() and not page.session.current_analysis().phase_uncertain
    key(page, Qt.Key.Key_Z, CTRL | SHIFT_KEY)  # redo
    assert spans(page) == shifted.spans and all(c.probabilities is not None for c in page.view.cycles)

    back = right_click_menu(page, window)[SHIFT]  # the plots' right-click menu shifts back
    assert back.isEnabled()
    back.trigger()
    assert spans(page) == original and document(page).segmentation == found
    assert document(page).undo_stack.undoText() == "Shift the cycles to start at the phase the segmentation chose"


def test_segmenting_again_at_a_period_the_user_gives_refuses_one_outside_1_to_8_s(page, window, wait_idle, qtbot):
    original, found = spans(page), document(page).segmentation
    edit_menu_action(window, AGAIN).trigger()
    dialog = window.editing.segmentation.dialog
    qtbot.waitExposed(dialog)
    assert dialog.period.text() == f"{found.period:.2f}" == "2.66"  # the current period, proposed
    for typed, said in (("0.5", "a breathing period of 0.5 s is outside the 1-8 s the segmentation looks for. "
                                "Fix: give the time from one inspiration to the next, between 1 and 8 s."),
                        ("9", "a breathing period of 9 s is outside the 1-8 s"),
                        ("three", "“three” is not a number of seconds.")):
        dialog.period.clear()
        QTest.keyClicks(dialog.period, typed)
        QTest.mouseClick(dialog.ok, Qt.MouseButton.LeftButton)
        assert dialog.isVisible() and dialog.problem.isVisible() and said in dialog.problem.text()
        assert not window.queue.is_busy() and document(page).undo_stack.count() == 0  # refused: nothing started
    dialog.period.clear()
    QTest.keyClicks(dialog.period, "5,3")  # a decimal comma is a period too
    QTest.keyClick(dialog.period, Qt.Key.Key_Return)
    assert not dialog.isVisible()
    wait_idle(window)  # segmented in the engine, then the new cycles predicted
    samples, sr = sf.read(page.session.current.path, dtype="float32")
    expected = segment_cycles(samples, sr, location="Pr", period_hint=5.3)
    assert spans(page) == expected.spans and len(expected.spans) < len(original)
    assert document(page).segmentation.period == 5.3 and document(page).undo_stack.count() == 1
    assert document(page).undo_stack.undoText() == "Segment again at a 5.3 s breathing period"
    assert all(c.probabilities is not None for c in page.view.cycles)
    assert page.session.current_analysis().breathing_period == 5.3
    window.activateWindow()  # as the window manager does when a dialog closes (the offscreen platform does not)
    qtbot.waitUntil(window.isActiveWindow)
    key(page, Qt.Key.Key_Z, CTRL)
    assert spans(page) == original and document(page).segmentation == found and not document(page).modified
    key(page, Qt.Key.Key_Z, CTRL | SHIFT_KEY)
    assert spans(page) == expected.spans and all(c.probabilities is not None for c in page.view.cycles)

    right_click_menu(page, window)[AGAIN].trigger()  # from the right-click menu: the period now followed
    assert window.editing.segmentation.dialog.period.text() == "5.30"
    window.editing.segmentation.dialog.reject()


def test_on_annotated_cycles_both_actions_are_disabled_and_say_why(window, synthetic_dir, tmp_path, wait_idle,
                                                                   qtbot):
    page = open_for_editing(window, copy_of(synthetic_dir, tmp_path, annotated=True), wait_idle, qtbot)
    why = (f"These cycles come from the annotation beside the recording ({RECORDING}.txt): only cycles the "
           "automatic segmentation found are shifted or segmented again.")
    for text in (SHIFT, AGAIN):
        action = edit_menu_action(window, text)
        assert not action.isEnabled() and action.toolTip() == why
        assert tooltip_shown(edit_menu(window), action, qtbot) == why  # where the pointer rests on it
        assert not right_click_menu(page, window)[text].isEnabled()
    assert document(page).undo_stack.count() == 0


def test_fixed_windows_cannot_be_shifted_but_can_be_segmented_again(window, tone_recording, wait_idle, qtbot):
    open_for_editing(window, tone_recording, wait_idle, qtbot)
    assert window.session.current.analysis.cycle_source == "fixed windows"
    shift = edit_menu_action(window, SHIFT)
    assert not shift.isEnabled()
    assert shift.toolTip().startswith("these cycles have no other breathing phase to start at: no breathing heard")
    assert edit_menu_action(window, AGAIN).isEnabled()


def test_the_header_says_when_the_segmentation_is_unsure_of_the_phase(window, icbhi_audio_dir, tmp_path, wait_idle,
                                                                      qtbot):
    """The real recording whose inspiration and expiration are about as strong, opened without its annotation."""
    unannotated = tmp_path / "103_2b2_Ar_mc_LittC2SE.wav"
    unannotated.symlink_to(icbhi_audio_dir / unannotated.name)
    page = open_for_editing(window, unannotated, wait_idle, qtbot)
    assert "⚠ Phase uncertain: inspiration and expiration are about as strong here" in page.view.title.text()
    assert "at the chest wall inspiration is the stronger phase." in page.view.title.text()
