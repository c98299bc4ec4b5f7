"""The model registry: shapes, sizes, pretrained loading offline, and save/load round trips."""
import pickle
from pathlib import Path

import pytest
import torch

from lungkd.core.data.prompts import build_prompt
from lungkd.core.models.classifiers import fit_ast_positions, prompt_tokenizer
from lungkd.core.models.cnn6 import CNN6, CNN6Config
from lungkd.core.models.card import CARD_FILE, ModelCard
from lungkd.core.models.registry import (WeightsUnavailableError, backbone_config, count_parameters, create_model,
                                         list_models, model_info, models_table, save_model)

NAMES = ["cnn6", "resnet18", "efficientnet_b0", "ast", "audio_clap", "bts"]
INFO = {m.name: m for m in list_models()}
PROMPTS = [
    build_prompt("adult", "male", "left anterior chest", "Meditron"),
    build_prompt("pediatric", "female", "trachea", "AKGC417L"),
    build_prompt("adult", "male", "left anterior chest", "Meditron"),
]


def _inputs(name: str, batch: int = 3) -> torch.Tensor:
    return torch.randn(batch, *INFO[name].input_shape, generator=torch.Generator().manual_seed(0))


def _logits(model, x: torch.Tensor) -> torch.Tensor:
    """Every classifier is called the same way; only BTS reads the prompts."""
    with torch.no_grad():
        return model(x, PROMPTS[:len(x)])


def _tiny(name: str):
    torch.manual_seed(0)
    return create_model(name, size="tiny").eval()


def test_registry_lists_the_six_architectures_with_their_inputs():
    assert list(INFO) == NAMES
    assert {n: (m.input_kind, m.input_shape) for n, m in INFO.items()} == {
        "cnn6": ("fbank", (798, 128)), "resnet18": ("fbank", (798, 128)), "efficientnet_b0": ("fbank", (798, 128)),
        "ast": ("fbank", (798, 128)), "audio_clap": ("clap", (1, 1001, 64)), "bts": ("clap", (1, 1001, 64))}
    # docs/method.md section 4: 16 kHz clips for fbank models, 48 kHz for CLAP; AST normalises with AudioSet's statistics
    assert {n: (m.inputs.prep.sample_rate, getattr(m.inputs.features, "normalization", None), m.needs_prompts)
            for n, m in INFO.items()} == {
        "cnn6": (16000, "per_sample", False), "resnet18": (16000, "per_sample", False),
        "efficientnet_b0": (16000, "per_sample", False), "ast": (16000, "audioset", False),
        "audio_clap": (48000, None, False), "bts": (48000, None, True)}
    # docs/method.md section 7: the paper recipes
    assert {n: (m.paper_train["lr"], m.paper_train["batch_size"], m.paper_train["epochs"]) for n, m in INFO.items()} \
        == {"cnn6": (1e-3, 128, 200), "resnet18": (1e-3, 128, 200), "efficientnet_b0": (1e-3, 128, 200),
            "ast": (5e-5, 8, 50), "audio_clap": (5e-5, 8, 50), "bts": (5e-5, 8, 50)}
    table = models_table()
    for m in INFO.values():
        assert f"{m.params:,}" in table and f"{m.spec_params_m:.1f}M" in table
    with pytest.raises(ValueError, match="unknown architecture 'vgg'"):
        create_model("vgg")
    with pytest.raises(ValueError, match="size must be one of"):
        create_model("cnn6", size="medium")


@pytest.mark.parametrize("name", NAMES)
def test_tiny_model_is_small_and_maps_a_batch_to_four_logits(name):
    model = _tiny(name)
    assert model.arch_name == name
    assert count_parameters(model) < 200_000
    logits = _logits(model, _inputs(name))
    assert logits.shape == (3, 4) and torch.isfinite(logits).all()


# docs/method.md section 6 counts the original classification heads; each entry turns our count into the paper's by
# taking off our 4-class head and putting back what the original model has and ours has not.
TO_SPEC = {
    "cnn6": -2_052 + 262_656 + 270_351 + 128,  # PANNs fc1, fc_audioset, bn0
    "resnet18": -2_052 + 513_000 + 6_272,  # ImageNet fc, 3-channel stem
    "efficientnet_b0": -5_124 + 1_281_000 + 576,  # ImageNet classifier, 3-channel stem
    "ast": -3_076 + 202_752 + 2 * 769_000 + 1_536 + 3_076,  # 1024-frame positions, DeiT heads, LayerNorm+Linear
    "audio_clap": -2_052,
    "bts": -4_100,
}


