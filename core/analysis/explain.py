"""Why this class: which time-frequency regions of a cycle moved the model towards its class.

Integrated gradients (Sundararajan et al., 2017) through captum, PyTorch's maintained interpretability
library (its attributions are tested against their definitions, and it batches the interpolated inputs; it is
imported only when an explanation is asked for, since it brings matplotlib with it): the gradient of the
class's probability integrated along the straight path from a reference spectrogram to the cycle's input, so
that the weights of all cells add up to the probability the input has beyond the reference's (completeness).

The reference is a plain spectrogram the model gives little of the class: of two candidates, the clip's mean
level everywhere and each mel band's median held for the whole clip, the one with the lower probability of
the class. No single plain spectrogram is neutral: a tiny CNN6 trained on generated data calls the first
crackle (0.8), the second, a steady tone in every band, wheeze (0.4-0.8); explained against a reference
already of its class, a wheeze would have nothing left to show.

Occlusion was tried first (captum's FeatureAblation: regions of the cycle's time by mel bands replaced by the
reference, a region weighing the drop in probability) and dropped: a wheeze of 0.35 s spans several regions
and two bands (its harmonic), so hiding one region leaves the rest to speak for it, and the map showed the
breath instead; it also cost 5-20 times as much (about 300 forward passes against 32 forward and backward).

Weights are on the model's input grid (frames x mel bins), in units of the class's probability. `seconds`
maps each frame to the recording: a cycle shorter than the model's clip is tiled to fill it
(core.features.prepare), so several frames map to one moment; NaN for the padding CLAP adds after the clip.
`hz` maps each mel bin to its centre frequency; `on_cycle` folds the tiled copies onto the cycle's own time
for display, and `share_in` says how much of the weight towards the class a region of the recording holds.
`explain_recording_cycle` explains a cycle of a decoded recording through the model card's input contract, and
`on_linear_grid` puts the weights on a display's linear-hertz grid (the Studio's spectrogram).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from lungkd.core.analysis.limits import UsableModel
from lungkd.core.analysis.predict import recording_clips
from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.data.audio import DecodedAudio
from lungkd.core.data.prompts import file_prompt
from lungkd.core.data.records import Cycle
from lungkd.core.features.inputs import (FBANK_FRAME_LENGTH_MS, FBANK_FRAME_SHIFT_MS, ClapFeatureSettings, InputSpec,
                                         PrepSettings)
from lungkd.core.models.registry import model_info

IG_STEPS = 32  # points on the path; the weights' sum is then within a few % of the probability explained
BATCH = 8  # inputs per pass: a full-size CNN6 keeps about 100 MB of activations per input for the backward pass
FOLD_S = 0.01  # the time step of the folded map: one fbank frame
SHARE_CELL_S, SHARE_BANDS = 0.1, 16  # the cells `share_in` sums over
FBANK_LOW_HZ = 20.0  # torchaudio's Kaldi fbank default low edge


@dataclass(frozen=True)
class CycleExplanation:
    weights: np.ndarray  # (frames, mel bins): the model's input grid, in units of the class's probability
    seconds: np.ndarray  # (frames,): where in the recording each frame's middle lies; NaN for padding
    hz: np.ndarray  # (mel bins,): each bin's centre frequency
    target: int  # the class explained
    probability: float  # the model's probability of it for this input (its softmax, uncalibrated)
    start: float  # the cycle, s
    end: float

    def on_cycle(self) -> tuple[np.ndarray, np.ndarray]:
        """(times, weights): the weights summed over the tiled copies of the cycle, every FOLD_S from its start;
        weights is (times, mel bins)."""
        known = ~np.isnan(self.seconds)
        steps = max(1, int(np.ceil((self.end - self.start) / FOLD_S)))
        index = np.clip(((self.seconds[known] - self.start) / FOLD_S).astype(int), 0, steps - 1)
        folded = np.zeros((steps, self.weights.shape[1]))
        np.add.at(folded, index, self.weights[known])
        return self.start + (np.arange(steps) + 0.5) * FOLD_S, folded

    def share_in(self, start: float, end: float, low_hz: float = 0.0, high_hz: float = np.inf) -> float:
        """The share of the weight towards the class (the positive weight) that lies in a time-frequency region
        of the recording. The weights are first summed over cells of SHARE_CELL_S by a SHARE_BANDS-th of the mel
        bins, as a smoothed map shows them: small weights of opposite sign side by side cancel."""
        times, folded = self.on_cycle()
        rows = ((times - self.start) // SHARE_CELL_S).astype(int)
        bands = np.arange(folded.shape[1]) * SHARE_BANDS // folded.shape[1]
        cells = np.zeros((rows.max() + 1, SHARE_BANDS))
        np.add.at(cells, (rows[:, None], bands[None, :]), folded)
        cell_times = self.start + (np.arange(len(cells)) + 0.5) * SHARE_CELL_S
        cell_hz = np.array([self.hz[bands == band].mean() for band in range(SHARE_BANDS)])
        positive = np.maximum(cells, 0.0)
        inside = positive[(cell_times >= start) & (cell_times <= end)][:, (cell_hz >= low_hz) & (cell_hz <= high_hz)]
        total = positive.sum()
        return float(inside.sum() / total) if total > 0 else 0.0


# ---------------------------------------------------------------- the input grid in seconds and hertz


def _frame_times(inputs: InputSpec, frames: int) -> np.ndarray:
    """The middle of each frame, in seconds from the start of the clip the features were computed from."""
    if isinstance(inputs.features, ClapFeatureSettings):  # a centred STFT: frame t is centred on t hops
        return np.arange(frames) * inputs.features.hop_length / inputs.features.sampling_rate
    return (np.arange(frames) * FBANK_FRAME_SHIFT_MS + FBANK_FRAME_LENGTH_MS / 2) / 1000


def mel_centres(inputs: InputSpec, bins: int) -> np.ndarray:
    """Each mel bin's centre frequency, as the feature's own filter bank places it."""
    features = inputs.features
    if isinstance(features, ClapFeatureSettings):  # rand_trunc reads the Slaney-scale bank
        from transformers.audio_utils import hertz_to_mel, mel_to_hertz

        edges = np.linspace(hertz_to_mel(features.frequency_min, "slaney"),
                            hertz_to_mel(features.frequency_max, "slaney"), bins + 2)
        return np.asarray(mel_to_hertz(edges[1:-1], "slaney"), dtype=float)
    import torchaudio.compliance.kaldi as kaldi

    low, high = kaldi.mel_scale_scalar(FBANK_LOW_HZ), kaldi.mel_scale_scalar(inputs.prep.sample_rate / 2)
    centres = low + (np.arange(bins) + 1) * (high - low) / (bins + 1)
    return kaldi.inverse_mel_scale(torch.tensor(centres)).numpy()


def clip_to_recording(prep: PrepSettings, clip_times: np.ndarray, start: float, end: float) -> np.ndarray:
    """Where in the recording each moment of the model's clip comes from (NaN where the clip holds no audio),
    as core.features.prepare cuts, tiles or pads the cycle [start, end)."""
    rate = prep.sample_rate
    first, length = int(start * rate), max(1, int(end * rate) - int(start * rate))
    sample = np.round(clip_times * rate).astype(int)
    inside_clip = sample < prep.clip_len
    if length >= prep.clip_len:
        offset = sample
    elif prep.pad == "repeat":
        offset = sample % length
    else:
        offset = sample - (prep.clip_len - length) // 2
        inside_clip &= (offset >= 0) & (offset < length)
    return np.where(inside_clip, (first + offset) / rate, np.nan)


# ---------------------------------------------------------------- the attributions


def _references(x: torch.Tensor, audio_frames: np.ndarray) -> list[torch.Tensor]:
    """Plain spectrograms to explain the input against: the clip's mean level everywhere (0 once normalised
    per clip), and each mel bin's median over the frames that hold audio, held for the whole clip."""
    median = x[..., torch.from_numpy(audio_frames), :].median(dim=-2, keepdim=True).values
    return [torch.full_like(x, float(x[..., torch.from_numpy(audio_frames), :].mean())),
            median.expand_as(x).contiguous()]


