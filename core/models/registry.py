"""The model registry (docs/method.md section 6): every fact about an architecture, and `create_model`.

An entry says what the architecture consumes (its `InputSpec`: clip rate, features, prompts), its sizes,
parameter count, paper weights and training recipe, and whether k copies can train as one batched model.
Recipe validation, input preparation, training, estimates, analysis and the wizard's choice lists all read
it, so adding an architecture means a classifier class (core.models.classifiers) and one entry here.

Weights: `pretrained=None` is random initialisation (`size` "full" or "tiny"); otherwise a Hugging Face id
or a local folder loaded by the library's own `from_pretrained` (for CNN6, a PANNs `.pth` file or a folder
written by `save_model`). The checkpoint's configuration then decides the size. A LungKD model folder is the
backbone as `save_pretrained` writes it, the head, and one sidecar, `lungkd.json` (the model card).
torch and transformers are imported only when a model is built (`ModelInfo.classifier`), so listing the registry
and reading recipes stay instant.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lungkd.core.errors import LungKDError
from lungkd.core.features.cycle_sets import InputSpec
from lungkd.core.features.prepare import PrepSettings
from lungkd.core.features.spectral import ClapFeatureSettings, FbankSettings
from lungkd.core.labels import NUM_CLASSES
from lungkd.core.models.card import (DAMAGED_FIX, DamagedModelError, InputContract, ModelCard, read_model_card,
                                     write_model_card)
from lungkd.core.storage import atomic_folder, file_sha256

if TYPE_CHECKING:
    from torch import nn

    from lungkd.core.models.classifiers import Classifier

PANNS_CNN6_URL = "https://zenodo.org/records/3987831/files/Cnn6_mAP%3D0.343.pth"

CLAP_ID = "laion/clap-htsat-unfused"
HEAD_FILE = "head.safetensors"
SIZES = ("full", "tiny")
TINY_GPU_SHARE = 0.1


class WeightsUnavailableError(LungKDError):
    """Pretrained weights that cannot be found or read (offline, wrong folder, wrong file)."""


_RANDOM_INIT = 'or set pretrained = "" in the recipe to train from random initialisation.'


def _download_fix(hub_id: str) -> str:
    return (f"on a machine with network access, run `hf download {hub_id} --local-dir DIR` (older huggingface_hub: "
            f"`huggingface-cli download {hub_id} --local-dir DIR`), copy DIR to this machine and set "
            f'pretrained = "DIR" in the recipe (its full path); {_RANDOM_INIT}')


# docs/method.md section 7: the papers' training recipes (weight averaging is on in the paper recipes).
_CNN_RECIPE = {"epochs": 200, "batch_size": 128, "lr": 1e-3, "weight_decay": 0.0, "weight_averaging": 0.5,
               "specaugment": True, "mixed_precision": True}
_TRANSFORMER_RECIPE = {"epochs": 50, "batch_size": 8, "lr": 5e-5, "weight_decay": 1e-6, "weight_averaging": 0.5,
                       "specaugment": True, "mixed_precision": True}

_FBANK = InputSpec(PrepSettings(sample_rate=16000), FbankSettings(normalization="per_sample"))
_FBANK_AUDIOSET = InputSpec(PrepSettings(sample_rate=16000), FbankSettings(normalization="audioset"))
_CLAP = InputSpec(PrepSettings(sample_rate=48000), ClapFeatureSettings())
_CLAP_WITH_PROMPTS = InputSpec(PrepSettings(sample_rate=48000), ClapFeatureSettings(), prompts=True)


@dataclass(frozen=True)
class ModelInfo:
    """One architecture. Parameter counts are at full size."""

    name: str
    inputs: InputSpec  # docs/method.md section 4: what the model reads
    params: int  # ours, with the 4-class head (tested against a built model)
    spec_params_m: float  # docs/method.md section 6, in millions, which counts the original classification heads
    pretrained: str  # the paper's weights: a Hugging Face id, or where to get a file
    description: str
    params_note: str  # why `params` differs from the paper's figure
    paper_train: dict = field(hash=False)  # docs/method.md section 7's recipe for this architecture
    together: bool = False  # k members can train as one batched model (small convolutional networks)
    gpu_share: float = 1.0  # of one GPU, what a full-size run asks a scheduler for (a Ray task's num_gpus)
    classifier_name: str = field(default="Classifier", repr=False, compare=False)  # in core.models.classifiers
    hub_id: str | None = None  # None: weights are not on the Hugging Face hub (CNN6)

    @property
    def classifier(self) -> type[Classifier]:
        """The classifier class, imported (with torch) only when a model is built."""
        from lungkd.core.models import classifiers

        return getattr(classifiers, self.classifier_name)

    @property
    def input_kind(self) -> str:
        return self.inputs.kind

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.inputs.shape

    @property
    def needs_prompts(self) -> bool:
        return self.inputs.prompts

    def gpu_request(self, size: str) -> float:
        """The share of a GPU one run asks for: small models share a GPU, a tiny configuration takes little."""
        return self.gpu_share if size == "full" else TINY_GPU_SHARE


_REGISTRY: dict[str, ModelInfo] = {m.name: m for m in (
    ModelInfo(
        "cnn6", _FBANK, 4_306_372, 4.8, f"PANNs Cnn6_mAP=0.343.pth ({PANNS_CNN6_URL})",
        "PANNs CNN6 trunk (4 x 5x5 conv-BN-ReLU-avgpool, 64-128-256-512), max+mean pooling, Linear(512,4)",
        "The paper counts PANNs Cnn6 whole (4,837,455): its AudioSet layers fc1 512x512 (262,656), fc_audioset "
        "512x527 (270,351) and bn0 (128) are dropped; the trunk is 4,304,320, the head 2,052.",
        _CNN_RECIPE, together=True, gpu_share=0.25, classifier_name="CNN6Classifier"),
    ModelInfo(
        "resnet18", _FBANK, 11_172_292, 11.7, "microsoft/resnet-18",
        "ResNet-18 (ImageNet), one-channel stem, global average pooling, Linear(512,4)",
        "The paper counts ResNet-18 with its 1000-class ImageNet fc (513,000): 11,689,512. Ours drops that fc, "
        "sums the stem over RGB (-6,272) and adds the head (2,052).",
        _CNN_RECIPE, together=True, gpu_share=0.5, classifier_name="ResNetClassifier", hub_id="microsoft/resnet-18"),
    ModelInfo(
        "efficientnet_b0", _FBANK, 4_012_096, 5.3, "google/efficientnet-b0",
        "EfficientNet-B0 (ImageNet), one-channel stem, global average pooling, Linear(1280,4)",
        "The paper counts EfficientNet-B0 with its 1000-class classifier (1,281,000): 5,288,548. Ours drops it, "
        "sums the stem over RGB (-576) and adds the head (5,124).",
        _CNN_RECIPE, together=True, gpu_share=0.5, classifier_name="EfficientNetClassifier",
        hub_id="google/efficientnet-b0"),
    ModelInfo(
        "ast", _FBANK_AUDIOSET, 85_987_588, 87.7, "MIT/ast-finetuned-audioset-10-10-0.4593",
        "Audio Spectrogram Transformer (AudioSet), 798-frame positions, Linear(768,4) on the pooled tokens",
        "transformers' ASTModel is 86,187,264 at 1024 frames; 798 frames have 79 instead of 101 time patches "
        "(-202,752 position parameters); head 3,076. The paper's 87.7M matches the original AST code, which keeps "
        "DeiT's two unused 1000-class heads (2 x 769,000) and a LayerNorm+Linear head: 87,729,876.",
        _TRANSFORMER_RECIPE, classifier_name="ASTClassifier", hub_id="MIT/ast-finetuned-audioset-10-10-0.4593"),
    ModelInfo(
        "audio_clap", _CLAP, 28_192_924, 28.0, CLAP_ID,
        "CLAP HTSAT audio tower + projection, Linear(512,4) on the audio embedding",
        "Audio tower and projection 28,190,872 (the paper's 28M) plus the head (2,052).",
        _TRANSFORMER_RECIPE, classifier_name="AudioClapClassifier", hub_id=CLAP_ID),
    ModelInfo(
        "bts", _CLAP_WITH_PROMPTS, 153_496_990, 153.0, CLAP_ID,
        "Full CLAP (HTSAT audio + RoBERTa text) with metadata prompts, Linear(1024,4) on [text, audio] embeddings",
        "Full CLAP 153,492,890 (the paper's 153M: both towers, projections and the two logit scales, unused here) "
        "plus the head (4,100).",
        _TRANSFORMER_RECIPE, classifier_name="BTSClassifier", hub_id=CLAP_ID),
)}
ARCHITECTURES = tuple(_REGISTRY)


def list_models() -> list[ModelInfo]:
    return list(_REGISTRY.values())


def model_info(name: str) -> ModelInfo:
    if name not in _REGISTRY:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def models_table() -> str:
    """The registry as `lungkd models` prints it: our parameter counts beside the paper's (docs/method.md
    section 6 explains each difference)."""
    lines = [f"{'name':<16}{'input':<7}{'shape':<14}{'params':>13}{'paper':>8}  pretrained weights"]
    for m in list_models():
        shape = "x".join(map(str, m.input_shape))
        lines.append(f"{m.name:<16}{m.input_kind:<7}{shape:<14}{m.params:>13,}{m.spec_params_m:>7.1f}M  {m.pretrained}")
        lines.append(f"{'':<4}{m.description}")
        lines.append(f"{'':<4}params vs the paper: {m.params_note}")
    lines.append("params: ours, with the 4-class head; paper: the papers' counts, with the original heads "
                 "(docs/method.md section 6).")
    return "\n".join(lines)


def _is_local(source: str | os.PathLike) -> bool:
    """A path, not a hub id: it exists, or is written like a path (hub ids are `name` or `owner/name`)."""
    text = os.fspath(source)
    return (isinstance(source, os.PathLike) or os.path.exists(text) or text.startswith(("/", ".", "~"))
            or "\\" in text or text.count("/") > 1)


def create_model(name: str, pretrained: str | os.PathLike | None = None, size: str = "full",
                 num_classes: int = NUM_CLASSES, *, offline: bool = False) -> Classifier:
    """A model of architecture `name` (see `list_models()`).

    pretrained: None for random initialisation at `size` ("full" or "tiny"); a Hugging Face id or a local
    folder for the library's `from_pretrained` (the checkpoint's configuration decides the size, and a folder
    from `save_model` also restores the head); for cnn6 also a PANNs `.pth` file. Weights that cannot be had
    raise WeightsUnavailableError saying which and how to get them. `offline=True` never touches the network
    (as HF_HUB_OFFLINE=1 does).
    """
    info = model_info(name)
    if pretrained is None:
        backbone = info.classifier.backbone_class()(backbone_config(name, size))
        return info.classifier(name, backbone, num_classes)
    return _load(info, pretrained, num_classes, offline)


def backbone_config(name: str, size: str = "full"):
    """The backbone configuration of `name` at `size`: a transformers config, or CNN6Config."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    return model_info(name).classifier.backbone_config(size)