@pytest.mark.parametrize("name", NAMES)
def test_full_size_model_has_the_listed_parameter_count_and_runs(name):
    torch.manual_seed(0)
    model = create_model(name).eval()
    params = count_parameters(model)
    assert params == INFO[name].params
    spec = INFO[name].spec_params_m
    digits = 0 if name in ("audio_clap", "bts") else 1  # the paper writes 28M and 153M
    assert round((params + TO_SPEC[name]) / 1e6, digits) == spec
    assert _logits(model, _inputs(name, batch=1)).shape == (1, 4)


@pytest.mark.parametrize("name", NAMES)
def test_saved_tiny_model_loads_back_with_identical_logits(name, tmp_path):
    model = _tiny(name)
    x = _inputs(name)
    folder = save_model(model, tmp_path / name, ModelCard(architecture=name, description="a tiny test model"))
    loaded = create_model(name, pretrained=folder).eval()
    # one sidecar: the card, with the architecture and class count beside what the caller wrote
    assert sorted(p.name for p in folder.glob("lungkd*")) == [CARD_FILE]
    assert model_info(name).name == name
    assert type(loaded) is type(model)
    assert torch.equal(_logits(loaded, x), _logits(model, x))
    if name == "bts":  # the tokenizer travels with the model
        assert (folder / "tokenizer.json").is_file()
        ids = lambda m: m.tokenizer(PROMPTS, max_length=64, padding="max_length", truncation=True)["input_ids"]
        assert ids(loaded) == ids(model)


def test_saving_over_a_model_folder_replaces_it(tmp_path):
    first, second = _tiny("cnn6"), create_model("cnn6", size="tiny").eval()
    folder = tmp_path / "model"
    save_model(first, folder)
    save_model(second, folder)
    x = _inputs("cnn6")
    assert torch.equal(_logits(create_model("cnn6", pretrained=folder).eval(), x), _logits(second, x))
    assert [p.name for p in tmp_path.iterdir()] == ["model"]  # no temporary folders left behind


def test_a_folder_of_another_architecture_or_class_count_is_refused(tmp_path):
    folder = save_model(_tiny("cnn6"), tmp_path / "cnn6")
    with pytest.raises(WeightsUnavailableError, match="holds a cnn6 model, not resnet18"):
        create_model("resnet18", pretrained=folder)
    with pytest.raises(WeightsUnavailableError, match="saved head has 4 classes"):
        create_model("cnn6", pretrained=folder, num_classes=2)


@pytest.mark.parametrize("name, task_class", [
    ("resnet18", "ResNetForImageClassification"),
    ("efficientnet_b0", "EfficientNetForImageClassification"),
])
def test_imagenet_checkpoint_gets_a_one_channel_stem_that_sums_its_rgb_kernels(name, task_class, tmp_path):
    import transformers

    cfg = backbone_config(name, "tiny")
    cfg.num_channels, cfg.num_labels = 3, 10  # laid out as the hub's ImageNet classification checkpoints
    torch.manual_seed(0)
    original = getattr(transformers, task_class)(cfg).eval()
    original.save_pretrained(tmp_path)
    model = create_model(name, pretrained=tmp_path).eval()
    assert model.backbone.config.num_channels == 1
    x = _inputs(name, batch=2)
    with torch.no_grad():
        rgb = original.base_model(pixel_values=x.unsqueeze(1).repeat(1, 3, 1, 1)).pooler_output.flatten(1)
        grey = model.features(x, None)
    torch.testing.assert_close(grey, rgb, rtol=1e-4, atol=1e-5)