def explain_cycle(model: torch.nn.Module, features: torch.Tensor, start: float, end: float, *,
                  target: int | None = None, prompt: str | None = None,
                  inputs: InputSpec | None = None) -> CycleExplanation:
    """Why `model` gives (or would give) class `target` (default: the class it predicts) to one cycle.

    `features` is the cycle's model input as core.features computes it from the clip of the cycle
    [start, end) (s in the recording): (frames, mel) for fbank models, (1, frames, mel) for CLAP models; a
    leading batch axis of one is accepted. `prompt` is the cycle's BTS prompt, for models that read one.
    `inputs` defaults to the registry's for the model's architecture."""
    from captum.attr import IntegratedGradients

    inputs = inputs or model_info(model.arch_name).inputs
    x = features.detach().float()
    x = (x[0] if x.dim() == len(inputs.shape) + 1 else x)[None]
    frames, bins = x.shape[-2], x.shape[-1]
    seconds = clip_to_recording(inputs.prep, _frame_times(inputs, frames), start, end)

    def probabilities(batch: torch.Tensor) -> torch.Tensor:
        logits = model(batch, [prompt] * len(batch)) if prompt is not None else model(batch)
        return torch.softmax(logits, dim=-1)

    model.eval()
    references = _references(x, np.flatnonzero(~np.isnan(seconds)))
    with torch.no_grad():
        p = probabilities(torch.cat([x, *references]))
    target = int(p[0].argmax()) if target is None else target
    reference = references[int(p[1:, target].argmin())]
    weights = IntegratedGradients(probabilities).attribute(x, baselines=reference, target=target, n_steps=IG_STEPS,
                                                           internal_batch_size=BATCH)
    weights = weights.detach()[0].reshape(frames, bins).numpy().astype(np.float64)
    weights[np.isnan(seconds)] = 0.0  # the padding holds no sound of the cycle
    return CycleExplanation(weights, seconds, mel_centres(inputs, bins), target, float(p[0, target]),
                            float(start), float(end))