def _unavailable(info: ModelInfo, source: str, reason: str) -> WeightsUnavailableError:
    if info.hub_id is None:
        fix = (f"download the PANNs weights from {PANNS_CNN6_URL} and set pretrained = \"FILE\" in the recipe (the "
               f".pth file's full path, or a folder written by LungKD); {_RANDOM_INIT}")
    else:
        fix = _download_fix(source if not _is_local(source) else info.hub_id)
    reason = reason.strip().rstrip(".")
    return WeightsUnavailableError(f"pretrained weights for {info.name} are not available from {source!r} "
                                   f"({reason[:1].lower() + reason[1:]}).", fix=fix)


def _load(info: ModelInfo, source: str | os.PathLike, num_classes: int, offline: bool) -> Classifier:
    local = _is_local(source)
    path = Path(os.fspath(source)).expanduser()
    if local and not path.exists():
        raise _unavailable(info, os.fspath(source), "no such file or folder")
    if info.hub_id is None and not local:
        raise _unavailable(info, os.fspath(source), "CNN6 weights are not on the Hugging Face hub")
    if local and path.is_dir():
        _check_saved_arch(info.name, path)
        check_saved_files(path)
    try:
        model = info.classifier.load(info.name, str(path) if local else os.fspath(source), num_classes, offline)
    except OSError as exc:  # what transformers/huggingface_hub raise offline, or for an incomplete folder
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _unavailable(info, os.fspath(source), reason) from exc
    if local and (path / HEAD_FILE).is_file():
        _load_head(model, path / HEAD_FILE)
    return model


