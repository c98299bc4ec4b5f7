"""The wizard's small things a user reads: learning rates shown and typed as written (1e-3, not 0.0010000)."""
import torch  # noqa: F401  - before PySide6, as in the entry point

from lungkd.app.training.wizard import StudentPage, TeachersPage


def test_learning_rates_are_shown_and_typed_as_written(wizard, qtbot, tmp_path):
    wizard.next()
    teachers = wizard.currentPage()
    assert isinstance(teachers, TeachersPage)
    assert wizard.recipe.teachers.train.lr == 1e-3 and teachers.lr.text() == "1e-3"  # not 0.0010000
    teachers.lr.lineEdit().selectAll()
    qtbot.keyClicks(teachers.lr, "2.5e-4")
    assert teachers.lr.value() == 2.5e-4 and teachers.lr.text() == "2.5e-4"
    teachers.lr.stepDown()  # the arrows halve and double
    assert teachers.lr.text() == "1.25e-4"
    teachers.lr.stepBy(2)
    assert teachers.lr.text() == "5e-4"
    teachers.grab().save(str(tmp_path / "teachers-page.png"))
    wizard.next()
    assert wizard.recipe.teachers.train.lr == 5e-4
    wizard.next()
    student = wizard.currentPage()
    assert isinstance(student, StudentPage) and student.lr.text() == "1e-3"
    student.lr.setValue(0.1)
    assert student.lr.text() == "0.1"


def test_inspect_on_generated_data_says_it_is_generated_and_split_by_patient(wizard, qtbot):
    data = wizard.currentPage()
    assert data.synthetic.isChecked() and data.split.currentText() == "patient"  # the CPU demo
    data.recordings.setValue(8)
    data.inspect.click()
    qtbot.waitUntil(lambda: data.stats is not None, timeout=60000)
    assert data.detected.text().startswith("Generated recordings in the ICBHI 2017 layout, split by patient: 8 "
                                           "recordings")