# ---------------------------------------------------------------- a cycle of a recording, and its display


def explain_recording_cycle(path: str | Path, decoded: DecodedAudio, usable: UsableModel, start: float, end: float,
                            *, target: int | None = None, cancel: CancelToken | None = None) -> CycleExplanation:
    """`explain_cycle` for the cycle [start, end) s of a decoded recording, its input built as `lungkd predict`
    builds it: from the model card's contract (preparation, features, the prompt from the file's name). A
    cancel stops it between batches of the path's points (Cancelled)."""
    inputs, stem = usable.inputs.spec(), Path(path).stem
    batch = next(recording_clips(decoded, [Cycle(stem, 0, start, end, 0, 0)], inputs.prep, 1, str(path)))
    features = torch.from_numpy(inputs.features.compute(batch.clips))[0]
    prompt = file_prompt(stem, missing=usable.inputs.prompts.missing) if usable.inputs.prompts else None

    def stop_when_cancelled(module, args) -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled("explanation cancelled.")

    hook = usable.model.register_forward_pre_hook(stop_when_cancelled)
    try:
        return explain_cycle(usable.model, features, start, end, target=target, prompt=prompt, inputs=inputs)
    finally:
        hook.remove()


@dataclass(frozen=True)
class ExplanationImage:
    """The weights towards the class on a display's grid: linear hertz, FOLD_S steps from the cycle's start."""

    weights: np.ndarray  # (times, rows), the positive weight only, smoothed; 0 elsewhere
    start: float  # s, the first column's left edge
    seconds_per_column: float
    hz_per_row: float


def on_linear_grid(explanation: CycleExplanation, top_hz: float, rows: int = 256,
                   smooth_s: float = 0.03) -> ExplanationImage:
    """The folded weights (`on_cycle`) from the model's mel bins onto `rows` linear-hertz rows up to `top_hz`,
    each row taking the mel bin whose band holds it, smoothed over about `smooth_s` and a mel bin (the map as
    integrated gradients leave it speckles from cell to cell), and the weight against the class left out."""
    _, folded = explanation.on_cycle()
    smoothed = ndimage.gaussian_filter(folded, (max(smooth_s / FOLD_S, 0.5), 1.0))
    hz_per_row = top_hz / rows
    centres = (np.arange(rows) + 0.5) * hz_per_row
    edges = np.concatenate([[0.0], (explanation.hz[1:] + explanation.hz[:-1]) / 2])
    bins = np.clip(np.searchsorted(edges, centres) - 1, 0, len(explanation.hz) - 1)
    return ExplanationImage(np.maximum(smoothed[:, bins], 0.0), explanation.start, FOLD_S, hz_per_row)