def test_ast_checkpoint_of_1024_frames_gets_its_time_positions_centre_cropped(tmp_path):
    import transformers

    cfg = backbone_config("ast", "tiny")
    cfg.max_length, cfg.num_labels = 1024, 527  # as MIT/ast-finetuned-audioset-10-10-0.4593
    torch.manual_seed(0)
    original = transformers.ASTForAudioClassification(cfg)
    original.save_pretrained(tmp_path)
    model = create_model("ast", pretrained=tmp_path).eval()
    assert model.backbone.config.max_length == 798
    pos = original.base_model.embeddings.position_embeddings.detach()
    grid = pos[:, 2:].reshape(1, 12, 101, -1)  # 12 frequency x 101 time patches
    expected = torch.cat([pos[:, :2], grid[:, :, 11:90].reshape(1, 12 * 79, -1)], dim=1)  # AST code: 50-39 .. +79
    assert torch.equal(model.backbone.embeddings.position_embeddings.detach(), expected)
    assert _logits(model, _inputs("ast", batch=2)).shape == (2, 4)


def test_ast_positions_of_a_shorter_checkpoint_are_interpolated():
    import transformers

    cfg = backbone_config("ast", "tiny")
    cfg.max_length = 512
    backbone = transformers.ASTModel(cfg)
    fit_ast_positions(backbone, 798)
    assert backbone.embeddings.position_embeddings.shape == (1, 12 * 79 + 2, cfg.hidden_size)
    assert backbone(input_values=torch.randn(1, 798, 128)).pooler_output.shape == (1, cfg.hidden_size)


@pytest.fixture
def clap_checkpoint(tmp_path) -> Path:
    """A tiny full-CLAP folder laid out as laion/clap-htsat-unfused: ClapModel weights and the tokenizer."""
    import transformers

    torch.manual_seed(0)
    transformers.ClapModel(backbone_config("bts", "tiny")).save_pretrained(tmp_path)
    prompt_tokenizer().save_pretrained(tmp_path)
    return tmp_path


def test_audio_clap_and_bts_load_from_one_clap_checkpoint(clap_checkpoint):
    import transformers

    clap = transformers.ClapModel.from_pretrained(clap_checkpoint).eval()
    audio_clap = create_model("audio_clap", pretrained=clap_checkpoint).eval()
    bts = create_model("bts", pretrained=clap_checkpoint).eval()
    x = _inputs("audio_clap", batch=2)
    with torch.no_grad():
        audio = clap.audio_projection(clap.audio_model(input_features=x).pooler_output)
        torch.testing.assert_close(audio_clap.features(x, None), audio)
        joint = bts.features(x, PROMPTS[:2])
    torch.testing.assert_close(joint[:, 32:], torch.nn.functional.normalize(audio, dim=-1))
    torch.testing.assert_close(joint.norm(dim=-1), torch.full((2,), 2 ** 0.5))  # two unit vectors


def test_bts_needs_the_checkpoints_tokenizer(clap_checkpoint):
    for f in ("tokenizer.json", "tokenizer_config.json"):
        (clap_checkpoint / f).unlink()
    with pytest.raises(WeightsUnavailableError, match="no tokenizer files"):
        create_model("bts", pretrained=clap_checkpoint)


def test_bts_encodes_each_distinct_prompt_once_as_64_tokens():
    model = _tiny("bts")
    seen = []
    model.backbone.text_model.register_forward_hook(lambda mod, args, kwargs, out: seen.append(kwargs["input_ids"]),
                                                    with_kwargs=True)
    x = _inputs("bts")
    batch = _logits(model, x)
    assert [ids.shape for ids in seen] == [(2, 64)]  # three prompts, two distinct
    with torch.no_grad():
        one_by_one = torch.cat([model(x[i:i + 1], [PROMPTS[i]]) for i in range(3)])
    torch.testing.assert_close(batch, one_by_one, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="got 3 inputs and 2 prompts"):
        model(x, PROMPTS[:2])
    with pytest.raises(ValueError, match="got 3 inputs and no prompts"):
        model(x)


def test_prompt_tokenizer_is_roberta_style_and_tells_prompts_apart():
    tok = prompt_tokenizer()
    assert (tok.bos_token_id, tok.pad_token_id, tok.eos_token_id) == (0, 1, 2)  # RoBERTa's, as CLAP's text config
    ids = tok(PROMPTS[:2], max_length=64, padding="max_length", truncation=True)["input_ids"]
    assert ids[0] != ids[1]
    assert all(len(row) == 64 and row[0] == 0 and 2 in row for row in ids)  # no prompt is cut short
    assert max(max(row) for row in ids) < len(tok) == 400


