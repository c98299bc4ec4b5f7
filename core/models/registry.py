"""The model registry (SPEC section 6): six architectures behind one `create_model`.

Every model is a `Classifier`: a backbone (a transformers model, or our CNN6) and a linear head, with
`arch_name` and `input_kind` ("fbank" or "clap") attributes. fbank models take (B, 798, 128) Kaldi fbank
(frames x mel bins); CLAP models take (B, 1, 1001, 64) `input_features` from ClapFeatureExtractor, and
BTS also the prompt of each cycle: `model(input_features, prompts)`.

Weights: `pretrained=None` is random initialisation (`size` "full" or "tiny"); otherwise a Hugging Face id
or a local folder loaded by the library's own `from_pretrained` (for CNN6, a PANNs `.pth` file or a folder
written by `save_model`). The checkpoint's configuration then decides the size. `save_model` writes a
folder that the same `from_pretrained` path reads back, plus the head. transformers is imported only when
a model is built, so listing the registry stays instant.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from lungkd.core.errors import LungKDError
from lungkd.core.labels import NUM_CLASSES

FBANK_FRAMES, FBANK_BINS = 798, 128
CLAP_FRAMES, CLAP_MELS = 1001, 64
CLAP_ID = "laion/clap-htsat-unfused"
PROMPT_TOKENS = 64  # BTS tokenises every prompt to 64 tokens
PROMPT_VOCAB = 400  # size of the offline prompt tokenizer (random initialisation only)
HEAD_FILE = "head.safetensors"
INFO_FILE = "lungkd_model.json"
PANNS_CNN6_URL = "https://zenodo.org/records/3987831/files/Cnn6_mAP%3D0.343.pth"


class WeightsUnavailableError(LungKDError):
    """Pretrained weights that cannot be found or read (offline, wrong folder, wrong file)."""


def _download_fix(hub_id: str) -> str:
    return (f"on a machine with network access run `hf download {hub_id} --local-dir DIR` (older huggingface_hub: "
            f"`huggingface-cli download {hub_id} --local-dir DIR`), copy DIR here and pass it as the pretrained "
            "folder; or choose random initialisation (pretrained = none).")


# ---------------------------------------------------------------- CNN6 (PANNs), defined here


@dataclass(frozen=True)
class CNN6Config:
    channels: tuple[int, ...] = (64, 128, 256, 512)
    # PANNs' input batch norm over mel bins (bn0) is left out, as in the ICBHI reference CNN6.


class ConvBlock5x5(nn.Module):
    """PANNs ConvBlock5x5: one 5x5 conv, batch norm, ReLU, 2x2 average pooling."""

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, kernel_size=5, padding=2, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.avg_pool2d(F.relu(self.bn1(self.conv1(x))), kernel_size=2)


class CNN6(nn.Module):
    """The PANNs CNN6 conv trunk: (B, 1, T, F) -> (B, C), max + mean over time of the mean over frequency.

    Module names follow PANNs (`conv_block1.conv1`, ...) so its checkpoints map key for key.
    Saved as config.json + model.safetensors, mirroring transformers' save_pretrained/from_pretrained.
    """

    def __init__(self, config: CNN6Config = CNN6Config()):
        super().__init__()
        self.config = config
        channels = (1, *config.channels)
        for i in range(len(config.channels)):
            self.add_module(f"conv_block{i + 1}", ConvBlock5x5(channels[i], channels[i + 1]))

    @property
    def num_features(self) -> int:
        return self.config.channels[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(len(self.config.channels)):
            x = getattr(self, f"conv_block{i + 1}")(x)
        x = x.mean(dim=3)
        return x.max(dim=2).values + x.mean(dim=2)

    def save_pretrained(self, folder: Path) -> None:
        from safetensors.torch import save_file

        (Path(folder) / "config.json").write_text(json.dumps({"model_type": "lungkd_cnn6", **asdict(self.config)}))
        save_file({k: v.contiguous() for k, v in self.state_dict().items()}, str(Path(folder) / "model.safetensors"))

    @classmethod
    def from_pretrained(cls, source: str | Path, **_) -> "CNN6":
        """A folder written by `save_pretrained`, or a PANNs checkpoint file (Cnn6_mAP=0.343.pth)."""
        path = Path(source)
        if path.is_file():
            return cls._from_panns(path)
        from safetensors.torch import load_file

        if not (path / "config.json").is_file() or not (path / "model.safetensors").is_file():
            raise OSError(f"{path} holds no config.json + model.safetensors of a CNN6")
        raw = json.loads((path / "config.json").read_text())
        model = cls(CNN6Config(channels=tuple(raw["channels"])))
        model.load_state_dict(load_file(str(path / "model.safetensors")))
        return model

    @classmethod
    def _from_panns(cls, path: Path) -> "CNN6":
        try:  # weights_only: a checkpoint is data, never code
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - torch raises several types for unreadable/unsafe files
            raise OSError(f"{path} cannot be read as a PANNs checkpoint with weights_only=True ({exc})") from exc
        state = checkpoint.get("model", checkpoint) if isinstance(checkpoint, dict) else None
        model = cls()
        ours = model.state_dict()
        # PANNs' spectrogram/logmel extractors, bn0, fc1 and fc_audioset have no counterpart here.
        kept = {k: v for k, v in (state or {}).items() if k in ours and v.shape == ours[k].shape}
        missing = sorted(set(ours) - set(kept))
        if missing:
            raise OSError(f"{path} is not a PANNs CNN6 checkpoint: it lacks {', '.join(missing[:4])}")
        model.load_state_dict(kept)
        return model


# ---------------------------------------------------------------- the classifiers


def _transformers(name: str):
    import transformers

    return getattr(transformers, name)


def _check_shape(x: torch.Tensor, expected: tuple[int | None, ...], arch: str) -> None:
    """`expected` is the shape of one cycle; None matches any size on that axis."""
    ok = x.dim() == len(expected) + 1 and all(e is None or s == e for s, e in zip(x.shape[1:], expected))
    if not ok:
        want = ", ".join("any" if e is None else str(e) for e in expected)
        raise ValueError(f"{arch} expects input of shape (batch, {want}), got {tuple(x.shape)}")


class Classifier(nn.Module):
    """A backbone and a linear head. Subclasses say how to build, load and run their backbone."""

    input_kind = "fbank"
    input_shape: tuple[int | None, ...] = (None, FBANK_BINS)  # one cycle; None = any length

    def __init__(self, arch_name: str, backbone: nn.Module, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.arch_name = arch_name
        self.backbone = backbone
        self.head = nn.Linear(self.feature_dim(backbone), num_classes)

    @staticmethod
    def backbone_class() -> type:
        raise NotImplementedError

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        raise NotImplementedError

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @classmethod
    def adapt(cls, backbone: nn.Module) -> nn.Module:
        """Fit pretrained weights to our input (one-channel stem, 798-frame positions); no-op by default."""
        return backbone

    @classmethod
    def load(cls, arch_name: str, source: str, num_classes: int, offline: bool) -> "Classifier":
        backbone = cls.backbone_class().from_pretrained(source, local_files_only=offline)
        return cls(arch_name, cls.adapt(backbone.float()), num_classes)

    def save_parts(self, folder: Path) -> None:
        self.backbone.save_pretrained(folder)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_shape(x, self.input_shape, self.arch_name)
        return self.head(self.features(x))


class CNN6Classifier(Classifier):
    @staticmethod
    def backbone_class() -> type:
        return CNN6

    @staticmethod
    def feature_dim(backbone: CNN6) -> int:
        return backbone.num_features

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x.unsqueeze(1))


class ImageCNNClassifier(Classifier):
    """An ImageNet CNN reading the fbank as a one-channel image (time x mel)."""

    @staticmethod
    def stem(backbone: nn.Module) -> nn.Conv2d:
        raise NotImplementedError

    @classmethod
    def adapt(cls, backbone: nn.Module) -> nn.Module:
        if backbone.config.num_channels != 1:
            # A grey image copied to R, G and B meets the sum of the three kernels: same response.
            conv = cls.stem(backbone)
            conv.weight = nn.Parameter(conv.weight.detach().sum(dim=1, keepdim=True))
            conv.in_channels = 1
            backbone.config.num_channels = 1
        return backbone

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(pixel_values=x.unsqueeze(1)).pooler_output.flatten(1)


class ResNetClassifier(ImageCNNClassifier):
    @staticmethod
    def backbone_class() -> type:
        return _transformers("ResNetModel")

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        return backbone.config.hidden_sizes[-1]

    @staticmethod
    def stem(backbone: nn.Module) -> nn.Conv2d:
        return backbone.embedder.embedder.convolution

    @classmethod
    def adapt(cls, backbone: nn.Module) -> nn.Module:
        backbone = super().adapt(backbone)
        backbone.embedder.num_channels = 1  # ResNetEmbeddings checks its input against this copy
        return backbone


class EfficientNetClassifier(ImageCNNClassifier):
    @staticmethod
    def backbone_class() -> type:
        return _transformers("EfficientNetModel")

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        return backbone.config.hidden_dim

    @staticmethod
    def stem(backbone: nn.Module) -> nn.Conv2d:
        return backbone.embeddings.convolution


class ASTClassifier(Classifier):
    """AST on exactly 798 frames.

    We shorten the model instead of padding the input to 1024 frames: padding would spend a fifth of the
    attention on silence. Like the AST reference code, the 1024-frame checkpoint's time positions (101
    patches) are centre-cropped to the 79 that 798 frames give (interpolated if a checkpoint is shorter).
    """

    input_shape = (FBANK_FRAMES, FBANK_BINS)

    @staticmethod
    def backbone_class() -> type:
        return _transformers("ASTModel")

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        return backbone.config.hidden_size

    @classmethod
    def adapt(cls, backbone: nn.Module) -> nn.Module:
        fit_ast_positions(backbone, FBANK_FRAMES)
        return backbone

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_values=x).pooler_output  # mean of the cls and distillation tokens


def fit_ast_positions(backbone: nn.Module, max_length: int) -> None:
    """Resize an ASTModel's positional embeddings (and config) from its max_length to `max_length` frames."""
    config = backbone.config
    if config.max_length == max_length:
        return
    embeddings = backbone.embeddings
    freq, old_time = embeddings.get_shape(config)
    new_time = (max_length - config.patch_size) // config.time_stride + 1
    pos = embeddings.position_embeddings.detach()
    tokens, grid = pos[:, :2], pos[:, 2:].reshape(1, freq, old_time, -1).permute(0, 3, 1, 2)  # (1, D, F, T)
    if new_time <= old_time:
        start = old_time // 2 - new_time // 2
        grid = grid[..., start:start + new_time]
    else:
        grid = F.interpolate(grid, size=(freq, new_time), mode="bilinear", align_corners=False)
    grid = grid.permute(0, 2, 3, 1).reshape(1, freq * new_time, -1)
    embeddings.position_embeddings = nn.Parameter(torch.cat([tokens, grid], dim=1).contiguous())
    config.max_length = max_length


