"""Model inputs from prepared clips (docs/method.md section 4): Kaldi fbank, CLAP log-mel, SpecAugment.

Both feature settings classes (core.features.inputs) carry `sample_rate` (the clip rate they need), `key()` (for
cache keys) and `compute(clips)`, which calls the functions here, so callers never branch on the feature kind.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from functools import lru_cache
from typing import TYPE_CHECKING, Iterator

import numpy as np

from lungkd.core.features.inputs import (FBANK_FRAME_LENGTH_MS, FBANK_FRAME_SHIFT_MS, FBANK_RATE, NORMALIZATIONS,
                                         ClapFeatureSettings, fbank_frames)
from lungkd.core.pool import interrupts_held

if TYPE_CHECKING:  # torch is imported where features are computed: the settings alone are read without it
    import torch

AUDIOSET_MEAN, AUDIOSET_STD = -4.2677393, 4.5689974  # AST's AudioSet statistics
_MIN_STD = 1e-5  # a silent clip has a constant fbank; the reference would divide by zero there


def fbank(clips16k: np.ndarray, num_mel_bins: int = 128) -> np.ndarray:
    """Log mel filterbank (N, frames, num_mel_bins) float32 of 16 kHz clips (N, samples).

    The waveform goes in as decoded (floats in [-1, 1]) without removing its mean, as in the
    ICBHI reference code; Kaldi removes each frame's DC offset anyway.

    Kaldi's fbank is many small operations, which torch's intra-op threads slow down rather than speed up
    (several times over on a busy machine). The clips are spread instead over as many threads as torch
    would use, each computing its clips with one intra-op thread, as the preparation workers do; where
    torch runs one thread (in those workers) the clips are computed in turn.
    """
    import torch
    import torchaudio.compliance.kaldi as kaldi

    clips = torch.from_numpy(np.ascontiguousarray(clips16k, dtype=np.float32))
    out = np.empty((len(clips), fbank_frames(clips.shape[-1]), num_mel_bins), dtype=np.float32)

    def compute(i: int) -> None:
        out[i] = kaldi.fbank(clips[i][None], sample_frequency=FBANK_RATE, num_mel_bins=num_mel_bins,
                             frame_length=FBANK_FRAME_LENGTH_MS, frame_shift=FBANK_FRAME_SHIFT_MS,
                             window_type="hanning", dither=0.0, use_energy=False, htk_compat=True).numpy()

    threads = torch.get_num_threads()
    if threads <= 1 or len(clips) <= 1:
        for i in range(len(clips)):
            compute(i)
    else:
        # Ctrl-C waits for the batch (a few tens of ms): cut while the pool was starting a thread, that thread
        # was left out of the pool's own list, and the interpreter waited for it for ever on its way out
        with interrupts_held():
            list(_fbank_threads(threads).map(compute, range(len(clips))))
    return out


@lru_cache(maxsize=2)
def _fbank_threads(count: int) -> ThreadPoolExecutor:
    """Worker threads with one intra-op thread each (torch.set_num_threads in a thread sets that thread's OpenMP
    team only), kept for the process: new threads for every batch would each leave memory behind in an
    allocator arena of their own."""
    import torch

    return ThreadPoolExecutor(count, thread_name_prefix="fbank", initializer=torch.set_num_threads, initargs=(1,))


def normalize_fbank(x: np.ndarray, mode: str = "per_sample") -> np.ndarray:
    """(x - mean) / (2 * std) over each sample's last two axes (`per_sample`, unbiased std as
    torch's) or with the AudioSet constants (`audioset`)."""
    if mode == "audioset":
        return ((x - AUDIOSET_MEAN) / (2 * AUDIOSET_STD)).astype(np.float32)
    if mode != "per_sample":
        raise ValueError(f"mode must be one of {NORMALIZATIONS}, not {mode!r}.")
    # numpy's own steps for std(ddof=1), the centred values kept for the result: the same numbers as
    # (x - mean) / (2 * std) without centring twice (0.86-0.88 of the time, python -m bench.features, and two
    # whole-batch temporaries fewer)
    centred = np.array(x, dtype=np.float64)
    axes, count = (-2, -1), centred.shape[-2] * centred.shape[-1]
    centred -= centred.mean(axis=axes, keepdims=True)
    std = np.sqrt(np.multiply(centred, centred).sum(axis=axes, keepdims=True) / (count - 1))
    centred /= 2 * np.maximum(std, _MIN_STD)
    return centred.astype(np.float32)


@lru_cache(maxsize=4)
def _clap_extractor(settings: ClapFeatureSettings):
    from transformers import ClapFeatureExtractor

    return ClapFeatureExtractor(**settings.extractor_kwargs())


@contextmanager
def _numpy_seed(seed: int) -> Iterator[None]:
    """The extractor draws rand_trunc crops from numpy's global RNG: seed it, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def clap_features(clips48k: np.ndarray, settings: ClapFeatureSettings = ClapFeatureSettings()) -> np.ndarray:
    """CLAP log-mel input features (N, 1, 1001, 64) float32 of 48 kHz clips (N, samples).

    With `repeatpad`, a clip shorter than 10 s is tiled int(10 s / length) times and zero-padded to
    10 s: an 8 s clip is tiled once, i.e. followed by 2 s of zeros.
    """
    if len(clips48k) == 0:
        return np.zeros((0, *settings.output_shape(clips48k.shape[-1])), dtype=np.float32)
    extractor = _clap_extractor(settings)
    with _numpy_seed(settings.seed):
        out = extractor(list(np.asarray(clips48k, dtype=np.float32)), sampling_rate=settings.sampling_rate,
                        return_tensors="np")
    return np.asarray(out["input_features"], dtype=np.float32)


def specaugment(batch: torch.Tensor, generator: torch.Generator | None = None, *, freq_masks: int = 2,
                freq_width: int = 48, time_masks: int = 2, time_width: int = 160) -> torch.Tensor:
    """SpecAugment of a batch (B, ..., time, freq): per sample, `freq_masks` bands of width in
    [0, freq_width) and `time_masks` spans of width in [0, time_width), set to the sample's mean.

    Returns a new tensor. Widths and positions are drawn as in the patch-mix reference
    (width ~ U{0..W-1}, start ~ U{0..size-width}).
    """
    import torch

    b, t, f = batch.shape[0], batch.shape[-2], batch.shape[-1]
    mask = _band_mask(b, f, freq_masks, freq_width, generator)[:, None, :] \
        | _band_mask(b, t, time_masks, time_width, generator)[:, :, None]  # (B, T, F)
    mask = mask.view(b, *([1] * (batch.dim() - 3)), t, f).to(batch.device)
    mean = batch.mean(dim=tuple(range(1, batch.dim())), keepdim=True)
    return torch.where(mask, mean, batch)


def _band_mask(batch: int, size: int, count: int, max_width: int, generator: torch.Generator | None) -> torch.Tensor:
    """(batch, size) bool: the union of `count` random bands per row."""
    import torch

    positions = torch.arange(size)
    mask = torch.zeros(batch, size, dtype=torch.bool)
    for _ in range(count):
        width = torch.randint(0, min(max_width, size + 1), (batch, 1), generator=generator)
        start = (torch.rand(batch, 1, generator=generator) * (size - width + 1)).long()
        mask |= (positions >= start) & (positions < start + width)
    return mask
