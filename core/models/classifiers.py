"""The classifiers of the registry: a backbone (a transformers model, or our CNN6) and a linear head.

Every classifier is called the same way, `model(x, prompts=None)`: fbank models take (B, 798, 128) Kaldi
fbank (frames x mel bins), CLAP models (B, 1, 1001, 64) `input_features`, and BTS also reads the prompt of
each cycle. Each class knows how to build its backbone at a size, load pretrained weights through the
library's own `from_pretrained`, and adapt them to our inputs.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from lungkd.core.labels import NUM_CLASSES
from lungkd.core.models.cnn6 import CNN6, CNN6Config

FBANK_FRAMES, FBANK_BINS = 798, 128
CLAP_MELS = 64
PROMPT_TOKENS = 64  # BTS tokenises every prompt to 64 tokens
PROMPT_VOCAB = 400  # size of the offline prompt tokenizer (random initialisation only)


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

    input_shape: tuple[int | None, ...] = (None, FBANK_BINS)  # what the module accepts per cycle; None = any length

    def __init__(self, arch_name: str, backbone: nn.Module, num_classes: int = NUM_CLASSES):
        super().__init__()
        self.arch_name = arch_name
        self.backbone = backbone
        self.head = nn.Linear(self.feature_dim(backbone), num_classes)

    @staticmethod
    def backbone_class() -> type:
        raise NotImplementedError

    @staticmethod
    def backbone_config(size: str):
        """The backbone's configuration at "full" size (the paper's) or "tiny" (tests and CPU demos)."""
        raise NotImplementedError

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        raise NotImplementedError

    def features(self, x: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        raise NotImplementedError

    def last_block(self) -> tuple[nn.Module, ...]:
        """The backbone's last block and what follows it before the head: what adapting a trained model's last
        layers (core.training.adapt) trains beside the head."""
        raise NotImplementedError

    @classmethod
    def adapt(cls, backbone: nn.Module) -> nn.Module:
        """Fit pretrained weights to our input (one-channel stem, 798-frame positions); no-op by default."""
        return backbone

    @classmethod
    def load(cls, arch_name: str, source: str, num_classes: int, offline: bool, exact: bool = False) -> "Classifier":
        """`exact`: a folder LungKD saved, whose every weight must be loaded (no weight missing, left over or
        initialised at random, which a library otherwise only warns about)."""
        return cls(arch_name, cls.adapt(load_backbone(cls.backbone_class(), source, offline, exact).float()),
                   num_classes)

    def save_parts(self, folder: Path) -> None:
        self.backbone.save_pretrained(folder)

    def forward(self, x: torch.Tensor, prompts: list[str] | None = None) -> torch.Tensor:
        _check_shape(x, self.input_shape, self.arch_name)
        return self.head(self.features(x, prompts))


def load_backbone(backbone_class: type, source: str, offline: bool, exact: bool) -> nn.Module:
    if not exact or backbone_class is CNN6:
        return backbone_class.from_pretrained(source, local_files_only=offline)  # CNN6's loading is strict already
    backbone, info = backbone_class.from_pretrained(source, local_files_only=offline, output_loading_info=True)
    left = {kind: sorted(info.get(kind) or []) for kind in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    if any(left.values()):
        raise ValueError("the weights do not fit the configuration: " + "; ".join(
            f"{kind.replace('_', ' ')} {', '.join(map(str, keys[:3]))}" for kind, keys in left.items() if keys))
    return backbone


class CNN6Classifier(Classifier):
    @staticmethod
    def backbone_class() -> type:
        return CNN6

    @staticmethod
    def backbone_config(size: str) -> CNN6Config:
        return CNN6Config() if size == "full" else CNN6Config(channels=(8, 16, 32, 64), input_pool=2)

    @staticmethod
    def feature_dim(backbone: CNN6) -> int:
        return backbone.num_features

    def features(self, x: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        return self.backbone(x.unsqueeze(1))

    def last_block(self) -> tuple[nn.Module, ...]:
        return (getattr(self.backbone, f"conv_block{len(self.backbone.config.channels)}"),)


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

    def features(self, x: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        return self.backbone(pixel_values=x.unsqueeze(1)).pooler_output.flatten(1)


class ResNetClassifier(ImageCNNClassifier):
    @staticmethod
    def backbone_class() -> type:
        return _transformers("ResNetModel")

    @staticmethod
    def backbone_config(size: str):
        widths, depths, stem = (([64, 128, 256, 512], [2, 2, 2, 2], 64) if size == "full"
                                else ([8, 16, 32, 64], [1] * 4, 8))
        return _transformers("ResNetConfig")(num_channels=1, embedding_size=stem, hidden_sizes=widths,
                                             depths=depths, layer_type="basic", downsample_in_first_stage=False)

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        return backbone.config.hidden_sizes[-1]

    @staticmethod
    def stem(backbone: nn.Module) -> nn.Conv2d:
        return backbone.embedder.embedder.convolution

    def last_block(self) -> tuple[nn.Module, ...]:
        return (self.backbone.encoder.stages[-1],)

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
    def backbone_config(size: str):
        # google/efficientnet-b0's values; the transformers defaults are B7's.
        scale = dict(width_coefficient=1.0, depth_coefficient=1.0, hidden_dim=1280) if size == "full" else \
            dict(width_coefficient=0.25, depth_coefficient=0.25, hidden_dim=320,  # hidden_dim = round_filters(1280)
                 expand_ratios=(1, 2, 2, 2, 2, 2, 2))  # B0's 6x expansion costs most of the CPU time at 798x128
        return _transformers("EfficientNetConfig")(num_channels=1, image_size=224, dropout_rate=0.2, **scale)

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        return backbone.config.hidden_dim

    @staticmethod
    def stem(backbone: nn.Module) -> nn.Conv2d:
        return backbone.embeddings.convolution

    def last_block(self) -> tuple[nn.Module, ...]:
        encoder = self.backbone.encoder
        return (encoder.blocks[-1], encoder.top_conv, encoder.top_bn)


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
    def backbone_config(size: str):
        # MIT/ast-finetuned-audioset-10-10-0.4593: ViT-base, 16x16 patches, stride 10, 128 mel bins.
        dims = {} if size == "full" else dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                               intermediate_size=64)
        return _transformers("ASTConfig")(max_length=FBANK_FRAMES, num_mel_bins=FBANK_BINS, patch_size=16,
                                          frequency_stride=10, time_stride=10, **dims)

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        return backbone.config.hidden_size

    @classmethod
    def adapt(cls, backbone: nn.Module) -> nn.Module:
        fit_ast_positions(backbone, FBANK_FRAMES)
        return backbone

    def features(self, x: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        return self.backbone(input_values=x).pooler_output  # mean of the cls and distillation tokens

    def last_block(self) -> tuple[nn.Module, ...]:
        return (self.backbone.layers[-1], self.backbone.layernorm)


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

    input_shape = (1, None, CLAP_MELS)

    @staticmethod
    def backbone_class() -> type:
        return _transformers("ClapAudioModelWithProjection")

    @staticmethod
    def backbone_config(size: str):
        if size == "full":  # HTSAT-tiny as in laion/clap-htsat-unfused (the class defaults)
            return _transformers("ClapAudioConfig")(enable_fusion=False)
        # hidden_size must equal patch_embeds_hidden_size * 2 ** (stages - 1)
        return _transformers("ClapAudioConfig")(enable_fusion=False, patch_embeds_hidden_size=8, depths=[1, 1],
                                                num_attention_heads=[1, 2], hidden_size=16, projection_dim=32)

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        return backbone.config.projection_dim

    def features(self, x: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        return self.backbone(input_features=x).audio_embeds

    def last_block(self) -> tuple[nn.Module, ...]:
        return clap_audio_top(self.backbone)


def clap_audio_top(backbone: nn.Module) -> tuple[nn.Module, ...]:
    """CLAP's last HTSAT stage, its final norm and the audio projection."""
    encoder = backbone.audio_model.audio_encoder
    return (encoder.layers[-1], encoder.norm, backbone.audio_projection)