class AudioClapClassifier(Classifier):
    """CLAP's HTSAT audio tower and projection; the head reads the (unnormalised) audio embedding."""

    input_kind = "clap"
    input_shape = (1, None, CLAP_MELS)

    @staticmethod
    def backbone_class() -> type:
        return _transformers("ClapAudioModelWithProjection")

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        return backbone.config.projection_dim

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(input_features=x).audio_embeds


class BTSClassifier(Classifier):
    """Full CLAP: head on concat(L2-normalised text embedding, L2-normalised audio embedding).

    `tokenizer` is the checkpoint's own (RoBERTa BPE). A randomly initialised model gets a small BPE
    tokenizer trained on the BTS prompt words instead (the hub's is not available offline); either
    is saved with the model, so a reloaded model tokenises exactly as before.
    """

    input_kind = "clap"
    input_shape = (1, None, CLAP_MELS)

    def __init__(self, arch_name: str, backbone: nn.Module, num_classes: int = NUM_CLASSES, tokenizer=None):
        super().__init__(arch_name, backbone, num_classes)
        self.tokenizer = tokenizer if tokenizer is not None else prompt_tokenizer()

    @staticmethod
    def backbone_class() -> type:
        return _transformers("ClapModel")

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        return 2 * backbone.config.projection_dim

    @classmethod
    def load(cls, arch_name: str, source: str, num_classes: int, offline: bool) -> "BTSClassifier":
        backbone = cls.backbone_class().from_pretrained(source, local_files_only=offline)
        tokenizer = _transformers("AutoTokenizer").from_pretrained(source, local_files_only=offline)
        if len(tokenizer) <= len(tokenizer.all_special_ids):  # transformers 5 builds an empty one from no files
            raise OSError(f"{source} has no tokenizer files (tokenizer.json, or vocab.json and merges.txt)")
        return cls(arch_name, backbone.float(), num_classes, tokenizer=tokenizer)

    def save_parts(self, folder: Path) -> None:
        super().save_parts(folder)
        self.tokenizer.save_pretrained(folder)

    def encode_prompts(self, prompts: list[str], device: torch.device) -> torch.Tensor:
        """L2-normalised text embeddings (len(prompts), P), each distinct prompt run through the text tower once."""
        unique = list(dict.fromkeys(prompts))
        tokens = self.tokenizer(unique, max_length=PROMPT_TOKENS, padding="max_length", truncation=True,
                                return_tensors="pt").to(device)
        text = self.backbone.text_model(input_ids=tokens["input_ids"], attention_mask=tokens["attention_mask"])
        embeds = F.normalize(self.backbone.text_projection(text.pooler_output), dim=-1)
        position = {p: i for i, p in enumerate(unique)}
        return embeds[torch.tensor([position[p] for p in prompts], device=device)]

    def features(self, x: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        audio = self.backbone.audio_model(input_features=x)
        audio = F.normalize(self.backbone.audio_projection(audio.pooler_output), dim=-1)
        return torch.cat([self.encode_prompts(prompts, x.device), audio], dim=-1)

    def forward(self, x: torch.Tensor, prompts: list[str]) -> torch.Tensor:
        _check_shape(x, self.input_shape, self.arch_name)
        if len(prompts) != x.shape[0]:
            raise ValueError(f"bts got {x.shape[0]} inputs but {len(prompts)} prompts")
        return self.head(self.features(x, prompts))


def prompt_tokenizer(vocab_size: int = PROMPT_VOCAB):
    """A RoBERTa-style byte-level BPE tokenizer trained on every BTS prompt wording (offline, ~0.1 s)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from lungkd.core.data.prompts import LOCATION_WORDS, UNKNOWN, build_prompt

    devices = ("AKGC417L", "LittC2SE", "Litt3200", "Meditron", UNKNOWN)
    corpus = [build_prompt(age, sex, loc, dev) for age in ("adult", "pediatric", UNKNOWN, None)
              for sex in ("male", "female", UNKNOWN, None) for loc in (*LOCATION_WORDS.values(), UNKNOWN, None)
              for dev in (*devices, None)]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, show_progress=False,
                                  special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],  # RoBERTa's ids 0-4
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    bpe.train_from_iterator(corpus, trainer)
    model = json.loads(bpe.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    return _transformers("RobertaTokenizer")(vocab=model["vocab"], merges=merges)


# ---------------------------------------------------------------- configurations


def _cnn6_config(size: str) -> CNN6Config:
    return CNN6Config() if size == "full" else CNN6Config(channels=(8, 16, 32, 64))


def _resnet_config(size: str):
    widths, depths, stem = ([64, 128, 256, 512], [2, 2, 2, 2], 64) if size == "full" else ([8, 16, 32, 64], [1] * 4, 8)
    return _transformers("ResNetConfig")(num_channels=1, embedding_size=stem, hidden_sizes=widths, depths=depths,
                                         layer_type="basic", downsample_in_first_stage=False)


def _efficientnet_config(size: str):
    # google/efficientnet-b0's values; the transformers defaults are B7's.
    scale = dict(width_coefficient=1.0, depth_coefficient=1.0, hidden_dim=1280) if size == "full" else \
        dict(width_coefficient=0.25, depth_coefficient=0.25, hidden_dim=320,  # hidden_dim = round_filters(1280)
             expand_ratios=(1, 2, 2, 2, 2, 2, 2))  # B0's 6x expansion costs most of the CPU time at 798x128
    return _transformers("EfficientNetConfig")(num_channels=1, image_size=224, dropout_rate=0.2, **scale)


def _ast_config(size: str):
    # MIT/ast-finetuned-audioset-10-10-0.4593: ViT-base, 16x16 patches, stride 10, 128 mel bins.
    dims = {} if size == "full" else dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                           intermediate_size=64)
    return _transformers("ASTConfig")(max_length=FBANK_FRAMES, num_mel_bins=FBANK_BINS, patch_size=16,
                                      frequency_stride=10, time_stride=10, **dims)


def _clap_audio_config(size: str):
    if size == "full":  # HTSAT-tiny as in laion/clap-htsat-unfused (the class defaults)
        return _transformers("ClapAudioConfig")(enable_fusion=False)
    # hidden_size must equal patch_embeds_hidden_size * 2 ** (stages - 1)
    return _transformers("ClapAudioConfig")(enable_fusion=False, patch_embeds_hidden_size=8, depths=[1, 1],
                                            num_attention_heads=[1, 2], hidden_size=16, projection_dim=32)


def _clap_config(size: str):
    text = {} if size == "full" else dict(vocab_size=PROMPT_VOCAB, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                          intermediate_size=32, max_position_embeddings=PROMPT_TOKENS + 2)
    audio = _clap_audio_config(size).to_dict()
    return _transformers("ClapConfig")(text_config=text, audio_config=audio,
                                       projection_dim=512 if size == "full" else 32)


# ---------------------------------------------------------------- the registry


@dataclass(frozen=True)
class ModelInfo:
    """One architecture as `lungkd models` lists it. Parameter counts are at full size."""

    name: str
    input_kind: str  # "fbank" or "clap"
    input_shape: tuple[int, ...]  # one cycle, without the batch axis
    params: int  # ours, with the 4-class head (tested against a built model)
    spec_params_m: float  # SPEC section 6, in millions, which counts the original classification heads
    pretrained: str  # the paper's weights: a Hugging Face id, or where to get a file
    description: str
    params_note: str  # why `params` differs from SPEC's figure


@dataclass(frozen=True)
class _Arch:
    info: ModelInfo
    classifier: type[Classifier]
    config: Callable[[str], Any]  # size -> backbone configuration
    hub_id: str | None = None  # None: weights are not on the hub (CNN6)


_FBANK_SHAPE = (FBANK_FRAMES, FBANK_BINS)
_CLAP_SHAPE = (1, CLAP_FRAMES, CLAP_MELS)

_ARCHS: dict[str, _Arch] = {a.info.name: a for a in (
    _Arch(ModelInfo(
        "cnn6", "fbank", _FBANK_SHAPE, 4_306_372, 4.8, f"PANNs Cnn6_mAP=0.343.pth ({PANNS_CNN6_URL})",
        "PANNs CNN6 trunk (4 x 5x5 conv-BN-ReLU-avgpool, 64-128-256-512), max+mean pooling, Linear(512,4)",
        "SPEC counts PANNs Cnn6 whole (4,837,455): its AudioSet layers fc1 512x512 (262,656), fc_audioset "
        "512x527 (270,351) and bn0 (128) are dropped; the trunk is 4,304,320, the head 2,052."),
        CNN6Classifier, _cnn6_config),
    _Arch(ModelInfo(
        "resnet18", "fbank", _FBANK_SHAPE, 11_172_292, 11.7, "microsoft/resnet-18",
        "ResNet-18 (ImageNet), one-channel stem, global average pooling, Linear(512,4)",
        "SPEC counts ResNet-18 with its 1000-class ImageNet fc (513,000): 11,689,512. Ours drops that fc, "
        "sums the stem over RGB (-6,272) and adds the head (2,052)."),
        ResNetClassifier, _resnet_config, "microsoft/resnet-18"),
    _Arch(ModelInfo(
        "efficientnet_b0", "fbank", _FBANK_SHAPE, 4_012_096, 5.3, "google/efficientnet-b0",
        "EfficientNet-B0 (ImageNet), one-channel stem, global average pooling, Linear(1280,4)",
        "SPEC counts EfficientNet-B0 with its 1000-class classifier (1,281,000): 5,288,548. Ours drops it, "
        "sums the stem over RGB (-576) and adds the head (5,124)."),
        EfficientNetClassifier, _efficientnet_config, "google/efficientnet-b0"),
    _Arch(ModelInfo(
        "ast", "fbank", _FBANK_SHAPE, 85_987_588, 87.7, "MIT/ast-finetuned-audioset-10-10-0.4593",
        "Audio Spectrogram Transformer (AudioSet), 798-frame positions, Linear(768,4) on the pooled tokens",
        "transformers' ASTModel is 86,187,264 at 1024 frames; 798 frames have 79 instead of 101 time patches "
        "(-202,752 position parameters); head 3,076. SPEC's 87.7M matches the original AST code, which keeps "
        "DeiT's two unused 1000-class heads (2 x 769,000) and a LayerNorm+Linear head: 87,729,876."),
        ASTClassifier, _ast_config, "MIT/ast-finetuned-audioset-10-10-0.4593"),
    _Arch(ModelInfo(
        "audio_clap", "clap", _CLAP_SHAPE, 28_192_924, 28.0, CLAP_ID,
        "CLAP HTSAT audio tower + projection, Linear(512,4) on the audio embedding",
        "Audio tower and projection 28,190,872 (SPEC's 28M) plus the head (2,052)."),
        AudioClapClassifier, _clap_audio_config, CLAP_ID),
    _Arch(ModelInfo(
        "bts", "clap", _CLAP_SHAPE, 153_496_990, 153.0, CLAP_ID,
        "Full CLAP (HTSAT audio + RoBERTa text) with metadata prompts, Linear(1024,4) on [text, audio] embeddings",
        "Full CLAP 153,492,890 (SPEC's 153M: both towers, projections and the two logit scales, unused here) "
        "plus the head (4,100)."),
        BTSClassifier, _clap_config, CLAP_ID),
)}

SIZES = ("full", "tiny")


def list_models() -> list[ModelInfo]:
    return [a.info for a in _ARCHS.values()]


def models_table() -> str:
    """The registry as `lungkd models` prints it."""
    lines = [f"{'name':<16}{'input':<7}{'shape':<14}{'params':>13}{'SPEC':>8}  pretrained weights"]
    for m in list_models():
        shape = "x".join(map(str, m.input_shape))
        lines.append(f"{m.name:<16}{m.input_kind:<7}{shape:<14}{m.params:>13,}{m.spec_params_m:>7.1f}M  {m.pretrained}")
        lines.append(f"{'':<4}{m.description}")
        lines.append(f"{'':<4}params vs SPEC: {m.params_note}")
    return "\n".join(lines)


def _arch(name: str) -> _Arch:
    if name not in _ARCHS:
        raise ValueError(f"unknown architecture {name!r}; choose one of {', '.join(_ARCHS)}")
    return _ARCHS[name]


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
    arch = _arch(name)
    if pretrained is None:
        return arch.classifier(name, arch.classifier.backbone_class()(backbone_config(name, size)), num_classes)
    return _load(arch, pretrained, num_classes, offline)


def backbone_config(name: str, size: str = "full"):
    """The backbone configuration of `name` at `size`: a transformers config, or CNN6Config."""
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}, not {size!r}")
    return _arch(name).config(size)


def _unavailable(arch: _Arch, source: str, reason: str) -> WeightsUnavailableError:
    name = arch.info.name
    if arch.hub_id is None:
        fix = (f"download the PANNs weights from {PANNS_CNN6_URL} and pass the file's path (or a folder written "
               "by LungKD); or choose random initialisation (pretrained = none).")
    else:
        fix = _download_fix(source if not _is_local(source) else arch.hub_id)
    return WeightsUnavailableError(f"pretrained weights for {name} are not available from {source!r}: {reason}",
                                   fix=fix)


def _load(arch: _Arch, source: str | os.PathLike, num_classes: int, offline: bool) -> Classifier:
    local = _is_local(source)
    path = Path(os.fspath(source)).expanduser()
    if local and not path.exists():
        raise _unavailable(arch, os.fspath(source), "no such file or folder")
    if arch.hub_id is None and not local:
        raise _unavailable(arch, os.fspath(source), "CNN6 weights are not on the Hugging Face hub")
    if local and path.is_dir():
        _check_saved_arch(arch.info.name, path)
    try:
        model = arch.classifier.load(arch.info.name, str(path) if local else os.fspath(source), num_classes, offline)
    except OSError as exc:  # what transformers/huggingface_hub raise offline, or for an incomplete folder
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise _unavailable(arch, os.fspath(source), reason) from exc
    if local and (path / HEAD_FILE).is_file():
        _load_head(model, path / HEAD_FILE)
    return model


def _check_saved_arch(name: str, folder: Path) -> None:
    info_path = folder / INFO_FILE
    if info_path.is_file():
        saved = json.loads(info_path.read_text()).get("arch")
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


def save_model(model: Classifier, folder: str | os.PathLike) -> Path:
    """Write the model so `create_model(model.arch_name, pretrained=folder)` gives it back (same logits).

    The backbone goes through its `save_pretrained` (the format hub weights come in), the head to
    head.safetensors, the architecture to lungkd_model.json. The folder is replaced atomically.
    """
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        from safetensors.torch import save_file

        model.save_parts(tmp)
        save_file({k: v.detach().contiguous() for k, v in model.head.state_dict().items()}, str(tmp / HEAD_FILE))
        (tmp / INFO_FILE).write_text(json.dumps({"arch": model.arch_name, "num_classes": model.head.out_features}))
        _replace_folder(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder


def _replace_folder(new: Path, target: Path) -> None:
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)  # left by an earlier crash
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
