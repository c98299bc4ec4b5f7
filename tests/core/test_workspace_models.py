"""The model picker's list: every model folder with a card under the workspace and the shipped ones."""
import json

from lungkd.core.models.card import CARD_FILE
from lungkd.core.models.inventory import find_models, shipped_models_folder


def card(folder, arch, score=None, **extra):
    folder.mkdir(parents=True)
    test = {"sp": score + 10, "se": score - 10, "score": score} if score else None
    (folder / CARD_FILE).write_text(json.dumps({"architecture": arch, "test": test, **extra}))


def test_models_are_found_anywhere_in_the_workspace_best_score_first(tmp_path):
    card(tmp_path / "runs" / "cnn6-tiny-abc" / "model", "cnn6", 61.2)
    card(tmp_path / "experiments" / "demo" / "students" / "bts-mean5-s1" / "model", "bts", 64.0)
    card(tmp_path / "imported", "ast", None, description="from a colleague")
    card(tmp_path / "runs" / ".model.tmp123", "cnn6", 99.0)  # an unfinished atomic write
    (tmp_path / "runs" / "broken").mkdir()
    (tmp_path / "runs" / "broken" / CARD_FILE).write_text(json.dumps({"no": "architecture"}))
    entries = find_models(tmp_path, tmp_path / "absent")
    assert [(e.name, e.arch, e.score) for e in entries] == [
        ("experiments/demo/students/bts-mean5-s1 (bts)", "bts", 64.0), ("runs/cnn6-tiny-abc (cnn6)", "cnn6", 61.2),
        ("imported", "ast", None)]
    assert entries[1].path == tmp_path / "runs" / "cnn6-tiny-abc" / "model"
    assert entries[2].description == "from a colleague"


def test_the_shipped_folder_is_package_data():
    assert shipped_models_folder().parts[-2:] == ("resources", "models")