def check_saved_files(folder: str | os.PathLike) -> None:
    """Raises DamagedModelError when a file of a saved model is missing or differs from the sha256 its card
    recorded (a byte flipped on disk loads without complaint otherwise). Cards written before checksums
    were recorded are taken as they are."""
    folder = Path(folder)
    card = read_model_card(folder)
    for name, digest in (card.checksums if card else {}).items():
        path = folder / name
        try:
            actual = file_sha256(path)
        except OSError:
            raise DamagedModelError("a file of the saved model is missing or unreadable.", path=path,
                                    fix=DAMAGED_FIX) from None
        if actual != digest:
            raise DamagedModelError("the file's bytes changed after the model was saved (its sha256 differs from the "
                                    "one in lungkd.json).", path=path, fix=DAMAGED_FIX)


def _check_saved_arch(name: str, folder: Path) -> None:
    card = read_model_card(folder)
    if card is not None:
        saved = card.architecture
        if saved != name:
            raise WeightsUnavailableError(f"{folder} holds a {saved} model, not {name}.", path=folder,
                                          fix=f"create a {saved} model from it, or pick the folder of a {name} model.")


def _load_head(model: Classifier, path: Path) -> None:
    from safetensors.torch import load_file

    state = load_file(str(path))
    if state["weight"].shape != model.head.weight.shape:
        raise WeightsUnavailableError(
            f"the saved head has {state['weight'].shape[0]} classes and {state['weight'].shape[1]} inputs, the model "
            f"needs {model.head.out_features} and {model.head.in_features}.", path=path,
            fix="create the model with the num_classes it was saved with.")
    model.head.load_state_dict(state)


def save_model(model: Classifier, folder: str | os.PathLike, card: ModelCard | None = None) -> Path:
    """Write the model so `create_model(model.arch_name, pretrained=folder)` gives it back (same logits).

    The backbone goes through its `save_pretrained` (the format hub weights come in), the head to
    head.safetensors, and the card (what the model is and how it was made; without one, only what it is) to
    lungkd.json with the architecture, class count, input contract (the architecture's inputs unless the card
    says otherwise) and the sha256 of every other file (`check_saved_files`). The folder appears whole or not
    at all.
    """
    card = card or ModelCard(architecture=model.arch_name)
    from safetensors.torch import save_file

    with atomic_folder(folder) as tmp:
        model.save_parts(tmp)
        save_file({k: v.detach().contiguous() for k, v in model.head.state_dict().items()}, str(tmp / HEAD_FILE))
        checksums = {p.name: file_sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        inputs = card.inputs or InputContract.from_spec(model_info(model.arch_name).inputs)
        write_model_card(tmp, card.replace(architecture=model.arch_name, num_classes=model.head.out_features,
                                           inputs=inputs, checksums=checksums))
    return Path(folder)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
