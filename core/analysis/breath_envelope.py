"""The breath envelope of a recording: how loud its breath sounds are, and how their colour changes, every 20 ms;
and the rises in it where a breathing phase starts.

The recording at 4 kHz (every ICBHI device reaches it; the Litt3200 records at it), log power every 20 ms in six
bands from 150 Hz to 1 kHz, where breath sounds are and most heart sound is not. Each band runs through a 0.35 s
median, which drops what is shorter than a breath phase: the heart sounds that leak above 150 Hz, crackles,
clicks. Each band is measured above its own floor (its 10th percentile in this recording), so that a device's
frequency response does not decide which band counts. The bands are not scaled to one range as well: a band in
which breathing barely shows would then count as much as one in which it shows clearly (on the ten real ICBHI
recordings boundary F1 fell from 0.93 to 0.86 when they were).

scipy is imported in the functions that compute with it: `lungkd predict` imports this module only to read
the results its helper process sends, and scipy's import cost it about 0.3 s before its helper could start.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungkd.core.analysis.spectra import stft
from lungkd.core.data.audio import resample_without_torch

ANALYSIS_RATE = 4000  # Hz
FRAME_S, HOP_S = 0.064, 0.02
BREATH_BAND_HZ = (150.0, 1000.0)
BANDS = 6
MEDIAN_S = 0.35  # longer than a heart sound (about 0.1 s) or a crackle, shorter than a breath phase
SMOOTH_S = 0.2
STFT_BLOCK_FRAMES = 4096  # frames of the breath band's spectrum computed at once (about 80 s of audio)
RISE_S = 0.15  # the steepness of a rise: the envelope RISE_S after less RISE_S before
ONSET_AFTER_S, ONSET_BEFORE_S = 0.5, 0.4  # an onset: the sound over the next half second above the quiet before it
EDGE_S = 0.3  # rises this close to the file's ends are the recording starting or stopping


@dataclass(frozen=True)
class BreathEnvelope:
    values: np.ndarray  # loudness, dB above the floor, one per frame
    timbre: np.ndarray  # the upper three bands' level less the lower three's, dB: the colour of the sound
    times: np.ndarray  # s, the middle of each frame
    hop: float  # s between frames

    def frames(self, seconds: float) -> int:
        return int(round(seconds / self.hop))


def _band_levels(audio: np.ndarray, rate: int) -> tuple[np.ndarray, np.ndarray]:
    """Log power in the breath bands, (BANDS, frames), and the middle of each frame in seconds."""
    frame, hop = int(round(FRAME_S * rate)), int(round(HOP_S * rate))
    edges = np.geomspace(BREATH_BAND_HZ[0], min(BREATH_BAND_HZ[1], 0.45 * rate), BANDS + 1)
    frames = 1 + (len(audio) - frame) // hop
    bands = np.empty((BANDS, frames))
    for first in range(0, frames, STFT_BLOCK_FRAMES):  # the spectrum a block at a time: memory stays bounded
        last = min(frames, first + STFT_BLOCK_FRAMES)
        freqs, spectrum = stft(audio[first * hop:(last - 1) * hop + frame], rate, frame, hop)
        power = np.abs(spectrum) ** 2
        bands[:, first:last] = [power[(freqs >= lo) & (freqs < hi)].mean(axis=0)
                                for lo, hi in zip(edges[:-1], edges[1:])]
    times = (frame / 2 + hop * np.arange(frames)) / rate  # the middle of each frame, as scipy.signal.stft gives it
    return 10 * np.log10(bands + 1e-12), times


def breath_envelope(samples: np.ndarray, sr: int) -> BreathEnvelope:
    """Breath loudness and colour every HOP_S: band-limited, heart sounds and crackles removed."""
    rate = min(sr, ANALYSIS_RATE)
    audio = resample_without_torch(samples, sr, rate)  # a measurement: torch is not needed for it
    if len(audio) < int(round(FRAME_S * rate)):
        return BreathEnvelope(np.zeros(0), np.zeros(0), np.zeros(0), HOP_S)
    level, times = _band_levels(audio, rate)
    from scipy import ndimage  # here, not at the top: see the module's docstring

    # band by band: scipy's fast running median takes one dimension only (ten times faster than a (1, n) window)
    level = np.stack([ndimage.median_filter(band, int(round(MEDIAN_S / HOP_S)) | 1, mode="nearest") for band in level])
    level -= np.percentile(level, 10, axis=1, keepdims=True)
    smooth = max(1, int(round(SMOOTH_S / HOP_S)))
    loudness = ndimage.uniform_filter1d(level.mean(axis=0), smooth, mode="nearest")
    half = BANDS // 2
    timbre = ndimage.uniform_filter1d(level[half:].mean(axis=0) - level[:half].mean(axis=0), smooth, mode="nearest")
    return BreathEnvelope(loudness, timbre, times, HOP_S)


def _quiet_ends(values: np.ndarray, envelope: BreathEnvelope, first: float = EDGE_S) -> np.ndarray:
    """`values` made zero within EDGE_S of the file's end and `first` of its start."""
    values[:envelope.frames(first)], values[len(values) - envelope.frames(EDGE_S):] = 0.0, 0.0
    return values


