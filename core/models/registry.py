"""The model registry (docs/method.md section 6): every fact about an architecture, and `create_model`.

An entry says what the architecture consumes (its `InputSpec`: clip rate, features, prompts), its sizes,
parameter count, paper weights and training recipe, and whether k copies can train as one batched model.
Recipe validation, input preparation, training, estimates, analysis and the wizard's choice lists all read
it, so adding an architecture means a classifier class (core.models.classifiers) and one entry here.

Weights: `pretrained=None` is random initialisation (`size` "full" or "tiny"); otherwise a Hugging Face id
or a local folder loaded by the library's own `from_pretrained` (for CNN6, a PANNs `.pth` file or a folder
written by `save_model`). The checkpoint's configuration then decides the size. A hub repository that holds a
LungKD model (a lungkd.json) is downloaded and loaded as its folder. A LungKD model folder is the
backbone as `save_pretrained` writes it, the head, and one sidecar, `lungkd.json` (the model card).
torch and transformers are imported only when a model is built (`ModelInfo.classifier`), so listing the registry
and reading recipes stay instant.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from lungkd.core.errors import LungKDError
from lungkd.core.features.inputs import ClapFeatureSettings, FbankSettings, InputSpec, PrepSettings
from lungkd.core.labels import NUM_CLASSES
from lungkd.core.models.card import (CARD_FILE, DAMAGED_FIX, SIZES, DamagedModelError, InputContract, ModelCard,
                                     read_model_card, write_model_card)
from lungkd.core.models.folder import HEAD_FILE, check_model_folder, size_of
from lungkd.core.storage import atomic_folder, file_sha256
from lungkd.core.workspace.layout import ARCHIVE_SUFFIX

if TYPE_CHECKING:
    from torch import nn

    from lungkd.core.models.classifiers import Classifier

PANNS_CNN6_URL = "https://zenodo.org/records/3987831/files/Cnn6_mAP%3D0.343.pth"

CLAP_ID = "laion/clap-htsat-unfused"
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


_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}(/[A-Za-z0-9][A-Za-z0-9_.-]{0,95})?")


def pretrained_problem(name: str, source: str) -> str | None:
    """Why `source` cannot be the starting weights of architecture `name`, found without reading them (a recipe
    is checked when it loads, before any data is prepared): a path that does not exist, a file where a folder
    belongs, a hub id for weights the hub does not have, or text that is neither a path nor a hub id."""
    info = model_info(name)
    if _is_local(source):
        path = Path(source).expanduser()
        if not path.exists():
            return f"there is no file or folder {source}; give the full path of the weights, {_RANDOM_INIT}"
        if info.hub_id is not None and not path.is_dir() and path.suffix.lower() != ARCHIVE_SUFFIX:
            return (f"{source} is not a folder; {name} weights are a folder as `hf download {info.hub_id} --local-dir "
                    f"DIR` writes it, a LungKD model folder or a .lungkd file")
        if info.hub_id is None and not (path.is_dir() or path.is_file()):
            return f"{source} is neither a file nor a folder"
        return None
    if info.hub_id is None:
        return (f"CNN6 weights are not on the Hugging Face hub; download the PANNs weights from {PANNS_CNN6_URL} and "
                f"give the .pth file's full path, {_RANDOM_INIT}")
    if not _HUB_ID.fullmatch(source) or "--" in source or ".." in source:
        return (f"this is neither a file or folder that exists nor a Hugging Face id (owner/name, e.g. {info.hub_id}); "
                f"give one of them, {_RANDOM_INIT}")
    return None


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


def hub_model_folder(hub_id: str, offline: bool = False) -> Path | None:
    """A LungKD model published on the Hugging Face hub (`lungkd models export MODEL OUT --folder`, then `hf
    upload`) as a local folder: its card, then the files the card lists, downloaded into the hub's cache.
    None when the repository holds no lungkd.json or cannot be reached: it is then loaded as any checkpoint."""
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        card = read_model_card(Path(hf_hub_download(hub_id, CARD_FILE, local_files_only=offline)).parent)
        if card is None or not card.checksums:
            return None
        return Path(snapshot_download(hub_id, allow_patterns=[CARD_FILE, *card.checksums], local_files_only=offline))
    except (EntryNotFoundError, OSError, ValueError):
        return None


def _load(info: ModelInfo, source: str | os.PathLike, num_classes: int, offline: bool) -> Classifier:
    if not _is_local(source) and (published := hub_model_folder(os.fspath(source), offline)) is not None:
        source = published  # a LungKD model: loaded as its folder, head and checksums included
    local = _is_local(source)
    path = Path(os.fspath(source)).expanduser()
    if local and not path.exists():
        raise _unavailable(info, os.fspath(source), "no such file or folder")
    if info.hub_id is None and not local:
        raise _unavailable(info, os.fspath(source), "CNN6 weights are not on the Hugging Face hub")
    card = read_model_card(path) if local and path.is_dir() else None
    if card is not None:
        return _load_model_folder(info, path, card, num_classes)
    try:
        return info.classifier.load(info.name, str(path) if local else os.fspath(source), num_classes, offline)
    except OSError as exc:  # what transformers/huggingface_hub raise offline, or for an incomplete folder
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _unavailable(info, os.fspath(source), reason) from exc


def _load_model_folder(info: ModelInfo, folder: Path, card: ModelCard, num_classes: int) -> Classifier:
    """A LungKD model folder (its card beside the weights): every file checked before the library opens any
    (core.models.folder), then loaded with nothing left unloaded or loaded at random."""
    if card.architecture != info.name:
        raise WeightsUnavailableError(f"{folder} holds a {card.architecture} model, not {info.name}.", path=folder,
                                      fix=f"create a {card.architecture} model from it, or pick the folder of a "
                                          f"{info.name} model.")
    if card.num_classes != num_classes:
        raise WeightsUnavailableError(
            f"the saved head has {card.num_classes} classes, the model needs {num_classes}.", path=folder / HEAD_FILE,
            fix="create the model with the num_classes it was saved with.")
    check_model_folder(folder, card, info.classifier)
    try:
        model = info.classifier.load(info.name, str(folder), num_classes, offline=True, exact=True)
        from safetensors.torch import load_file

        model.head.load_state_dict(load_file(str(folder / HEAD_FILE)))
    except Exception as exc:  # noqa: BLE001 - after the checks, whatever a library still refuses is a damaged file
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise DamagedModelError(f"the model's files passed LungKD's checks but the library could not load them "
                                f"({type(exc).__name__}: {reason}).", path=folder, fix=DAMAGED_FIX) from exc
    return model


def check_saved_files(folder: str | os.PathLike, *, checksums: bool = True) -> ModelCard | None:
    """The card of a saved model, after every file was checked (core.models.folder): DamagedModelError when one
    is missing, is not what its architecture has, or (unless `checksums` is False: a listing of many models)
    differs from the sha256 its card recorded. None for a folder without a card."""
    folder = Path(folder)
    card = read_model_card(folder)
    if card is None:
        return None
    if card.architecture not in _REGISTRY:
        raise DamagedModelError(f"the model card names architecture '{card.architecture}', which this LungKD does "
                                f"not know ({', '.join(ARCHITECTURES)}).", path=folder / CARD_FILE,
                                fix="use a LungKD version that has it, or " + DAMAGED_FIX)
    check_model_folder(folder, card, model_info(card.architecture).classifier, checksums=checksums)
    return card


def save_model(model: Classifier, folder: str | os.PathLike, card: ModelCard | None = None) -> Path:
    """Write the model so `create_model(model.arch_name, pretrained=folder)` gives it back (same logits).

    The backbone goes through its `save_pretrained` (the format hub weights come in), the head to
    head.safetensors, and the card (what the model is and how it was made; without one, only what it is) to
    lungkd.json with the architecture, its size (read off its configuration), class count, input contract (the
    architecture's inputs unless the card says otherwise) and the sha256 and size of every other file
    (`check_saved_files`). The folder appears whole or not
    at all.
    """
    card = card or ModelCard(architecture=model.arch_name)
    from safetensors.torch import save_file

    with atomic_folder(folder) as tmp:
        model.save_parts(tmp)
        save_file({k: v.detach().contiguous() for k, v in model.head.state_dict().items()}, str(tmp / HEAD_FILE))
        files = [p for p in sorted(tmp.iterdir()) if p.is_file()]
        info = model_info(model.arch_name)
        inputs = card.inputs or InputContract.from_spec(info.inputs)
        size = size_of(model.backbone.config, info.classifier) or card.size
        write_model_card(tmp, card.replace(architecture=model.arch_name, size=size,
                                           num_classes=model.head.out_features, inputs=inputs,
                                           checksums={p.name: file_sha256(p) for p in files},
                                           file_sizes={p.name: p.stat().st_size for p in files}))
    return Path(folder)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
