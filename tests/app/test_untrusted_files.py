"""The Studio keeps the engine's promises about untrusted files (issue 22): a damaged model folder is listed in the
picker as unusable with the reason; annotation files are read bounded and by type before anything else, and
what cannot be read is a LungKD message, not the system's raw text; what the Studio writes honours the umask."""
import hashlib
import json
import shutil

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
