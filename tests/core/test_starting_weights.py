"""A trained LungKD model, as a folder or a .lungkd, is the starting weights of any recipe of its architecture
(`pretrained = "..."` in [model], [teachers] or [[students]]): a .lungkd is checked and unpacked into the
workspace's cache before use, and a model of another architecture is refused when the recipe loads."""
import hashlib

import pytest
import torch

from lungkd.core.models.archive import export_archive, starting_weights
from lungkd.core.models.card import read_model_card
from lungkd.core.models.inventory import find_models, shipped_models_folder
from lungkd.core.models.registry import create_model
from lungkd.core.recipes import parse_experiment, parse_recipe
from lungkd.core.schema import RecipeError
from lungkd.core.workspace.layout import unpacked_folder

DEMO = shipped_models_folder() / "demo-cnn6"


@pytest.fixture
def archive(tmp_path):
    return export_archive(DEMO, tmp_path / "demo.lungkd")


def _training(arch: str, pretrained, data="/data") -> dict:
    return {"data": {"path": data}, "model": {"arch": arch, "size": "tiny", "pretrained": str(pretrained)}}


def _experiment(teacher: str, student: str, pretrained) -> dict:
    return {"data": {"path": "/data"}, "teachers": {"arch": teacher, "k": 1, "pretrained": str(pretrained)},
            "students": [{"arch": student, "labels": "single", "pretrained": str(pretrained)}]}


@pytest.mark.parametrize("as_archive", [False, True], ids=["folder", "lungkd"])
def test_a_model_of_another_architecture_is_refused_when_the_recipe_loads(archive, as_archive):
    source = archive if as_archive else DEMO
    with pytest.raises(RecipeError) as caught:
        parse_recipe(_training("resnet18", source))
    assert f"pretrained = '{source}' is a cnn6 model: it can be the starting weights of a cnn6 model only, not of " \
           "arch = 'resnet18'" in str(caught.value) and "[model]" in str(caught.value)
    with pytest.raises(RecipeError, match=r"\[students 1\]: .*is a cnn6 model"):
        parse_experiment(_experiment("cnn6", "efficientnet_b0", source))
    with pytest.raises(RecipeError, match=r"\[teachers\].*is a cnn6 model"):
        parse_experiment(_experiment("ast", "cnn6", source))
    assert parse_recipe(_training("cnn6", source)).model.pretrained == str(source)
    assert parse_experiment(_experiment("cnn6", "cnn6", source)).teachers.pretrained == str(source)


def test_a_refused_archive_is_refused_when_the_recipe_loads(archive, tmp_path):
    bad = tmp_path / "bad.lungkd"
    bad.write_bytes(archive.read_bytes()[:-200])  # cut short: its central directory is gone
    with pytest.raises(RecipeError, match=r"cannot be used: not a \.lungkd archive"):
        parse_recipe(_training("cnn6", bad))


def test_an_archive_is_unpacked_into_the_cache_once_and_loads_as_the_model(archive, tmp_path):
    workspace = tmp_path / "ws"
    folder = starting_weights(str(archive), workspace)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    assert folder == str(unpacked_folder(workspace) / digest)
    assert starting_weights(str(archive), workspace) == folder  # found there, checked, not unpacked again
    x = torch.randn(2, 798, 128)
    with torch.no_grad():
        torch.testing.assert_close(create_model("cnn6", pretrained=folder).eval()(x),
                                   create_model("cnn6", pretrained=DEMO).eval()(x), rtol=0, atol=0)
    assert find_models(workspace) == []  # the cache is not a model the Studio offers
    weights = unpacked_folder(workspace) / digest / "model.safetensors"
    weights.write_bytes(b"damaged")
    assert starting_weights(str(archive), workspace) == folder  # damaged in the cache: unpacked again
    assert weights.read_bytes() == (DEMO / "model.safetensors").read_bytes()
    assert starting_weights("microsoft/resnet-18", workspace) == "microsoft/resnet-18"  # others as they are


@pytest.mark.slow
def test_lungkd_train_starts_from_an_archive_and_its_card_names_the_parent(archive, synthetic_dir, tmp_path):
    from lungkd.core.training.single_run import train_from_recipe

    recipe = parse_recipe({**_training("cnn6", archive, str(synthetic_dir)), "name": "from-demo",
                           "selection": "last", "device": "cpu",
                           "train": {"epochs": 1, "batch_size": 16, "lr": 1e-12, "specaugment": False}})
    result, model_dir = train_from_recipe(recipe, tmp_path / "ws")
    demo = create_model("cnn6", pretrained=DEMO)
    for (name, trained), (_, started) in zip(result.model.named_parameters(), demo.named_parameters()):
        torch.testing.assert_close(trained, started, rtol=0, atol=1e-9, msg=name)  # lr 1e-12: where it started
    card = read_model_card(model_dir)
    assert card.pretrained == str(archive)
    assert card.parent.how == "starting weights" and card.parent.name == "demo.lungkd"
    assert card.parent.card_sha256 == hashlib.sha256(read_model_card(DEMO).replace(
        file_sizes={n: (DEMO / n).stat().st_size for n in read_model_card(DEMO).checksums}).text().encode()).hexdigest()
