"""Review mode on generated recordings: the queue's order, the keys, the progress; and the whole loop —
review, correct, "Train on these recordings", the wizard's student chosen for analysis, and
then its teachers' votes and ensemble beside it, the same as the engine gives for each teacher."""
import shutil

import numpy as np
import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from lungkd.app.recordings.cycle_table import ENSEMBLE
from lungkd.app.training.wizard import DataPage, ResultsPage, RunPage
from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.analysis.predict import analyse_recording
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.data.synth import write_synthetic_dataset
from lungkd.core.kd.soft_labels import ensemble_probabilities
from lungkd.core.labels import CLASS_NAMES
from studio_driver import click_row, key, open_for_editing, respond

# Three recordings of the session's synthetic dataset (tests/conftest.py), one per device, twelve cycles: crackle,
# normal, normal; crackle, crackle, normal, normal; five normal. No wheeze: pressing W always changes a class.
RECORDINGS = ("103_1b4_Ar_sc_Meditron", "102_1b3_Tc_mc_LittC2SE", "101_1b3_Ll_mc_AKGC417L")
LABELS = ((1, 0, 0), (1, 1, 0, 0), (0, 0, 0, 0, 0))
CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


@pytest.fixture
def page(window, synthetic_dir, tmp_path, wait_idle, qtbot):
    """The three recordings copied into a folder of their own (the session's synthetic folder is shared by
    other tests and stays as it is), open and analysed."""
    folder = tmp_path / "recordings"
    folder.mkdir()
    for name, labels in zip(RECORDINGS, LABELS):
        for suffix in (".wav", ".txt"):
            shutil.copy(synthetic_dir / f"{name}{suffix}", folder)
        given = [line.split("\t") for line in (folder / f"{name}.txt").read_text().splitlines()]
        assert tuple(int(c) + 2 * int(w) for *_, c, w in given) == labels, "the synthetic dataset changed: pick again"
    return open_for_editing(window, folder, wait_idle, qtbot)


def mismatch(page) -> bool:
    """Whether the selected cycle's table row shows the model disagreeing with its annotation."""
    table = page.table
    return table.item(table.current_cycle(), table.column("match")).text() == "✗ differs"


def annotated_percent(page, entry) -> int:
    """The probability the model gives the entry's annotated class, in whole percent as the Studio shows it."""
    document = page.session.documents[entry.path]
    span = next(s for s in document.spans if s.start <= entry.middle < s.end)
    return round(100 * document.probabilities(page.session.model_folder, span)[span.label])


def test_review_walks_the_labels_the_model_doubts_most_first_with_keys(page, window):
    review = window.review
    total = sum(len(d.spans) for d in page.session.documents.values())
    assert total == sum(map(len, LABELS)) and len(page.session.documents) == len(RECORDINGS)
    key(page, Qt.Key.Key_R, CTRL_SHIFT)
    assert review.active and review.bar.isVisible() and not window.editing.bar.hint.isVisible()
    assert review.bar.progress.text() == f"0 / {total} reviewed" and len(review.entries) == total
    percents, mismatches = [], []
    for position in range(total):  # → walks the whole queue; the table shows where it is
        assert review.position == position
        entry = review.entries[position]
        assert page.session.current.path == entry.path
        assert page.view.cycles[page.table.current_cycle()].start == entry.start
        percents.append(annotated_percent(page, entry))
        mismatches.append(mismatch(page))
        key(page, Qt.Key.Key_Right)
    assert percents == sorted(percents)  # the annotated class the model gives least first
    assert any(mismatches) and all(p < 50 for p, m in zip(percents, mismatches) if m)  # each one likely wrong
    assert review.bar.progress.text() == f"{total} / {total} reviewed" and "all reviewed" in review.bar.where.text()


def test_setting_a_class_in_review_goes_on_and_counts(page, window):
    review = window.review
    key(page, Qt.Key.Key_R, CTRL_SHIFT)
    first, second = review.entries[0], review.entries[1]
    key(page, Qt.Key.Key_Right)
    key(page, Qt.Key.Key_Left)  # back: the first is reviewed already
    assert review.position == 0 and review.reviewed() == 1
    key(page, Qt.Key.Key_W)
    document = page.session.documents[first.path]
    assert next(s for s in document.spans if s.start == first.start).label == 2
    assert review.position == 1 and review.reviewed() == 1
    key(page, Qt.Key.Key_A)  # the model's class for the second, and on
    shown = page.session.documents[second.path].shown(page.session.model_folder)
    cycle = next(c for c in shown if c.start == second.start)
    assert cycle.truth == cycle.predicted and review.position == 2 and review.reviewed() == 2
    assert review.bar.progress.text() == f"2 / {len(review.entries)} reviewed"
    assert review.bar.where.text().startswith(f"3 of {len(review.entries)}: ")
    review.bar.done.click()
    assert not review.active and not review.bar.isVisible()
    before = page.table.current_cycle()
    key(page, Qt.Key.Key_Right)  # outside review the arrow is the table's again
    assert page.table.current_cycle() == before and review.position == 2


