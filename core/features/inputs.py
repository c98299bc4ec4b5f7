"""What a model consumes, as settings: how its clips are prepared (core.features.prepare), which features are
computed from them (core.features.spectral) and whether it reads prompts. Kept apart from the code that does the
work, with no numpy or torch, so that the registry and the model card — and `lungkd models` through them — read
them without importing the audio, dataset and feature code.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

SAMPLE_RATES = (16000, 48000)  # fbank models / CLAP models
PAD_MODES = ("repeat", "zero")
FADE_DIVISOR = 16  # the reference fades over sr/16 samples (62.5 ms)


@dataclass(frozen=True)
class PrepSettings:
    sample_rate: int = 16000
    clip_seconds: float = 8.0
    pad: str = "repeat"
    fade: bool = True  # the whole-recording fade-in/out and the fade-out after tiling

    def __post_init__(self) -> None:
        object.__setattr__(self, "clip_seconds", float(self.clip_seconds))  # 8 and 8.0 share a cache key
        if self.sample_rate not in SAMPLE_RATES:
            raise ValueError(f"sample_rate must be one of {SAMPLE_RATES}, not {self.sample_rate}.")
        if self.pad not in PAD_MODES:
            raise ValueError(f"pad must be one of {PAD_MODES}, not {self.pad!r}.")
        if not self.clip_seconds > 0:
            raise ValueError(f"clip_seconds must be positive, not {self.clip_seconds}.")

    @property
    def clip_len(self) -> int:
        return int(round(self.clip_seconds * self.sample_rate))

    @property
    def fade_len(self) -> int:
        return self.sample_rate // FADE_DIVISOR

    def key(self) -> str:
        """Stable text naming these settings, for cache keys."""
        return "prep:" + json.dumps(asdict(self), sort_keys=True)


FBANK_RATE = 16000
FBANK_FRAME_LENGTH_MS = 25.0
FBANK_FRAME_SHIFT_MS = 10.0
NORMALIZATIONS = ("per_sample", "audioset")


@dataclass(frozen=True)
class FbankSettings:
    """Kaldi fbank as the ICBHI reference code computes it; AST uses `audioset`, the CNNs `per_sample`."""

    num_mel_bins: int = 128
    normalization: str = "per_sample"

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"normalization must be one of {NORMALIZATIONS}, not {self.normalization!r}.")

    @property
    def sample_rate(self) -> int:
        return FBANK_RATE

    def key(self) -> str:
        return "fbank:" + json.dumps(asdict(self), sort_keys=True)

    def compute(self, clips: np.ndarray) -> np.ndarray:
        from lungkd.core.features.spectral import fbank, normalize_fbank

        return normalize_fbank(fbank(clips, self.num_mel_bins), self.normalization)

    def output_shape(self, clip_samples: int) -> tuple[int, int]:
        return fbank_frames(clip_samples), self.num_mel_bins


@dataclass(frozen=True)
class ClapFeatureSettings:
    """The laion/clap-htsat-unfused preprocessor_config.json values, set explicitly because the
    transformers class defaults differ (frequency_min 0, truncation "fusion")."""

    feature_size: int = 64
    sampling_rate: int = 48000
    hop_length: int = 480
    max_length_s: int = 10
    fft_window_size: int = 1024
    padding: str = "repeatpad"
    truncation: str = "rand_trunc"
    frequency_min: float = 50
    frequency_max: float = 14000
    seed: int = 0  # rand_trunc's crop position, used only for clips longer than max_length_s

    @property
    def sample_rate(self) -> int:
        return self.sampling_rate

    def key(self) -> str:
        return "clap:" + json.dumps(asdict(self), sort_keys=True)

    def compute(self, clips: np.ndarray) -> np.ndarray:
        from lungkd.core.features.spectral import clap_features

        return clap_features(clips, self)

    def output_shape(self, clip_samples: int) -> tuple[int, int, int]:
        """Clips up to max_length_s are padded to it; longer ones are cropped to it (rand_trunc)."""
        return 1, self.max_length_s * self.sampling_rate // self.hop_length + 1, self.feature_size

    def extractor_kwargs(self) -> dict:
        kwargs = asdict(self)
        del kwargs["seed"]
        return {**kwargs, "return_attention_mask": False}


def fbank_frames(n_samples: int) -> int:
    """Frames Kaldi (snip_edges) gives for n samples at 16 kHz: 798 for 8 s."""
    window = int(FBANK_RATE * FBANK_FRAME_LENGTH_MS / 1000)
    shift = int(FBANK_RATE * FBANK_FRAME_SHIFT_MS / 1000)
    return 0 if n_samples < window else 1 + (n_samples - window) // shift



@dataclass(frozen=True)
class InputSpec:
    """What a model consumes: clips prepared at a rate, the features computed from them, and whether it
    also reads each cycle's BTS prompt."""

    prep: PrepSettings
    features: FbankSettings | ClapFeatureSettings
    prompts: bool = False

    @property
    def kind(self) -> str:
        return "clap" if isinstance(self.features, ClapFeatureSettings) else "fbank"

    @property
    def shape(self) -> tuple[int, ...]:
        """One cycle's input, without the batch axis."""
        return self.features.output_shape(self.prep.clip_len)
