"""The Studio's patient panel, driven as a user would: it shows what the analysis knows of the recording's
patient and where that came from, and the prompt the chosen model read; values typed and saved become the
sidecar beside the recording and the model that reads prompts predicts the recording again with them. A
sidecar that is not valid keeps no recording from opening: the panel says what is wrong and mends it."""
import csv
import json
import shutil

import pytest
from PySide6.QtCore import Qt

from lungkd.app.shell.main_window import MODEL_KEY
from lungkd.core.data.patient_metadata import sidecar_path
from lungkd.core.models.card import PromptPolicy
from tiny_model import tiny_bts


@pytest.fixture
def bts_store(store, workspace):
    """The workspace with a tiny BTS (random weights) beside the tiny CNN6, the BTS chosen."""
    folder = workspace / "runs" / "tiny-bts" / "model"
    tiny_bts(folder, PromptPolicy())
    store.setValue(MODEL_KEY, str(folder))
    return folder


@pytest.fixture
def alone(recording, tmp_path):
    """The annotated recording copied where no side file is: nothing is known of its patient."""
    folder = tmp_path / "clinic"
    folder.mkdir()
    for suffix in (".wav", ".txt"):
        shutil.copy(recording.with_suffix(suffix), folder / recording.with_suffix(suffix).name)
    return folder / recording.name


def _open(window, path, wait_idle):
    window.open_paths([path])
    wait_idle(window, 180000)
    return window.recordings.patient


def test_saved_metadata_becomes_the_sidecar_and_the_model_predicts_again_with_its_prompt(
        bts_store, window, alone, wait_idle, qtbot, tmp_path):
    panel = _open(window, alone, wait_idle)
    before = window.session.current_analysis()
    assert panel.source.text() == "No patient metadata: models that read prompts use their missing-value wording."
    assert "female pediatric patient" in before.prompt
    assert panel.prompt.text() == f"The model read: “{before.prompt}”"
    assert before.prompt_notes[0].startswith(f"no patient metadata for {alone.stem}")
    assert f"<b>Prompt:</b> {before.prompt}" in window.recordings.view.title.toolTip()
    panel.age.setValue(70)
    panel.sex.setCurrentIndex(panel.sex.findData("M"))
    panel.location.setCurrentIndex(panel.location.findData("Pl"))
    panel.device.setCurrentText("Littmann CORE")
    qtbot.mouseClick(panel.save_button, Qt.MouseButton.LeftButton)
    assert json.loads(sidecar_path(alone).read_text()) == {"age": 70.0, "sex": "M", "chest_location": "Pl",
                                                           "device": "Littmann CORE"}
    wait_idle(window, 180000)
    after = window.session.current_analysis()
    expected = ("This sound was recorded from the left posterior chest of an adult male patient, using a Littmann "
                "CORE stethoscope.")
    assert after.prompt == expected and after.prompt_source == sidecar_path(alone).name
    assert after.prompt_notes == [] and panel.prompt.text() == f"The model read: “{expected}”"
    assert panel.source.text() == f"From {sidecar_path(alone).name}."
    assert [c.start for c in after.cycles] == [c.start for c in before.cycles]
    assert [c.probabilities for c in after.cycles] != [c.probabilities for c in before.cycles]  # the prompt counts
    export = tmp_path / "cycles.csv"
    window.session.export_csv(export)
    with export.open(newline="") as f:
        assert {row["prompt"] for row in csv.DictReader(f)} == {expected}
    window.recordings.view.grab().save(str(tmp_path.parent / "patient-panel-window.png"))


def test_a_sidecar_that_is_not_valid_is_said_and_mended_in_the_panel(bts_store, window, alone, wait_idle):
    sidecar_path(alone).write_text('{"age": 300}')
    panel = _open(window, alone, wait_idle)
    assert alone in window.session.recordings and alone not in window.session.documents  # open, not analysed
    assert "age: Input should be less than or equal to 125" in window.session.current.notice
    assert panel.source.text().startswith("⚠ the patient metadata is not valid (age: Input should be less than")
    panel.age.setValue(8)
    assert panel.save() == sidecar_path(alone)
    wait_idle(window, 180000)
    assert "female pediatric patient" in window.session.current_analysis().prompt  # sex unknown: the reference's


def test_the_side_files_beside_a_recording_fill_the_panel(window, recording, wait_idle):
    panel = _open(window, recording, wait_idle)
    assert panel.source.text() == f"From the ICBHI side files in {recording.parent}."
    pid = recording.name.split("_")[0]
    line = next(row.split("\t") for row in (recording.parent / "ICBHI_Challenge_demographic_information.txt")
                .read_text().splitlines() if row.split("\t")[0] == pid)
    assert panel.age.text() == ("unknown" if line[1] == "NA" else f"{float(line[1]):.1f} years")
    assert panel.prompt.text() == "The chosen model reads no prompt: it does not use this metadata."  # a CNN6
    assert panel.device.currentText() == ""  # the file name says it
