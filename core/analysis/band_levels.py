"""A recording's sound level every 20 ms in frequency bands, and its long-term spectrum, measured a block at a
time so that memory stays bounded however long the recording is. The quality check (quality.py) and the
breathing analysis (breathing.py) read them.

The recording is resampled to ANALYSIS_RATE (8 kHz: everything up to 4 kHz, above which lung sounds and
their artefacts carry little that the checks need) or kept at its own rate when that is lower (the
Litt3200's 4 kHz); a band beyond the rate's reach has no level (NaN). The resampling is core.data.audio's
interpolation without torch (`resample_without_torch`: a measurement), piece by piece (`resample_span`), so the
blocks join without seams.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from lungkd.core.analysis.spectra import power_spectrogram, stft
from lungkd.core.data.audio import resample_span, resample_without_torch, resampled_length

ANALYSIS_RATE = 8000  # Hz
FRAME_S, HOP_S = 0.064, 0.02  # 15.6 Hz resolution; a 20 ms hop resolves a 40 ms burst in two frames
SPECTRUM_SEGMENT_S = 8.0  # 0.125 Hz resolution: a mains-hum line stands clear of heart sounds' broad spectrum
BLOCK_FRAMES = 3000  # frames measured at once: 60 s of audio
BLOCK_SEGMENTS = 16  # spectrum segments at once: 68 s of audio
REACH = 0.45  # of the analysis rate: above it the resampler's anti-aliasing filter has cut the sound


@dataclass(frozen=True)
class BandLevels:
    """Mean spectral power per band and frame (linear, full scale 1), and how noise-like each band is: its
    spectral flatness, the geometric over the arithmetic mean of its bins' power in dB (about -2.5 dB for
    noise, far lower for a tone)."""

    bands: tuple[tuple[float, float], ...]  # Hz
    power: np.ndarray  # (bands, frames), NaN for a band beyond the rate's reach
    flatness_db: np.ndarray  # (bands, frames)
    times: np.ndarray  # s, the middle of each frame
    hop: float  # s between frames
    rate: int  # Hz, the rate the levels were measured at

    def level_db(self, band: int) -> np.ndarray:
        return 10 * np.log10(self.power[band] + 1e-20)

    def frames_in(self, start: float, end: float) -> slice:
        """The frames whose middle lies in [start, end)."""
        return slice(int(np.searchsorted(self.times, start)), int(np.searchsorted(self.times, end)))


@dataclass(frozen=True)
class LongTermSpectrum:
    """The mean power spectrum over SPECTRUM_SEGMENT_S segments (Welch's method, Hann window, half overlap)."""

    freqs: np.ndarray  # Hz
    power: np.ndarray  # one value per frequency; zeros when the recording is shorter than one segment
    segments: int  # how many segments were averaged


def analysis_rate(sr: int) -> int:
    return min(sr, ANALYSIS_RATE)


def _block_spans(total: int, frame: int, hop: int, frames_per_block: int):
    """(first frame, frames, first sample, last sample) of each block of frames."""
    frames = 0 if total < frame else 1 + (total - frame) // hop
    for first in range(0, frames, frames_per_block):
        count = min(frames_per_block, frames - first)
        yield first, count, first * hop, (first + count - 1) * hop + frame


def _resampled(samples: np.ndarray, sr: int, rate: int, start: int, stop: int) -> np.ndarray:
    return resample_span(samples, sr, rate, start, stop, resampler=resample_without_torch)


def measure_bands(samples: np.ndarray, sr: int, bands: tuple[tuple[float, float], ...],
                  block_frames: int = BLOCK_FRAMES) -> BandLevels:
    """Band levels every HOP_S over FRAME_S frames of a recording at rate `sr`, `block_frames` at a time."""
    rate = analysis_rate(sr)
    frame, hop = int(round(FRAME_S * rate)), int(round(HOP_S * rate))
    freqs = np.fft.rfftfreq(frame, 1 / rate)
    masks = [(freqs >= lo) & (freqs < min(hi, REACH * rate)) for lo, hi in bands]
    spans = list(_block_spans(resampled_length(len(samples), sr, rate), frame, hop, block_frames))
    power = np.full((len(bands), sum(count for _, count, _, _ in spans)), np.nan)
    flatness = np.full_like(power, np.nan)
    for first, count, a, b in spans:
        _, spectrum = stft(_resampled(samples, sr, rate, a, b), rate, frame, hop)
        magnitude = np.abs(spectrum[:, :count]) ** 2
        for i, mask in enumerate(masks):
            if mask.any():
                power[i, first:first + count] = magnitude[mask].mean(axis=0)
                log_mean = np.log10(magnitude[mask] + 1e-20).mean(axis=0)
                flatness[i, first:first + count] = 10 * (log_mean - np.log10(power[i, first:first + count] + 1e-20))
    times = (frame / 2 + hop * np.arange(power.shape[1])) / rate
    return BandLevels(tuple(bands), power, flatness, times, hop / rate, rate)


def long_term_spectrum(samples: np.ndarray, sr: int, block_segments: int = BLOCK_SEGMENTS) -> LongTermSpectrum:
    """The mean power spectrum of a recording at rate `sr` over SPECTRUM_SEGMENT_S segments, `block_segments` at
    a time."""
    rate = analysis_rate(sr)
    segment = int(round(SPECTRUM_SEGMENT_S * rate))
    total, segments = np.zeros(segment // 2 + 1), 0
    for _, count, a, b in _block_spans(resampled_length(len(samples), sr, rate), segment, segment // 2,
                                       block_segments):
        _, periodograms = power_spectrogram(_resampled(samples, sr, rate, a, b), rate, segment)
        total += periodograms[:, :count].sum(axis=1)
        segments += count
    return LongTermSpectrum(np.fft.rfftfreq(segment, 1 / rate), total / max(segments, 1), segments)
