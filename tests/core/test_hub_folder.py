"""The exported folder form (core/models/hub_folder.py) is a Hugging Face model repository: a README.md whose
YAML front matter the hub reads, generated from the card, beside the model folder's files; the folder, or the
repository once published under a hub id, loads back as the same model."""
import shutil

import pytest
import torch
import yaml

from lungkd.core.cli import main
from lungkd.core.models.card import read_model_card
from lungkd.core.models.hub_folder import README_FILE, export_folder
from lungkd.core.models.inventory import shipped_models_folder
from lungkd.core.models.registry import create_model

DEMO = shipped_models_folder() / "demo-cnn6"


@pytest.fixture
def published(tmp_path):
    return export_folder(DEMO, tmp_path / "lungkd-demo-cnn6", license="mit")


def _front_matter(folder) -> tuple[dict, str]:
    text = (folder / README_FILE).read_text(encoding="utf-8")
    assert text.startswith("---\n")
    matter, _, body = text[4:].partition("\n---\n")
    return yaml.safe_load(matter), body


def test_the_readme_front_matter_is_generated_from_the_card(published):
    meta, body = _front_matter(published)
    card = read_model_card(DEMO)
    assert meta["license"] == "mit" and meta["library_name"] == "lungkd"
    assert meta["pipeline_tag"] == "audio-classification"
    assert {"lungkd", "respiratory-sounds", "cnn6", "student"} <= set(meta["tags"])
    assert meta["datasets"] == ["lungkd-synthetic-recordings"]
    assert meta["metrics"] == ["icbhi_score", "specificity", "sensitivity"]
    (result,) = meta["model-index"][0]["results"]
    assert meta["model-index"][0]["name"] == "lungkd-demo-cnn6"
    assert result["dataset"] == {"name": "synthetic-360-seed0-noise0", "type": "synthetic-360-seed0-noise0",
                                 "split": "test"}
    assert {m["type"]: m["value"] for m in result["metrics"]} == {
        "icbhi_score": round(card.test.score, 2), "specificity": round(card.test.sp, 2),
        "sensitivity": round(card.test.se, 2)}
    for heading in ("## Architecture", "## How it was made", "## Training data", "## Scores",
                    "## Calibration and limits", "## Versions", "## Use"):
        assert f"\n{heading}\n" in body
    assert "Trained on synthetic recordings only" in body


def test_the_readme_quotes_the_cards_words_as_text(tmp_path):
    folder = tmp_path / "odd"
    shutil.copytree(DEMO, folder)
    card = read_model_card(folder)
    (folder / "lungkd.json").write_text(card.replace(description="<script>x</script> *bold* ---").text())
    meta, body = _front_matter(export_folder(folder, tmp_path / "out"))
    assert r"- \<script\>x\</script\> \*bold\* ---" in body and "<script>" not in body
    assert meta["license"] == "other"  # the weights' terms are their owner's to state


def test_the_folder_loads_back_as_the_same_model_and_the_original_is_untouched(published):
    x = torch.randn(2, 798, 128)
    original, copy = create_model("cnn6", pretrained=DEMO).eval(), create_model("cnn6", pretrained=published).eval()
    with torch.no_grad():
        torch.testing.assert_close(copy(x), original(x), rtol=0, atol=0)
    assert read_model_card(published).checksums == read_model_card(DEMO).checksums
    assert sorted(p.name for p in published.iterdir()) == sorted(["README.md", "lungkd.json", *read_model_card(
        DEMO).checksums])


def test_a_published_repository_loads_back_by_its_hub_id(published, tmp_path, monkeypatch):
    """The repository as `hf download` leaves it in the hub's cache (refs/main naming a snapshot); loading by its
    id reads the card there, takes the files it lists, and checks them as for any model folder."""
    import huggingface_hub.constants

    cache = tmp_path / "hub"
    snapshot = cache / "models--lungkd--demo-cnn6" / "snapshots" / ("a" * 40)
    shutil.copytree(published, snapshot)
    (cache / "models--lungkd--demo-cnn6" / "refs").mkdir()
    (cache / "models--lungkd--demo-cnn6" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    x = torch.randn(2, 798, 128)
    loaded = create_model("cnn6", pretrained="lungkd/demo-cnn6", offline=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), create_model("cnn6", pretrained=DEMO).eval()(x), rtol=0, atol=0)
    head = snapshot / "head.safetensors"
    head.write_bytes(head.read_bytes()[:-1] + bytes([head.read_bytes()[-1] ^ 1]))
    with pytest.raises(Exception, match="sha256 differs"):  # the hub's copy is checked like any folder
        create_model("cnn6", pretrained="lungkd/demo-cnn6", offline=True)


def test_lungkd_models_export_folder(tmp_path, capsys):
    out = tmp_path / "repo"
    assert main(["models", "export", str(DEMO), str(out), "--folder", "--license", "cc-by-4.0"]) == 0
    assert f"hf upload OWNER/NAME {out}" in capsys.readouterr().out
    assert _front_matter(out)[0]["license"] == "cc-by-4.0"
    assert main(["models", "export", str(DEMO), str(tmp_path / "demo.zip")]) == 2
    assert "an archive's name ends in .lungkd" in capsys.readouterr().err