def test_the_whole_loop_review_correct_train_and_see_the_teachers(window, tmp_path, qtbot, wait_idle):
    """Generated recordings (ICBHI layout, with a split file), one label corrected in review, the wizard
    trains tiny teachers and a student on the folder, the student analyses the recordings, and its
    teachers' votes show beside it."""
    folder = tmp_path / "generated"
    write_synthetic_dataset(folder, recordings=8, seed=5)
    page, review = open_for_editing(window, folder, wait_idle, qtbot), window.review
    key(page, Qt.Key.Key_R, CTRL_SHIFT)
    entry = review.entries[0]
    key(page, Qt.Key.Key_B)  # corrected to "both"
    respond(QMessageBox.StandardButton.Save)
    review.bar.train.click()  # "save before training?" - Save
    assert "before training on the files on disk" in respond.text
    corrected = read_annotation_file(entry.path.with_suffix(".txt"))[0]
    assert next(c for c in corrected if c.start == entry.start).label == 3

    wizard = window.wizard
    data = wizard.currentPage()
    assert isinstance(data, DataPage) and data.folder.text() == str(folder) and not data.synthetic.isChecked()
    assert data.split.currentText() == "official"  # the folder has a split file
    wizard.next()  # the page reads the folder first, then goes on by itself
    qtbot.waitUntil(lambda: wizard.currentPage() is not data, timeout=120000)
    teachers = wizard.currentPage()
    teachers.size.setCurrentText("tiny")
    teachers.k.setValue(2)
    teachers.epochs.setValue(1)
    wizard.next()
    wizard.currentPage().k.setValue(2)
    wizard.next()
    student = wizard.currentPage()
    student.size.setCurrentText("tiny")
    student.seeds.setText("1")
    student.epochs.setValue(1)
    student.baseline.setChecked(False)
    student.second.setChecked(False)
    wizard.next()
    wizard.next()
    run = wizard.currentPage()
    assert isinstance(run, RunPage)
    run.start()
    qtbot.waitUntil(lambda: run.isComplete() or run.start_button.isEnabled(), timeout=600000)
    assert run.isComplete(), f"{run.error.text()}\n{run.log.toPlainText()[-3000:]}"
    wizard.next()
    results = wizard.currentPage()
    assert isinstance(results, ResultsPage)
    respond("Use it anyway")  # eight recordings test the student on too few cycles: the page asks first
    results.use_student.click()
    assert "fewer than" in respond.informative
    student_model = results.student_model()
    assert page.session.model_folder == student_model
    assert [p.parent.name for p in page.session.teacher_folders] == ["seed-1", "seed-2"]

    window.teachers_action.trigger()  # View > Show the teachers' votes
    wait_idle(window, 300000)
    table = page.table
    headers = [table.horizontalHeaderItem(i).text() for i in range(table.columnCount())]
    assert headers[-5:] == ["teachers", *(ENSEMBLE.format(name) for name in CLASS_NAMES)]
    metrics = table.horizontalHeader().fontMetrics()
    for column, header in enumerate(headers):  # no header cut, however many columns
        assert table.horizontalHeader().sectionSize(column) >= max(map(metrics.horizontalAdvance,
                                                                       header.split("\n"))), header
    document = page.session.documents[page.session.current.path]
    spans = [(s.start, s.end) for s in document.spans]
    per_teacher = [analyse_recording(page.session.current.path, load_model_with_limits(folder_), spans=spans)
                   for folder_ in page.session.teacher_folders]  # what the engine says, recording by recording
    for row in range(table.rowCount()):
        votes = [int(np.argmax(t.cycles[row].probabilities)) for t in per_teacher]
        assert table.item(row, table.column("teachers")).text() == " ".join(CLASS_NAMES[v][0].upper() for v in votes)
        ensemble = ensemble_probabilities([t.cycles[row].probabilities for t in per_teacher])
        shown = [float(table.item(row, table.column(ENSEMBLE.format(name))).text()) for name in CLASS_NAMES]
        np.testing.assert_allclose(shown, ensemble, atol=6e-4)  # three decimals shown
    click_row(page, 0)
    key(page, Qt.Key.Key_R, CTRL_SHIFT)
    key(page, Qt.Key.Key_R, CTRL_SHIFT)  # off and on: the queue now counts the teachers
    assert review.active and "teachers" in review.bar.reason.text()


CLASS_KEYS = (Qt.Key.Key_N, Qt.Key.Key_C, Qt.Key.Key_W, Qt.Key.Key_B)


def test_the_bar_counts_the_likely_wrong_labels_left_as_they_are_corrected(page, window):
    """Likely wrong: the model gives the annotated class under 50 % (calibrated, as the table shows it). Counted
    here from the documents, independently of the review mode's own count."""
    review, session = window.review, page.session
    key(page, Qt.Key.Key_R, CTRL_SHIFT)

    def doubted() -> int:
        count = 0
        for entry in review.entries:
            document = session.documents[entry.path]
            span = next(s for s in document.spans if s.start <= entry.middle < s.end)
            probabilities = document.probabilities(session.model_folder, span)
            count += not entry.reviewed and probabilities[span.label] < 0.5
        return count

    def shown() -> int:
        text = review.bar.likely_wrong.text()
        assert text.endswith((" likely wrong labels left", " likely wrong label left")), text
        return int(text.split()[0])

    left = doubted()
    assert left >= 2 and shown() == left
    first = review.entries[0]
    document = session.documents[first.path]
    span = next(s for s in document.spans if s.start <= first.middle < s.end)
    key(page, CLASS_KEYS[int(np.argmax(document.probabilities(session.model_folder, span)))])  # the model's class
    assert shown() == doubted() == left - 1
    key(page, Qt.Key.Key_Right)  # kept as annotated: reviewed, no longer counted
    assert shown() == doubted() == left - 2
