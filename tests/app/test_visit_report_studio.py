"""File > Report of this visit… in LungKD Studio: the user opens a folder holding two visits, corrects a class and
saves, then asks for the report of the visit on screen; the PDF (Qt's own writer) holds that visit's recordings
and not the other's, and the change the user saved, with their name."""
import shutil

from PySide6.QtCore import Qt

from lungkd.core.data.edit_history import user_name
from lungkd.core.labels import CLASS_NAMES
from studio_driver import click_row, key

VISIT, OTHER = ("102_1b3_Lr_mc_LittC2SE", "102_1b3_Tc_mc_LittC2SE"), "102_2b1_Ar_sc_LittC2SE"


def pdf_text(path) -> str:
    from PySide6.QtPdf import QPdfDocument

    document = QPdfDocument()
    assert document.load(str(path)) == QPdfDocument.Error.None_
    return "".join("".join(document.getAllText(page).text().split()) for page in range(document.pageCount()))


def test_the_report_of_the_visit_on_screen_holds_its_recordings_and_the_change_saved(window, synthetic_dir, tmp_path,
                                                                                     wait_idle, monkeypatch, qtbot):
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name in (*VISIT, OTHER):
        for suffix in (".wav", ".txt"):
            shutil.copy(synthetic_dir / f"{name}{suffix}", folder / f"{name}{suffix}")
    window.open_paths([folder])
    wait_idle(window)
    page = window.recordings
    page.recording_list.setCurrentItem(page.recording_list.item_for(folder / f"{VISIT[0]}.wav"))
    click_row(page, 0)
    before = page.session.current_document().spans[0].label
    new = next(k for k in (2, 1) if k != before)  # wheeze, or crackle where it was wheeze
    key(page, {1: Qt.Key.Key_C, 2: Qt.Key.Key_W}[new])
    key(page, Qt.Key.Key_S, Qt.KeyboardModifier.ControlModifier)  # saved: the history has the change
    qtbot.waitUntil(lambda: not page.session.current_document().modified, timeout=5000)

    target = tmp_path / "report.pdf"
    monkeypatch.setattr("lungkd.app.shell.visit_report.QFileDialog.getSaveFileName",
                        lambda *a, **k: (str(target), "PDF (*.pdf)"))
    assert window.report_action.isEnabled()
    with qtbot.waitSignal(window.visit_reporter.written, timeout=120000):
        window.report_action.trigger()
    text = pdf_text(target)
    assert "Visitreport:patient102,session1b3" in text and "notadiagnosis" in text
    assert all(name in text for name in VISIT) and OTHER not in text
    assert "".join(user_name().split()) in text
    assert "changedtheclassofthecycle" in text and f"to{CLASS_NAMES[new]}" in text
    assert f"Setcycle1to{CLASS_NAMES[new]}" in text  # the Studio's own words for the edit