def test_wrong_input_shapes_are_named():
    with pytest.raises(ValueError, match=r"ast expects input of shape \(batch, 798, 128\), got \(1, 700, 128\)"):
        _tiny("ast")(torch.randn(1, 700, 128))
    with pytest.raises(ValueError, match=r"audio_clap expects input of shape \(batch, 1, any, 64\)"):
        _tiny("audio_clap")(torch.randn(1, 1001, 64))


def test_hub_weights_offline_raise_an_error_that_says_how_to_get_them():
    with pytest.raises(WeightsUnavailableError) as err:
        create_model("ast", pretrained="lungkd-tests/no-such-model", offline=True)
    text = str(err.value)
    assert "pretrained weights for ast" in text and "'lungkd-tests/no-such-model'" in text
    assert "hf download lungkd-tests/no-such-model --local-dir DIR" in text
    assert text.endswith('or set pretrained = "" in the recipe to train from random initialisation.')
    message = err.value.problem.message
    assert message.startswith("pretrained weights for ast are not available from 'lungkd-tests/no-such-model' (")
    assert message.endswith(").") and ".)" not in message and ".." not in text
    # the advice works: a model table with pretrained = "" is random initialisation
    from lungkd.core.recipes import ModelSpec

    assert ModelSpec.model_validate({"arch": "ast", "pretrained": ""}).pretrained is None


def test_hf_hub_offline_gives_the_same_error(monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets at import
    with pytest.raises(WeightsUnavailableError, match="hf download lungkd-tests/no-such-model"):
        create_model("bts", pretrained="lungkd-tests/no-such-model")


def test_missing_or_incomplete_local_weights_name_the_default_hub_id(tmp_path):
    with pytest.raises(WeightsUnavailableError, match="no such file or folder"):
        create_model("resnet18", pretrained=tmp_path / "nothing-here")
    with pytest.raises(WeightsUnavailableError, match="hf download laion/clap-htsat-unfused"):
        create_model("audio_clap", pretrained=tmp_path)  # an empty folder
    with pytest.raises(WeightsUnavailableError, match="not on the Hugging Face hub.*zenodo"):
        create_model("cnn6", pretrained="someone/cnn6")


def _panns_state(trunk: CNN6) -> dict:
    """A PANNs Cnn6 state dict: our trunk's keys plus the layers PANNs has and we do not."""
    state = dict(trunk.state_dict())
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.randn(513, 1, 1024)
    state["logmel_extractor.melW"] = torch.randn(513, 64)
    state.update({f"bn0.{k}": v for k, v in torch.nn.BatchNorm2d(64).state_dict().items()})
    state.update({"fc1.weight": torch.randn(512, 512), "fc1.bias": torch.zeros(512),
                  "fc_audioset.weight": torch.randn(527, 512), "fc_audioset.bias": torch.zeros(527)})
    return state


def test_panns_checkpoint_loads_safely_into_cnn6(tmp_path):
    torch.manual_seed(1)
    trunk = CNN6(CNN6Config())
    path = tmp_path / "Cnn6_mAP=0.343.pth"
    torch.save({"model": _panns_state(trunk), "iteration": 500000}, path)
    model = create_model("cnn6", pretrained=path)
    for key, value in trunk.state_dict().items():
        assert torch.equal(model.backbone.state_dict()[key], value), key


class _NotWeights:
    pass


def test_a_pth_file_with_code_or_without_the_trunk_is_refused(tmp_path):
    unsafe = tmp_path / "unsafe.pth"
    with open(unsafe, "wb") as f:
        pickle.dump({"model": _NotWeights()}, f, protocol=2)
    with pytest.raises(WeightsUnavailableError, match="weights_only=True"):
        create_model("cnn6", pretrained=unsafe)
    wrong = tmp_path / "wrong.pth"
    torch.save({"model": {"fc1.weight": torch.zeros(2, 2)}}, wrong)
    with pytest.raises(WeightsUnavailableError, match="not a PANNs CNN6 checkpoint"):
        create_model("cnn6", pretrained=wrong)
