"""Importing a model in the Studio, as a user would: File > Import model… or a .lungkd dropped on the model
picker shows the archive's card as plain text before anything is unpacked; Import adds it to the workspace's
models and analyses with it; a refused archive is said, naming what is wrong, and nothing is imported."""
import json
import shutil
import zipfile

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QFileDialog, QPlainTextEdit

from lungkd.core.models.archive import export_archive
from lungkd.core.models.card import CARD_FILE, read_model_card
from lungkd.core.models.card_summary import card_text
from lungkd.core.models.inventory import shipped_models_folder
from studio_driver import drop as drop_on

DEMO = shipped_models_folder() / "demo-cnn6"
MARKUP = "<b>Bold</b> <img src='x'> & a <a href='http://x'>link</a>"


@pytest.fixture
def archive(tmp_path):
    """The demo model with markup in its description, as a .lungkd."""
    folder = tmp_path / "sent" / "clinic-model"
    shutil.copytree(DEMO, folder)
    card = json.loads((folder / CARD_FILE).read_text())
    card["description"] = MARKUP
    (folder / CARD_FILE).write_text(json.dumps(card))
    return export_archive(folder, tmp_path / "sent" / "clinic-model.lungkd")


def test_file_import_model_shows_the_card_as_text_then_imports_and_analyses_with_it(window, archive, workspace,
                                                                                    monkeypatch, wait_idle, qtbot):
    monkeypatch.setattr(QFileDialog, "getOpenFileName", lambda *a, **k: (str(archive), ""))
    assert window.import_model_action in window.menuBar().actions()[0].menu().actions()
    window.import_model_action.trigger()
    dialog = window.importer.dialog
    assert dialog.isVisible() and isinstance(dialog.card, QPlainTextEdit)
    shown = dialog.card.toPlainText()
    assert shown == card_text(read_model_card(archive.parent / "clinic-model"))
    assert MARKUP in shown  # the card's words as written, never read as markup
    for words in ("Architecture\n  cnn6 (tiny size)", "How it was made", "Training data\n  synthetic recordings only",
                  "Scores\n  Sp 100.00, Se 77.92, Score 88.96 on the test split of synthetic-360-seed0-noise0",
                  "Calibration and limits\n  temperature 0.749", "Versions\n  torch"):
        assert words in shown
    assert not (workspace / "models").exists()  # nothing unpacked before Import
    qtbot.mouseClick(dialog.import_button, Qt.MouseButton.LeftButton)
    wait_idle(window)
    imported = workspace / "models" / "clinic-model"
    assert read_model_card(imported).description == MARKUP
    assert window.model_picker.currentData() == str(imported) and window.session.model_folder == imported


def test_a_lungkd_dropped_on_the_model_picker_is_offered_and_cancel_imports_nothing(window, archive, workspace,
                                                                                 wait_idle, synthetic_dir):
    assert drop_on(window.model_picker, [archive])
    dialog = window.importer.dialog
    assert dialog.isVisible() and dialog.windowTitle() == "Import clinic-model.lungkd"
    dialog.reject()
    wait_idle(window)
    assert not (workspace / "models").exists()
    assert drop_on(window.model_picker, [archive])
    window.importer.dialog.accept()
    wait_idle(window)
    assert window.session.model_folder == workspace / "models" / "clinic-model"
    window.importer.dialog = None
    recording = next(synthetic_dir.glob("*.wav"))
    drop_on(window.model_picker, [recording])  # a recording falls through to the window, which opens it
    wait_idle(window)
    assert window.importer.dialog is None and recording in window.session.recordings


def test_a_refused_archive_is_said_with_what_is_wrong_and_nothing_is_imported(window, archive, workspace, tmp_path):
    bad = tmp_path / "bad.lungkd"
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(bad, "w") as target:
        for name in source.namelist():
            target.writestr(name, source.read(name))
        target.writestr("pytorch_model.bin", b"\x80\x04cos\nsystem\n.")
    assert drop_on(window, [bad])  # dropped anywhere on the window
    assert window.importer.dialog is None
    message = window.last_error.text()
    assert message.startswith("bad.lungkd is not imported: the member 'pytorch_model.bin' is a pickle")
    assert "never unpack a refused archive by hand" in message
    assert not (workspace / "models").exists()
