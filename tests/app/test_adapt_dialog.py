"""Adapt a model to these recordings, in the Studio: from review mode's "Train on these recordings" to the wizard's
first page, its "Adapt a model to these recordings…", the dialog that adapts the model in use, and the adapted
model chosen for analysis."""
import shutil

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QWizard

from lungkd.core.models.card import read_model_card

ADAPT = QWizard.WizardButton.CustomButton1


def copied(folder, target, pattern="*"):
    target.mkdir()
    for path in sorted(folder.glob(pattern)):
        if path.is_file():
            shutil.copy(path, target)
    return target


def open_dialog(window, folder, qtbot):
    """The reviewed folder goes to the wizard as review mode sends it; its first page offers adapting."""
    window.review.train_requested.emit(folder)
    wizard = window.wizard
    assert wizard.isVisible() and wizard.currentId() == wizard.startId()
    assert wizard.button(ADAPT).isVisible() and wizard.button(ADAPT).text() == "Adapt a model to these recordings…"
    qtbot.mouseClick(wizard.button(ADAPT), Qt.MouseButton.LeftButton)
    dialog = wizard.adaptation
    qtbot.addWidget(dialog)
    assert dialog.isVisible()
    return dialog


@pytest.mark.slow
def test_review_leads_to_adapting_the_model_in_use_and_using_the_adapted_one(window, workspace, adaptation_dir,
                                                                              tmp_path, qtbot):
    folder = copied(adaptation_dir, tmp_path / "clinic")
    model = workspace / "runs" / "tiny-cnn6" / "model"
    dialog = open_dialog(window, folder, qtbot)
    assert dialog.model.currentData() == str(model) and dialog.folder.text() == str(folder)
    assert dialog.name.text() == "clinic-adapted" and not dialog.distil.isEnabled()  # a `lungkd train` model
    dialog.layers.setCurrentIndex(dialog.layers.findData("head"))
    dialog.epochs.setValue(1)
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    assert not dialog.start_button.isEnabled() and dialog.cancel_button.isEnabled()
    qtbot.waitUntil(lambda: dialog.use_button.isEnabled(), timeout=600000)
    adapted = workspace / "adapted" / "clinic-adapted"
    text = dialog.status.text()
    assert "Adapted: the head trained 1 epoch on" in text and "\nBefore: Sp" in text and "\nAfter: Sp" in text
    assert read_model_card(adapted).parent.name == "tiny-cnn6"
    qtbot.mouseClick(dialog.use_button, Qt.MouseButton.LeftButton)
    assert window.model_picker.currentData() == str(adapted) and window.session.model_folder == adapted
    assert "adapted/clinic-adapted" in window.model_picker.currentText()


def test_the_dialog_says_why_recordings_cannot_be_adapted_to(window, adaptation_dir, tmp_path, qtbot):
    folder = copied(adaptation_dir, tmp_path / "two-patients", "10[34]_*")
    dialog = open_dialog(window, folder, qtbot)
    qtbot.mouseClick(dialog.start_button, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: dialog.start_button.isEnabled(), timeout=60000)
    assert "at least 3 patients" in dialog.status.text() and str(folder) in dialog.status.text()
    assert not dialog.use_button.isEnabled() and not (tmp_path / "workspace" / "adapted").exists()


def test_the_adapt_button_is_on_the_first_page_only(wizard, qtbot):
    assert wizard.button(ADAPT).isVisible()
    wizard.next()
    assert not wizard.button(ADAPT).isVisible()
    wizard.back()
    assert wizard.button(ADAPT).isVisible()
