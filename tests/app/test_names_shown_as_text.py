"""Recording names are text, never markup (issue 10): what a file is called is what the Studio shows — in
the title, the list, the tooltips and the error messages, the edit and review bars and the question before
unsaved edits are lost — even when the name is HTML or not UTF-8; an annotation replaced by the segmentation
is said under the title."""
import os
import shutil

from PySide6.QtCore import Qt
from PySide6.QtGui import QTextDocument
from PySide6.QtWidgets import QMessageBox

from studio_driver import key, open_for_editing, respond


def shown(rich_text: str) -> str:
    """The text a person reads in a rich-text label."""
    document = QTextDocument()
    document.setHtml(rich_text)
    return document.toPlainText()


def test_names_that_are_html_or_not_utf8_are_shown_as_written(window, recording, tmp_path, wait_idle, qtbot):
    folder = tmp_path / "names"
    folder.mkdir()
    markup = "<b>bold<i>x<img src=x> &amp; more"  # no "/": a file name cannot hold one
    named = folder / f"{markup}.wav"
    shutil.copy(recording, named)
    (folder / f"{markup}.txt").write_text("no numbers here\n")  # an annotation without a usable cycle
    latin1 = folder / os.fsdecode(b"caf\xe9.wav")  # a name that is not UTF-8
    shutil.copy(recording, latin1)
    broken = folder / "<i>broken.wav"
    broken.write_text("not a recording")
    window.open_paths([named, latin1, broken])
    wait_idle(window)
    page = window.recordings
    assert set(page.session.recordings) == {named, latin1}

    page.recording_list.setCurrentItem(page.recording_list.item_for(named))
    qtbot.waitUntil(lambda: not page.showing)  # the plots come a turn later
    title = shown(page.view.title.text())
    assert title.startswith(f"{markup}.wav — ")  # every character as the file system has it
    assert f"⚠ {folder / markup}.txt: the annotation gives no usable cycle, so the cycles were found without it" \
        in title
    assert page.session.current.analysis.cycle_source in ("automatic", "fixed windows")
    assert shown(page.recording_list.label_text(named)).startswith(f"{markup}.wav\n")
    window.grab().save(str(tmp_path / "names.png"))  # for a look: it stays in the test's folder

    page.recording_list.setCurrentItem(page.recording_list.item_for(latin1))
    qtbot.waitUntil(lambda: not page.showing)
    assert shown(page.view.title.text()).startswith("caf\ufffd.wav — ")
    assert shown(page.recording_list.label_text(latin1)).startswith("caf\ufffd.wav\n")

    assert shown(page.recording_list.label_text(broken)).startswith("⚠ <i>broken.wav\n")
    tooltip = page.recording_list.item_for(broken).toolTip()
    assert shown(tooltip).startswith("not a readable audio file (Format not recognised)")
    assert shown(tooltip).endswith("(double click for the details)")
    page.recording_list.failure_activated.emit(page.recording_list.failures[broken])
    box = window.last_error
    assert box.textFormat() == Qt.TextFormat.PlainText and box.text().startswith("<i>broken.wav: ")


def test_editing_and_review_show_names_as_written(window, recording, tmp_path, wait_idle, qtbot):
    markup = "<b>bold &amp; x"
    named = tmp_path / f"{markup}.wav"
    for suffix in (".wav", ".txt"):
        shutil.copy(recording.with_suffix(suffix), named.with_suffix(suffix))
    page = open_for_editing(window, named, wait_idle, qtbot)
    page.select_cycle(0)
    key(page, Qt.Key.Key_W)
    assert shown(window.editing.bar.state.text()).startswith(f"{markup}.txt ● 1 unsaved edit")
    key(page, Qt.Key.Key_R, Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier)
    where = window.review.bar.where
    assert where.textFormat() == Qt.TextFormat.PlainText and f": {markup}.wav · cycle " in where.text()
    respond(QMessageBox.StandardButton.Cancel)
    window.remove_action.trigger()
    assert respond.format == Qt.TextFormat.PlainText
    assert respond.text == f"Save your edits to the annotation of {markup}.wav before closing?"


def test_the_wizard_refuses_an_experiment_name_that_could_leave_the_workspace(qtbot, tmp_path):
    import torch  # noqa: F401  - before PySide6's wizard, as in the entry point

    from lungkd.app.training.wizard import ReviewPage, TrainingWizard

    wizard = TrainingWizard(tmp_path / "ws")
    qtbot.addWidget(wizard)
    wizard.show()
    while not isinstance(wizard.currentPage(), ReviewPage):
        wizard.next()
    review = wizard.currentPage()
    review.name.setText("../<b>x</b>")
    assert review.error.textFormat() == Qt.TextFormat.PlainText
    assert review.error.text().startswith('name = "../<b>x</b>": names are 1 to 64 letters')
    assert not review.validatePage() and isinstance(wizard.currentPage(), ReviewPage)
    assert not (tmp_path / "x").exists() and not (tmp_path / "ws" / "x").exists()


MARKUP = "<b>bold</b><a href='x'>link</a><img src=x><table><tr><td>Score 99</td></tr></table>"


def _renders(label) -> str:
    """What a person reads in a label: rich text rendered, plain text as it is."""
    text = label.text()
    rich = label.textFormat() == Qt.TextFormat.RichText or (
        label.textFormat() == Qt.TextFormat.AutoText and Qt.mightBeRichText(text))
    return shown(text) if rich else text


def test_what_a_model_card_says_is_shown_as_written_in_every_label_and_the_picker(window, workspace, wait_idle):
    """A card comes from anyone: its words (the data it learnt from, its description, experiment and run) are text
    in the model notes, the picker and every label of the window, never bold, links, images or a fake table."""
    from lungkd.core.models.card import read_model_card, update_model_card

    folder = workspace / "runs" / "tiny-cnn6" / "model"
    training = read_model_card(folder).training_data.model_dump(mode="json")
    update_model_card(folder, training_data={**training, "name": MARKUP}, description=MARKUP, run=MARKUP[:200])
    window.refresh_models()
    wait_idle(window)
    picker = window.model_picker
    index = picker.findData(str(folder))
    assert picker.currentIndex() == index and MARKUP[:60] in picker.itemText(index)
    assert MARKUP in shown(picker.itemData(index, Qt.ItemDataRole.ToolTipRole))
    assert MARKUP in shown(picker.toolTip())
    notes = window.model_notes
    assert _renders(notes).startswith(f"trained on {MARKUP}\n")
    from PySide6.QtWidgets import QLabel

    for label in window.findChildren(QLabel):  # whatever label shows the card's words shows them whole
        rendered = _renders(label)
        if "Score 99" in rendered or "bold" in rendered:
            assert "<table>" in rendered or "<b>bold</b>" in rendered, (label.objectName(), rendered)
