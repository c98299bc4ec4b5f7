"""The Studio keeps the engine's promises about untrusted files (issue 22): a damaged model folder is listed in the
picker as unusable with the reason; annotation files are read bounded and by type before anything else, and
what cannot be read is a LungKD message, not the system's raw text; what the Studio writes honours the umask."""
import hashlib
import json
import os
import shutil

import pytest
from PySide6.QtCore import Qt

from lungkd.core.models.card import CARD_FILE


def test_a_damaged_model_folder_is_listed_greyed_with_the_reason_and_never_chosen(window, workspace, store):
    good = workspace / "runs" / "tiny-cnn6" / "model"
    damaged = workspace / "runs" / "copied" / "model"
    shutil.copytree(good, damaged)
    data = (damaged / "model.safetensors").read_bytes()
    (damaged / "model.safetensors").write_bytes(data[:len(data) // 2])
    card = json.loads((damaged / CARD_FILE).read_text())
    card["checksums"]["model.safetensors"] = hashlib.sha256(data[:len(data) // 2]).hexdigest()
    (damaged / CARD_FILE).write_text(json.dumps(card))
    store.setValue("analysis/model", str(damaged))  # chosen last time, damaged since
    window.refresh_models()
    picker = window.model_picker
    index = picker.findData(str(damaged))
    assert index >= 0 and not picker.model().item(index).isEnabled()
    assert picker.itemText(index) == "⚠ runs/copied — unusable: model.safetensors: the weights file is cut short: its " \
        f"header describes {len(data) - 8 - int.from_bytes(data[:8], 'little'):,} bytes of tensors, the file holds " \
        f"{len(data) // 2 - 8 - int.from_bytes(data[:8], 'little'):,}."
    assert "copy the model folder again" in picker.itemData(index, Qt.ItemDataRole.ToolTipRole)
    assert picker.currentData() != str(damaged) and picker.currentData() is not None


def _beside(recording, folder):
    """The recording alone in a folder of its own, without its annotation."""
    folder.mkdir(exist_ok=True)
    copy = folder / recording.name
    shutil.copy(recording, copy)
    return copy


def _two_gigabytes(path):
    with open(path, "wb") as f:
        f.truncate(2 << 30)  # a hole: 2 GB to read, no disk taken


def _zero(path):
    os.symlink("/dev/zero", path)


def _fifo(path):
    os.mkfifo(path)


def _loop(path):
    os.symlink(path.with_name("other.txt"), path)
    os.symlink(path, path.with_name("other.txt"))


ANNOTATIONS = {  # what the Studio says of each, as the engine's reader says it
    "2 GB": (_two_gigabytes, "more than 4 MB, far larger than any annotation file; not read."),
    "/dev/zero": (_zero, "the annotation file is not read: it is a device or socket, not a regular file."),
    "a FIFO": (_fifo, "the annotation file is not read: it is a pipe, not a regular file."),
    "a link loop": (_loop, "the annotation file cannot be read (Too many levels of symbolic links)."),
}


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ANNOTATIONS)
def test_an_annotation_that_cannot_be_read_is_refused_bounded_with_the_engine_s_words(window, recording, tmp_path,
                                                                                       wait_idle, kind):
    make, words = ANNOTATIONS[kind]
    audio = _beside(recording, tmp_path / "bad")
    make(audio.with_suffix(".txt"))
    window.open_paths([audio])
    wait_idle(window)
    failures = window.recordings.recording_list.failures
    assert list(failures) == [audio]
    assert failures[audio].message.startswith(words) and "Errno" not in failures[audio].message


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads a file whatever its permissions")
def test_an_annotation_without_read_permission_is_said_in_the_engine_s_words(window, recording, tmp_path, wait_idle):
    audio = _beside(recording, tmp_path / "locked")
    shutil.copy(recording.with_suffix(".txt"), audio.with_suffix(".txt"))
    audio.with_suffix(".txt").chmod(0)
    window.open_paths([audio])
    wait_idle(window)
    assert window.recordings.recording_list.failures[audio].message.startswith(
        "permission denied: the annotation file cannot be read.")


def test_a_conflicting_annotation_in_a_sub_folder_is_named_and_the_one_beside_is_used(window, recording, tmp_path,
                                                                                       wait_idle):
    audio = _beside(recording, tmp_path / "data")
    shutil.copy(recording.with_suffix(".txt"), audio.with_suffix(".txt"))
    (tmp_path / "data" / "old").mkdir()
    elsewhere = tmp_path / "data" / "old" / audio.with_suffix(".txt").name
    elsewhere.write_text("0.1\t0.9\t1\t1\n")  # says something else
    (tmp_path / "data" / "copy").mkdir()  # the same bytes again: nothing to say
    shutil.copy(recording.with_suffix(".txt"), tmp_path / "data" / "copy" / elsewhere.name)
    window.open_paths([tmp_path / "data"])
    wait_idle(window)
    page = window.recordings
    assert list(page.session.recordings) == [audio]
    assert page.session.current.analysis.cycle_source == "annotation"
    assert list(page.recording_list.failures) == [elsewhere]
    assert page.recording_list.failures[elsewhere].message.startswith(
        f"another annotation of the recording '{audio.stem}', in another folder; {audio.with_suffix('.txt')} is used "
        "and this one is left out.")
