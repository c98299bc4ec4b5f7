"""Reference cycle preparation (docs/method.md section 3): whole-recording fade, slicing, fixed 8 s clips.

Matches the BTS / patch-mix reference code (`get_individual_cycles_torchaudio`, `cut_pad_sample_torchaudio`):
- the fades are torchaudio's `Fade(fade_shape="linear")`: fade-in `linspace(0, 1, n)` (sample 0 is 0,
  sample n-1 keeps its full value), fade-out its mirror (the last sample is 0), n = int(sr / 16);
- a cycle is `[int(start*sr), int(end*sr))`, both ends clipped to the recording;
- a cycle longer than the clip keeps its first `clip_len` samples, unfaded;
- a cycle no longer than the clip (equal length included, as in the reference) is tiled, cut and
  faded out; with `pad="zero"` it is centred in silence instead, without a fade (as in the reference).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from lungkd.core.data.audio import load_audio, resample, resample_span, resampled_length
from lungkd.core.errors import AudioError, Problem
from lungkd.core.data.records import Cycle, Recording
from lungkd.core.features.inputs import PrepSettings

def _fade_in_curve(n: int) -> np.ndarray:
    # torchaudio.transforms.Fade's linear shape, bit for bit: torch.linspace differs from
    # np.linspace in the last bit of some values.
    import torch

    return torch.linspace(0, 1, n).numpy()


def fade_in(x: np.ndarray, n: int) -> np.ndarray:
    """Linear fade-in over the first n samples (in place; fewer when x is shorter)."""
    m = min(n, len(x))
    x[:m] *= _fade_in_curve(n)[:m]
    return x


def fade_out(x: np.ndarray, n: int) -> np.ndarray:
    """Linear fade-out over the last n samples (in place; fewer when x is shorter)."""
    m = min(n, len(x))
    if m:
        x[-m:] *= (1 - _fade_in_curve(n))[n - m:]
    return x


def cycle_span(cycle: Cycle, sr: int, n_samples: int) -> tuple[int, int]:
    """Sample range [a, b) of a cycle, clipped to the recording (empty when it starts past the end)."""
    a = min(max(int(cycle.start * sr), 0), n_samples)
    b = min(int(cycle.end * sr), n_samples)
    return a, max(a, b)


def fix_length(chunk: np.ndarray, settings: PrepSettings) -> np.ndarray:
    """Cut or pad one non-empty cycle to exactly clip_len samples, as the reference does."""
    target = settings.clip_len
    if len(chunk) > target:
        return chunk[:target].copy()
    if settings.pad == "zero":
        out = np.zeros(target, dtype=np.float32)
        offset = (target - len(chunk)) // 2
        out[offset:offset + len(chunk)] = chunk
        return out
    out = np.tile(chunk, -(-target // len(chunk)))[:target]
    return fade_out(out, settings.fade_len) if settings.fade else out


def _empty_cycle(cycle: Cycle, start: int, n_samples: int, sr: int, source: str | None) -> Problem:
    where = (f"lies entirely after the end of the audio ({n_samples / sr:.3f} s)" if start >= n_samples
             else "is shorter than one sample")
    return Problem(source or cycle.recording, f"the cycle {cycle.start}-{cycle.end} s {where}; its clip is silence.",
                   "check that the annotation belongs to this recording, or remove the line.", cycle.line or None)


def fade_recording_ends(piece: np.ndarray, offset: int, total: int, n: int) -> np.ndarray:
    """The whole-recording fade-in and fade-out (`fade_in`, then `fade_out`, of a `total`-sample recording)
    applied, in place, to the piece of it that starts at sample `offset`: the same factors, so a clip cut
    from a piece is the clip cut from the faded recording."""
    curve = _fade_in_curve(n)
    head = min(n, total, offset + len(piece))
    if offset < head:
        piece[:head - offset] *= curve[offset:head]
    tail = total - min(n, total)  # where the fade-out starts
    first = max(offset, tail)
    if first < offset + len(piece):
        piece[first - offset:] *= (1 - curve)[n - total + first:n - total + offset + len(piece)]
    return piece


def cut_clips(read: Callable[[int, int], np.ndarray], total: int, cycles: Sequence[Cycle], settings: PrepSettings,
              source: str | None = None) -> tuple[np.ndarray, list[Problem]]:
    """Clips (len(cycles), clip_len) float32 of a `total`-sample recording at `settings.sample_rate`, of which
    `read(a, b)` gives samples [a, b). Only what a clip uses is read: a cycle longer than the clip, one
    sample past it (enough to know it is longer)."""
    clips = np.zeros((len(cycles), settings.clip_len), dtype=np.float32)
    problems: list[Problem] = []
    for i, cycle in enumerate(cycles):
        a, b = cycle_span(cycle, settings.sample_rate, total)
        if a == b:
            problems.append(_empty_cycle(cycle, a, total, settings.sample_rate, source))
            continue
        piece = np.array(read(a, min(b, a + settings.clip_len + 1)), dtype=np.float32)  # a copy: faded in place
        if settings.fade:
            fade_recording_ends(piece, a, total, settings.fade_len)
        clips[i] = fix_length(piece, settings)
    return clips, problems


def prepare_cycles(samples: np.ndarray, sr: int, cycles: Sequence[Cycle], settings: PrepSettings,
                   source: str | None = None) -> tuple[np.ndarray, list[Problem]]:
    """Clips (len(cycles), clip_len) float32 of a recording already at `settings.sample_rate`.

    A cycle that holds no sample of the audio still gets a clip (silence) so that clips stay aligned
    with `cycles`, and a Problem naming `source` (the file) and the annotation line.
    """
    if sr != settings.sample_rate:
        raise ValueError(f"the audio is at {sr} Hz but the settings ask for {settings.sample_rate} Hz; resample first.")
    return cut_clips(lambda a, b: samples[a:b], len(samples), cycles, settings, source)


@dataclass
class ClipBatch:
    indices: np.ndarray  # positions of the batch's cycles in the list given
    clips: np.ndarray  # (len(indices), clip_len) float32
    problems: list[Problem]


def clip_batches(samples: np.ndarray, sr: int, cycles: Sequence[Cycle], settings: PrepSettings, batch_size: int,
                 source: str | None = None, *,
                 resampler: Callable[[np.ndarray, int, int], np.ndarray] = resample) -> Iterator[ClipBatch]:
    """`prepare_cycles` of a recording at its own rate, `batch_size` cycles at a time (in order of their
    starts): each batch resamples (with `resampler`, see `resample_span`) only the stretch of audio its clips
    come from, so memory does not grow with the recording's length beyond the samples given."""
    rate = settings.sample_rate
    total = resampled_length(len(samples), sr, rate)
    order = np.argsort([c.start for c in cycles], kind="stable")
    for first in range(0, len(order), batch_size):
        indices = order[first:first + batch_size]
        batch = [cycles[i] for i in indices]
        spans = [cycle_span(c, rate, total) for c in batch]
        lo, hi = min(a for a, _ in spans), max(min(b, a + settings.clip_len + 1) for a, b in spans)
        stretch = resample_span(samples, sr, rate, lo, hi, resampler=resampler)
        clips, problems = cut_clips(lambda a, b: stretch[a - lo:b - lo], total, batch, settings, source)
        yield ClipBatch(indices, clips, problems)


def require_audio(recording: Recording) -> Path:
    if recording.audio_path is None:
        raise AudioError("no audio file for this recording.", path=recording.annotation_path or recording.name,
                         fix="put the recording's audio file beside its annotation.")
    return Path(recording.audio_path)


def prepare_recording(recording: Recording, settings: PrepSettings) -> tuple[np.ndarray, list[Problem]]:
    """Decode, resample and cut one recording's cycles. Raises AudioError when it cannot be decoded."""
    audio_path = require_audio(recording)
    decoded = load_audio(audio_path, settings.sample_rate)
    clips, problems = prepare_cycles(decoded.samples, decoded.sample_rate, recording.cycles, settings, str(audio_path))
    return clips, decoded.warnings + problems