def steepness(envelope: BreathEnvelope) -> np.ndarray:
    """How steeply the loudness rises around each frame, in dB; zero near the file's ends."""
    d = max(1, envelope.frames(RISE_S))
    e = envelope.values
    rise = np.zeros_like(e)
    if len(e) > 2 * d:
        rise[d:-d] = np.maximum(e[2 * d:] - e[:-2 * d], 0.0)
    return _quiet_ends(rise, envelope)


def onset_strength(envelope: BreathEnvelope) -> np.ndarray:
    """How strongly a breathing phase starts at each frame, in dB: the mean loudness over the next
    ONSET_AFTER_S above the quietest moment of the ONSET_BEFORE_S before. A loud phase after a deep pause scores
    highest, a short steep bump (a crackle the median left, a rub) less than a steep rise alone would."""
    e = envelope.values
    if not len(e):
        return e.copy()
    from scipy import ndimage  # here, not at the top: see the module's docstring

    after, before = max(1, envelope.frames(ONSET_AFTER_S)), max(1, envelope.frames(ONSET_BEFORE_S))
    ahead = ndimage.uniform_filter1d(e, after, origin=-(after // 2), mode="nearest")  # mean of e[t:t + after]
    quietest = ndimage.minimum_filter1d(e, before, origin=(before - 1) // 2, mode="nearest")  # min up to t
    return _quiet_ends(np.maximum(ahead - quietest, 0.0), envelope, EDGE_S + ONSET_BEFORE_S)


def autocorrelation(x: np.ndarray) -> np.ndarray:
    """The autocorrelation of `x` less its mean at lags 0 to len(x) - 1, over its value at lag 0."""
    z = x - x.mean()
    # zero-padded to at least twice the length, so no lag wraps round; to a length of small primes, which the
    # FFT computes tens of times faster than one with a large prime factor (a long recording's frame count)
    from scipy import fft

    size = fft.next_fast_len(2 * len(z), real=True)
    spectrum = np.fft.rfft(z, size)
    r = np.fft.irfft(spectrum * np.conj(spectrum), size)[:len(z)]
    return r / (r[0] + 1e-12)


def periodicity(envelope: BreathEnvelope) -> np.ndarray:
    """How well the breath sound repeats after each lag (frames): the mean autocorrelation of its loudness and
    its colour. Inspiration and expiration can be about as loud (at the trachea) but differ in colour, so half a
    breath repeats the loudness and not the colour, and a whole breath repeats both."""
    return (autocorrelation(envelope.values) + autocorrelation(envelope.timbre)) / 2
