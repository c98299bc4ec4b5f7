"""The model picker's list: every model folder with a card under the workspace and the shipped ones; a folder
whose card or files are damaged is listed last, as unusable, with the reason."""
import json

from lungkd.core.models.card import CARD_FILE, ModelCard
from lungkd.core.models.inventory import find_models, shipped_models_folder
from lungkd.core.models.registry import create_model, save_model


def model(folder, arch, score=None, **extra):
    """A tiny model of `arch` saved with a card that gives its Score."""
    test = {"sp": min(score + 10, 100), "se": score - 10, "score": score} if score else None
    save_model(create_model(arch, size="tiny"), folder, ModelCard(architecture=arch, test=test, **extra))


def test_models_are_found_anywhere_in_the_workspace_best_score_first(tmp_path):
    model(tmp_path / "runs" / "cnn6-tiny-abc" / "model", "cnn6", 61.2)
    model(tmp_path / "experiments" / "demo" / "students" / "bts-mean5-s1" / "model", "bts", 64.0)
    model(tmp_path / "imported", "ast", None, description="from a colleague")
    model(tmp_path / "runs" / ".model.tmp123", "cnn6", 99.0)  # an unfinished atomic write
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / CARD_FILE).write_text(json.dumps({"no": "architecture"}))
    (tmp_path / "runs" / "card-only").mkdir()  # a card without the weights it describes
    (tmp_path / "runs" / "card-only" / CARD_FILE).write_text(json.dumps({"architecture": "cnn6"}))
    entries = find_models(tmp_path, tmp_path / "absent")
    assert [(e.name, e.arch, e.score, e.usable) for e in entries] == [
        ("experiments/demo/students/bts-mean5-s1 (bts)", "bts", 64.0, True),
        ("runs/cnn6-tiny-abc (cnn6)", "cnn6", 61.2, True), ("imported", "ast", None, True),
        ("runs/broken", "", None, False), ("runs/card-only", "", None, False)]
    assert entries[1].path == tmp_path / "runs" / "cnn6-tiny-abc" / "model"
    assert entries[2].description == "from a colleague"
    assert entries[3].reason.startswith("lungkd.json: the model card is not valid (")
    assert entries[4].reason == "config.json: the file is missing."


def test_the_shipped_folder_is_package_data():
    assert shipped_models_folder().parts[-2:] == ("resources", "models")
