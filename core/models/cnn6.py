"""PANNs CNN6 (Kong et al., 2020), the one backbone we define ourselves: its conv trunk, saved and loaded
the way transformers models are (config.json + model.safetensors), and PANNs' own checkpoint file."""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class CNN6Config:
    channels: tuple[int, ...] = (64, 128, 256, 512)
    # PANNs' input batch norm over mel bins (bn0) is left out, as in the ICBHI reference CNN6.
    input_pool: int = 1  # average the input over input_pool x input_pool first (1: PANNs; the tiny size: 2)
    model_type: ClassVar[str] = "lungkd_cnn6"

    def to_dict(self) -> dict:
        """As config.json holds it (the form of a transformers configuration's `to_dict`)."""
        return {"model_type": self.model_type, "channels": list(self.channels), "input_pool": self.input_pool}

    @classmethod
    def from_dict(cls, raw: dict) -> "CNN6Config":
        """From config.json: four positive channel counts and a positive pooling factor, nothing else."""
        channels, pool = raw.get("channels"), raw.get("input_pool", 1)
        if set(raw) - {"model_type", "channels", "input_pool"} or not isinstance(channels, list) or \
                len(channels) != 4 or not all(_positive(c) for c in channels) or not _positive(pool):
            raise ValueError("a CNN6 configuration is four positive channel counts and a positive input_pool")
        return cls(channels=tuple(channels), input_pool=pool)


def _positive(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= 65536


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

    config_class = CNN6Config

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
        if self.config.input_pool > 1:
            x = F.avg_pool2d(x, kernel_size=self.config.input_pool)
        for i in range(len(self.config.channels)):
            x = getattr(self, f"conv_block{i + 1}")(x)
        x = x.mean(dim=3)
        return x.max(dim=2).values + x.mean(dim=2)

    def save_pretrained(self, folder: Path) -> None:
        from safetensors.torch import save_file

        (Path(folder) / "config.json").write_text(json.dumps(self.config.to_dict()))
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
        try:
            config = CNN6Config.from_dict(json.loads((path / "config.json").read_text()))
        except (ValueError, AttributeError) as exc:  # AttributeError: JSON that is not an object
            raise OSError(f"{path / 'config.json'} is not a CNN6 configuration ({exc})") from None
        model = cls(config)
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
