"""The short-time spectra and peaks the recording analysis needs, computed as scipy.signal computes them,
without importing scipy.signal.

Importing scipy.signal imports scipy.stats and scipy.optimize with it: 0.9 s and 32 MB, paid by every
`lungkd predict` and by the Studio's analysis helper before any audio, for the four functions used here. Each
is written in the operations and the order scipy uses, so that its numbers are scipy's (the STFT and the
spectrogram to the bit, the peaks exactly): tests/core/test_spectra.py checks them against scipy.signal.
scipy.fft itself is imported where it is used, for the same reason as in breath_envelope.py."""
from __future__ import annotations

import numpy as np

_PROMINENCE_CELLS = 1 << 20  # peaks x samples compared at once when measuring prominences


def periodic_hann(length: int) -> np.ndarray:
    """scipy.signal.get_window("hann", length): the periodic Hann window, float64."""
    if length <= 1:
        return np.ones(length)
    angle = np.linspace(-np.pi, np.pi, length + 1)
    window = np.zeros(length + 1)
    for k, weight in enumerate((0.5, 0.5)):  # scipy's general cosine window, term by term
        window += weight * np.cos(k * angle)
    return window[:-1]


def _windowed_spectra(x: np.ndarray, frame: int, hop: int, detrend: bool) -> tuple[np.ndarray, np.ndarray]:
    """(rfft of each windowed frame (frames, bins), the window as scipy multiplies by it) for frames of
    `frame` samples every `hop`, the first at sample 0 and none past the end."""
    x = np.asarray(x)
    if x.ndim != 1 or len(x) < frame:
        raise ValueError(f"a one-dimensional signal of at least {frame} samples is needed, not shape {x.shape}.")
    out = np.result_type(x, np.complex64)
    window = periodic_hann(frame)
    if np.result_type(window, np.complex64) != out:
        window = window.astype(out)
    frames = np.lib.stride_tricks.sliding_window_view(x, frame)[::hop]
    if detrend:
        frames = frames - np.mean(frames, axis=-1, keepdims=True)
    from scipy import fft  # here, not at the top: see the module's docstring

    # the window's imaginary part is zero: the real part of scipy's complex product, without computing it whole
    return fft.rfft(window.real.astype(frames.dtype, copy=False) * frames, n=frame), window


def stft(x: np.ndarray, rate: float, frame: int, hop: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, spectrum (bins, frames)) of scipy.signal.stft(x, rate, nperseg=frame, noverlap=frame - hop,
    boundary=None, padded=False): Hann frames from the first sample, scaled by the window's sum."""
    spectra, window = _windowed_spectra(x, frame, hop, detrend=False)
    spectra *= np.sqrt(1.0 / window.sum() ** 2)
    return np.fft.rfftfreq(frame, 1 / rate), spectra.astype(np.result_type(x, np.complex64), copy=False).T


def power_spectrogram(x: np.ndarray, rate: float, segment: int) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies, power spectral density (bins, segments)) of scipy.signal.spectrogram(x, rate, window="hann",
    nperseg=segment, noverlap=segment - segment // 2, mode="psd"): half-overlapping Hann segments, each less its
    mean, one-sided, in power per Hz."""
    spectra, window = _windowed_spectra(x, segment, segment // 2, detrend=True)
    power = np.conjugate(spectra) * spectra
    power *= 1.0 / (rate * (window * window).sum())
    power[..., 1:-1 if segment % 2 == 0 else None] *= 2  # one-sided: each bin but DC (and Nyquist) counts twice
    return np.fft.rfftfreq(segment, 1 / rate), power.astype(np.result_type(x, np.complex64), copy=False).real.T


def find_peaks(x: np.ndarray, *, distance: float | None = None, prominence: float | None = None) -> np.ndarray:
    """The indices scipy.signal.find_peaks(x, distance=distance, prominence=prominence)[0] gives: local maxima
    (the middle of a flat top), the higher of any two closer than `distance` samples, and of those the ones that
    stand at least `prominence` above the higher of the lowest points between them and higher ground on either
    side. Measuring prominence compares every peak with every sample (in pieces): meant for short signals."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"find_peaks takes a one-dimensional signal, not shape {x.shape}.")
    if distance is not None and distance < 1:
        raise ValueError("distance must be at least 1 sample.")
    peaks = _local_maxima(x)
    if distance is not None:
        peaks = peaks[_apart(peaks, x[peaks], int(np.ceil(distance)))]
    if prominence is not None:
        peaks = peaks[prominence <= _prominences(x, peaks)]
    return peaks


def _local_maxima(x: np.ndarray) -> np.ndarray:
    """Samples above both neighbours; for a flat top above both of its neighbours, its middle (rounded down)."""
    if len(x) < 3:
        return np.zeros(0, dtype=np.intp)
    starts = np.flatnonzero(np.concatenate(([True], x[1:] != x[:-1])))  # each run of equal samples
    ends = np.append(starts[1:], len(x)) - 1
    inner = (starts >= 1) & (ends <= len(x) - 2)
    starts, ends = starts[inner], ends[inner]
    top = (x[starts - 1] < x[starts]) & (x[ends + 1] < x[ends])
    return (starts[top] + ends[top]) // 2


def _apart(peaks: np.ndarray, heights: np.ndarray, distance: int) -> np.ndarray:
    """Which peaks to keep: from the highest down (in numpy's argsort order, as scipy), each removes the peaks
    closer than `distance` on either side."""
    positions, keep = peaks.tolist(), [True] * len(peaks)
    for j in np.argsort(heights)[::-1].tolist():
        if not keep[j]:
            continue
        k = j - 1
        while k >= 0 and positions[j] - positions[k] < distance:
            keep[k], k = False, k - 1
        k = j + 1
        while k < len(positions) and positions[k] - positions[j] < distance:
            keep[k], k = False, k + 1
    return np.array(keep, dtype=bool)


def _prominences(x: np.ndarray, peaks: np.ndarray) -> np.ndarray:
    """How far each peak rises above the higher of its two bases: the lowest sample on each side before a
    sample that is not at most the peak's height (or the signal's end)."""
    index = np.arange(len(x))
    out = np.empty(len(peaks))
    step = max(1, _PROMINENCE_CELLS // max(len(x), 1))
    for first in range(0, len(peaks), step):
        at = peaks[first:first + step, None]
        height = x[at]
        higher = ~(x <= height)  # as scipy's walk: NaN stops it too
        left = np.where(higher & (index < at), index, -1).max(axis=1, keepdims=True)
        right = np.where(higher & (index > at), index, len(x)).min(axis=1, keepdims=True)
        left_base = np.where((index > left) & (index <= at), x, np.inf).min(axis=1)
        right_base = np.where((index >= at) & (index < right), x, np.inf).min(axis=1)
        out[first:first + step] = height[:, 0] - np.maximum(left_base, right_base)
    return out
