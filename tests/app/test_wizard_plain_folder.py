"""The wizard on a user's own plain folder of recordings (wav + ICBHI txt, no split file): the Data page takes
the patient split and says what it holds out, and a folder it must refuse is refused once, with the real cause
and the one change that fixes it, in sentences."""
import torch  # noqa: F401  - before PySide6, as in the entry point

from lungkd.app.training.wizard import DataPage, TeachersPage
from plain_folder import plain_folder

LITERAL_MARKS = ("{'", "': ", "None", "->", "Traceback")


def _sentences(text: str) -> bool:
    """Words ending in a full stop, with no Python literal or traceback in them."""
    return text.endswith(".") and not any(mark in text for mark in LITERAL_MARKS)


def test_a_plain_folder_gets_the_patient_split_with_its_test_fraction_and_trains(wizard, qtbot, synthetic_dir,
                                                                                  tmp_path):
    folder = plain_folder(synthetic_dir, tmp_path / "my recordings")
    data = wizard.currentPage()
    qtbot.keyClicks(data.folder, str(folder))
    assert data.split.currentText() == "official"  # nothing read yet
    for selection in ("best_val", "best_test"):  # each was refused before: 0 patients, no training cycles
        data.selection.setCurrentText(selection)
        wizard.next()  # inspects, takes the patient split, and goes on by itself
        qtbot.waitUntil(lambda: isinstance(wizard.currentPage(), TeachersPage), timeout=60000)
        assert data.error.text() == ""
        assert wizard.recipe.data.split == "patient" and wizard.recipe.data.path == str(folder)
        assert data.split.currentText() == "patient"
        fraction = wizard.recipe.data.test_fraction
        assert data.split_note.text().startswith(f"{fraction:.0%} of the patients held out for testing")
        assert data.detected.text().startswith("a folder without a split file: 14 recordings (14 with audio) of 4 "
                                               "patients")
        assert data.stats["cycles_with_audio"]["train"] > 0 and data.stats["cycles_with_audio"]["test"] > 0
        wizard.back()
    assert data.split.toolTip() and data.selection.toolTip()
    data.grab().save(str(tmp_path / "data-page-plain-folder.png"))


def test_a_plain_folder_of_one_patient_is_refused_once_with_the_cause_and_the_fix(wizard, qtbot, synthetic_dir,
                                                                                   tmp_path):
    folder = plain_folder(synthetic_dir, tmp_path / "one patient", patients=1)
    data = wizard.currentPage()
    qtbot.keyClicks(data.folder, str(folder))
    wizard.next()
    qtbot.waitUntil(lambda: data.error.text() != "", timeout=60000)
    assert wizard.currentPage() is data
    message = data.error.text()
    assert "no split file" in message and "all of one patient (101)" in message
    assert message.endswith("Fix: add the recordings of at least one more patient.")
    assert "official split" not in message  # there is none to turn to: one change, not a second refusal
    assert _sentences(message) and message.count("Fix:") == 1
    for selection in ("best_val", "last"):  # no other choice on the page gets past it: the cause is the data
        data.selection.setCurrentText(selection)
        wizard.next()
        qtbot.waitUntil(lambda: data.error.text() != "" and data.stats is None, timeout=60000)
        assert data.error.text() == message
    data.grab().save(str(tmp_path / "data-page-one-patient.png"))
