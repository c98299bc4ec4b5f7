"""A model folder's files are untrusted input (core/models/folder.py): with the card's checksums recomputed to match,
weights cut short, a pickle in place of safetensors, a configuration for another size or not JSON at all, a head
with other tensors, and files that are not regular files are each refused before a library opens them, with the
file named; `lungkd predict` says so without a traceback, and the model list keeps such a folder as unusable with
the reason."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from lungkd.core.models.card import CARD_FILE, DamagedModelError, read_model_card, write_model_card
from lungkd.core.models.folder import HEAD_FILE, WEIGHTS_FILE, safetensors_header
from lungkd.core.models.inference import load_saved_model
from lungkd.core.models.inventory import find_models, shipped_models_folder
from lungkd.core.models.registry import backbone_config, create_model, save_model
from lungkd.core.storage import file_sha256

DEMO = shipped_models_folder() / "demo-cnn6"


class RunsCode:
    """Unpickling this creates a file: proof that a pickle was (or was not) loaded."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


def _cut_short(folder: Path, marker: Path) -> str:
    data = (folder / WEIGHTS_FILE).read_bytes()
    (folder / WEIGHTS_FILE).write_bytes(data[:len(data) * 2 // 3])
    return WEIGHTS_FILE


def _a_pickle(folder: Path, marker: Path) -> str:
    torch.save({"state": RunsCode(marker)}, folder / WEIGHTS_FILE)
    return WEIGHTS_FILE


def _other_size(folder: Path, marker: Path) -> str:
    card = read_model_card(folder)
    other = "full" if card.size == "tiny" else "tiny"
    (folder / "config.json").write_text(json.dumps(backbone_config(card.architecture, other).to_dict()))
    return "config.json"


def _not_json(folder: Path, marker: Path) -> str:
    (folder / "config.json").write_text('{"model_type": "lungkd_cnn6", "channels": [8, 16')
    return "config.json"


def _head_key(folder: Path, marker: Path) -> str:
    card = read_model_card(folder)
    head = safetensors_header(folder / HEAD_FILE)
    save_file({"weights": torch.zeros(head["weight"][1]), "bias": torch.zeros(card.num_classes)},
              str(folder / HEAD_FILE))
    return HEAD_FILE


DAMAGE = [
    ("weights cut short", _cut_short, "the weights file is cut short"),
    ("a pickle in place of safetensors", _a_pickle, "is a pickle (as torch.save writes), not safetensors"),
    ("a configuration for another size", _other_size, "the configuration is a"),
    ("a configuration that is not JSON", _not_json, "the file is not JSON"),
    ("a head with a wrong key", _head_key, "has no place for 'weights'"),
]


def _recompute_checksums(folder: Path) -> None:
    """What someone who knew the format would do: the card's sha256 and size of every file made to match again."""
    card = read_model_card(folder)
    write_model_card(folder, card.replace(checksums={name: file_sha256(folder / name) for name in card.checksums},
                                          file_sizes={name: (folder / name).stat().st_size for name in card.file_sizes}))


@pytest.fixture(params=["cnn6", "resnet18"])
def model_folder(request, tmp_path) -> Path:
    """The shipped CNN6 demo, and a tiny ResNet-18 (a transformers backbone) saved by LungKD."""
    folder = tmp_path / request.param
    if request.param == "cnn6":
        shutil.copytree(DEMO, folder)
    else:
        torch.manual_seed(0)
        save_model(create_model("resnet18", size="tiny"), folder)
    return folder


@pytest.mark.parametrize("damage, words", [(d, w) for _, d, w in DAMAGE], ids=[i for i, _, _ in DAMAGE])
def test_a_damaged_file_with_checksums_to_match_is_refused_before_a_library_opens_it(model_folder, tmp_path, damage,
                                                                                     words):
    marker = tmp_path / "unpickled"
    name = damage(model_folder, marker)
    _recompute_checksums(model_folder)
    with pytest.raises(DamagedModelError) as caught:
        load_saved_model(model_folder)
    problem = caught.value.problem
    assert words in problem.message and problem.path == str(model_folder / name)
    assert "copy the model folder again" in problem.fix
    assert not marker.exists()  # nothing was unpickled


def test_the_size_decided_by_the_configuration_is_the_one_checked_and_a_full_size_folder_loads(tmp_path):
    torch.manual_seed(0)
    folder = save_model(create_model("cnn6", size="full"), tmp_path / "full")
    assert read_model_card(folder).size == "full"
    model, _ = load_saved_model(folder)
    assert model.backbone.config.channels == (64, 128, 256, 512)
    card = read_model_card(folder)  # a card that says tiny for weights and a configuration that are full
    write_model_card(folder, card.replace(size="tiny"))
    with pytest.raises(DamagedModelError, match="the configuration is a full cnn6's, but the model card says"):
        load_saved_model(folder)


@pytest.mark.parametrize("kind", ["fifo", "device"])
def test_a_model_file_that_is_a_fifo_or_a_device_is_refused_by_its_type(tmp_path, kind):
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    (folder / "tokenizer.json").unlink(missing_ok=True)
    if kind == "fifo":
        os.mkfifo(folder / "tokenizer.json")  # a library opening it would wait for a writer for ever
    else:
        os.symlink("/dev/zero", folder / "tokenizer.json")  # read for ever
    with pytest.raises(DamagedModelError, match="not a regular file") as caught:
        load_saved_model(folder)
    assert caught.value.problem.path == str(folder / "tokenizer.json")


def _safetensors(header: dict, data: bytes, length: int | None = None) -> bytes:
    text = json.dumps(header).encode()
    return (len(text) if length is None else length).to_bytes(8, "little") + text + data


LIES = [
    ("a size its shape does not have", _safetensors({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 12]}},
                                                     bytes(12))),
    ("describes tensor 'w' wrongly", _safetensors({"w": {"dtype": "F128", "shape": [1], "data_offsets": [0, 16]}},
                                                  bytes(16))),
    ("describes tensor 'w' wrongly", _safetensors({"w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}},
                                                  bytes(4))),
    ("overlap or leave gaps", _safetensors({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}}, bytes(8))),
    ("longer than its tensors", _safetensors({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(8))),
    ("header is missing or damaged", _safetensors({"w": 1}, b"", length=10**9)),
    ("header is missing or damaged", b"\x01\x00"),
]


@pytest.mark.parametrize("words, content", LIES, ids=[w for w, _ in LIES])
def test_a_safetensors_header_that_does_not_fit_its_file_is_refused(tmp_path, words, content):
    path = tmp_path / WEIGHTS_FILE
    path.write_bytes(content)
    with pytest.raises(DamagedModelError, match=words):
        safetensors_header(path)


def test_predict_with_a_damaged_model_names_the_file_without_a_traceback(tmp_path, tone_recording):
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    _cut_short(folder, tmp_path / "unused")
    _recompute_checksums(folder)
    result = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "predict", str(folder), str(tone_recording)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{folder / WEIGHTS_FILE}: the weights file is cut short" in result.stderr


def test_the_model_list_keeps_a_damaged_folder_as_unusable_with_the_reason(tmp_path):
    shutil.copytree(DEMO, tmp_path / "good")
    shutil.copytree(DEMO, tmp_path / "cut")
    _cut_short(tmp_path / "cut", tmp_path / "unused")
    _recompute_checksums(tmp_path / "cut")
    shutil.copytree(DEMO, tmp_path / "card")
    document = json.loads((tmp_path / "card" / CARD_FILE).read_text())
    document["calibration"]["temperature"] = -0.75
    (tmp_path / "card" / CARD_FILE).write_text(json.dumps(document))
    entries = find_models(tmp_path)
    assert [(e.path.name, e.usable) for e in entries] == [("good", True), ("card", False), ("cut", False)]
    assert entries[1].reason.startswith("lungkd.json: the model card is not valid (calibration.temperature")
    assert entries[2].reason.startswith("model.safetensors: the weights file is cut short")