class BTSClassifier(Classifier):
    """Full CLAP: head on concat(L2-normalised text embedding, L2-normalised audio embedding).

    `tokenizer` is the checkpoint's own (RoBERTa BPE). A randomly initialised model gets a small BPE
    tokenizer trained on the BTS prompt words instead (the hub's is not available offline); either
    is saved with the model, so a reloaded model tokenises exactly as before.
    """

    input_shape = (1, None, CLAP_MELS)

    def __init__(self, arch_name: str, backbone: nn.Module, num_classes: int = NUM_CLASSES, tokenizer=None):
        super().__init__(arch_name, backbone, num_classes)
        self.tokenizer = tokenizer if tokenizer is not None else prompt_tokenizer()

    @staticmethod
    def backbone_class() -> type:
        return _transformers("ClapModel")

    @staticmethod
    def backbone_config(size: str):
        text = {} if size == "full" else dict(vocab_size=PROMPT_VOCAB, hidden_size=16, num_hidden_layers=1,
                                              num_attention_heads=2, intermediate_size=32,
                                              max_position_embeddings=PROMPT_TOKENS + 2)
        audio = AudioClapClassifier.backbone_config(size).to_dict()
        return _transformers("ClapConfig")(text_config=text, audio_config=audio,
                                           projection_dim=512 if size == "full" else 32)

    @staticmethod
    def feature_dim(backbone: nn.Module) -> int:
        return 2 * backbone.config.projection_dim

    @classmethod
    def load(cls, arch_name: str, source: str, num_classes: int, offline: bool,
             exact: bool = False) -> "BTSClassifier":
        backbone = load_backbone(cls.backbone_class(), source, offline, exact)
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

    def features(self, x: torch.Tensor, prompts: list[str] | None) -> torch.Tensor:
        if prompts is None or len(prompts) != x.shape[0]:
            raise ValueError(f"bts needs one prompt per input: got {x.shape[0]} inputs and "
                             f"{'no' if prompts is None else len(prompts)} prompts")
        audio = self.backbone.audio_model(input_features=x)
        audio = F.normalize(self.backbone.audio_projection(audio.pooler_output), dim=-1)
        return torch.cat([self.encode_prompts(prompts, x.device), audio], dim=-1)

    def last_block(self) -> tuple[nn.Module, ...]:
        return (*clap_audio_top(self.backbone), self.backbone.text_projection)


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
