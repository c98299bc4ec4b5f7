"""Automatic breathing-cycle segmentation: whole respiratory cycles (inspiration + expiration, as ICBHI
annotators mark them) found in the recording alone, each with a confidence.

1. Breath envelope. The recording at 4 kHz (every ICBHI device reaches it; the Litt3200 records at it),
   log power every 20 ms in six bands from 150 Hz to 1 kHz, where breath sounds are and most heart sound
   is not. Each band runs through a 0.35 s median, which drops what is shorter than a breath phase: the
   heart sounds that leak above 150 Hz, crackles, clicks. Each band is measured above its own floor, so a
   device's strong band does not outvote the others, and the bands are averaged.
2. Breathing period and cycle starts. A cycle starts where inspiration starts: a rise of the envelope.
   For a candidate period, dynamic programming (Ellis's beat tracker) picks the rises that are strongest
   together while consecutive starts stay about one period apart, so the softer rise of expiration inside
   each breath is passed over and inspiration and expiration make one cycle. The candidates are the peaks
   of the envelope's autocorrelation between 1 and 8 s; the one whose chain of rises scores best wins
   (irregular breathing blurs the autocorrelation but not its rises), weighed by how usual such a period
   is in ICBHI (median cycle 2.6 s), so that neither half the period (inspiration and expiration taken for
   two breaths) nor twice it wins a near tie.
3. Confidence. A cycle is sure when its start and end are clear rises, its envelope runs like that of the
   typical cycle, and its length is about the period; the recording's confidence is the cycles' average
   weighed by their length.

Recordings without audible, rhythmic breathing (silence, steady noise, a few seconds) fall back to fixed
windows, and the result says why. Every file gets the same settings: the module's constants.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from mir_eval.util import match_events
from scipy import ndimage, signal

from lungkd.core.data.audio import resample

ANALYSIS_RATE = 4000  # Hz
FRAME_S, HOP_S = 0.064, 0.02
BREATH_BAND_HZ = (150.0, 1000.0)
BANDS = 6
MEDIAN_S = 0.35  # longer than a heart sound (about 0.1 s) or a crackle, shorter than a breath phase
SMOOTH_S = 0.2
RISE_S = 0.15  # an onset is the envelope's rise from RISE_S before to RISE_S after
EDGE_S = 0.3  # onsets this close to the file's ends are the recording starting or stopping
PERIOD_RANGE_S = (1.0, 8.0)
USUAL_PERIOD_S, PERIOD_SPREAD = 2.6, 0.5  # median ICBHI cycle; spread of the weighting, in log units
WEAK_ONSET = 0.4  # a start on a rise weaker than this share of a typical one costs more than it gains
TIGHTNESS = 1.0  # the cost of a cycle length deviating from the period, per squared log ratio
GAP_COST = 2.0  # of bridging more than two periods without a start (a pause, a cough, noise)
SHAPE_POINTS = 40  # samples of a cycle's envelope when comparing cycles
REGULARITY_SPREAD = 0.35  # a cycle 1.5 times the period (log 0.41) is about half as sure
END_PIECE = 1 / 3  # of a period: a cycle cut off by a file end is kept when at least this long
MIN_CONTRAST_DB = 3.0  # less loudness change than this in the breath band: no breathing heard
MIN_CONFIDENCE = 0.3  # a segmentation less sure than this is no better than fixed windows
FIXED_WINDOW_S = 4.0
STFT_BLOCK_FRAMES = 4096  # frames of the breath band's spectrum computed at once (about 80 s of audio)
AUTOMATIC, FIXED_WINDOWS = "automatic", "fixed windows"


@dataclass(frozen=True)
class SegmentedCycle:
    start: float
    end: float
    confidence: float  # 0-1; fixed windows are 0


@dataclass(frozen=True)
class Segmentation:
    cycles: tuple[SegmentedCycle, ...]
    method: str  # AUTOMATIC or FIXED_WINDOWS
    confidence: float  # 0-1, the cycles' confidence weighed by length; 0 for fixed windows
    period: float | None  # the breathing period found, s
    reason: str = ""  # why it fell back to fixed windows

    @property
    def spans(self) -> list[tuple[float, float]]:
        return [(c.start, c.end) for c in self.cycles]


@dataclass(frozen=True)
class BreathEnvelope:
    values: np.ndarray  # dB above the floor, one per frame
    times: np.ndarray  # s, the middle of each frame
    hop: float  # s between frames


def breath_envelope(samples: np.ndarray, sr: int) -> BreathEnvelope:
    """Breath loudness every HOP_S: band-limited, heart sounds and crackles removed (step 1)."""
    rate = min(sr, ANALYSIS_RATE)
    audio = resample(samples, sr, rate)
    frame, hop = int(round(FRAME_S * rate)), int(round(HOP_S * rate))
    if len(audio) < frame:
        return BreathEnvelope(np.zeros(0), np.zeros(0), HOP_S)
    edges = np.geomspace(BREATH_BAND_HZ[0], min(BREATH_BAND_HZ[1], 0.45 * rate), BANDS + 1)
    frames = 1 + (len(audio) - frame) // hop
    bands = np.empty((BANDS, frames))
    for first in range(0, frames, STFT_BLOCK_FRAMES):  # the spectrum a block at a time: memory stays bounded
        last = min(frames, first + STFT_BLOCK_FRAMES)
        freqs, _, spectrum = signal.stft(audio[first * hop:(last - 1) * hop + frame], rate, nperseg=frame,
                                         noverlap=frame - hop, boundary=None, padded=False)
        power = np.abs(spectrum) ** 2
        bands[:, first:last] = [power[(freqs >= lo) & (freqs < hi)].mean(axis=0)
                                for lo, hi in zip(edges[:-1], edges[1:])]
    times = (frame / 2 + hop * np.arange(frames)) / rate  # the middle of each frame, as signal.stft gives it
    level = 10 * np.log10(bands + 1e-12)
    level = ndimage.median_filter(level, size=(1, int(round(MEDIAN_S / HOP_S)) | 1), mode="nearest")
    level -= np.percentile(level, 10, axis=1, keepdims=True)
    envelope = ndimage.uniform_filter1d(level.mean(axis=0), max(1, int(round(SMOOTH_S / HOP_S))), mode="nearest")
    return BreathEnvelope(envelope, times, HOP_S)


def _autocorrelation(x: np.ndarray) -> np.ndarray:
    z = x - x.mean()
    spectrum = np.fft.rfft(z, 2 * len(z))
    r = np.fft.irfft(spectrum * np.conj(spectrum))[:len(z)]
    return r / (r[0] + 1e-12)


def onset_strength(envelope: BreathEnvelope) -> np.ndarray:
    """How much the envelope rises around each frame, in dB; zero near the file's ends."""
    d = max(1, int(round(RISE_S / envelope.hop)))
    e = envelope.values
    rise = np.zeros_like(e)
    if len(e) > 2 * d:
        rise[d:-d] = np.maximum(e[2 * d:] - e[:-2 * d], 0.0)
    edge = int(EDGE_S / envelope.hop)
    rise[:edge], rise[len(rise) - edge:] = 0.0, 0.0
    return rise


def _typical_onset(onsets: np.ndarray, period_frames: float) -> float:
    """The height of a typical strong rise: the upper quartile of the peaks at least half a period apart."""
    peaks, _ = signal.find_peaks(onsets, distance=max(1, int(period_frames / 2)))
    heights = onsets[peaks]
    return float(np.percentile(heights, 75)) if len(heights) else 0.0


def track_cycle_starts(onsets: np.ndarray, period_frames: float) -> tuple[np.ndarray, float]:
    """Frames of the cycle starts, the best-scoring chain of rises about one period apart, and its score.

    Each rise scores its height over a typical rise's, less WEAK_ONSET; each link between two starts costs
    TIGHTNESS times the squared log ratio of its length to the period."""
    typical = _typical_onset(onsets, period_frames)
    if typical <= 0:
        return np.zeros(0, dtype=int), 0.0
    gain = onsets / typical - WEAK_ONSET
    score = gain.copy()
    previous = np.full(len(onsets), -1)
    shortest, longest = max(1, int(0.5 * period_frames)), int(2 * period_frames) + 1
    best_before = np.maximum.accumulate(score)  # refreshed as the chain grows; see below
    for i in range(shortest, len(onsets)):
        first = max(0, i - longest)
        candidates = np.arange(first, i - shortest + 1)
        chained = score[candidates] - TIGHTNESS * np.log((i - candidates) / period_frames) ** 2
        j = int(np.argmax(chained))
        link, value = candidates[j], chained[j]
        # a pause, cough or noise longer than two periods: bridge it at a fixed cost rather than lose the chain
        if first > 0 and best_before[first - 1] - GAP_COST > value:
            link, value = int(np.argmax(score[:first])), best_before[first - 1] - GAP_COST
        if value > 0:  # a chain worth extending; otherwise a chain starts afresh here
            score[i] += value
            previous[i] = link
        best_before[i] = max(best_before[i - 1], score[i])
    tail = len(onsets) - int(period_frames)
    end = max(0, tail) + int(np.argmax(score[max(0, tail):]))
    chain = [end]
    while previous[chain[-1]] >= 0:
        chain.append(previous[chain[-1]])
    return np.array(chain[::-1]), float(score[end])


def period_and_starts(envelope: BreathEnvelope, onsets: np.ndarray) -> tuple[float | None, np.ndarray]:
    """The breathing period in s and the frames of the cycle starts under it (step 2), or (None, [])."""
    r = _autocorrelation(envelope.values)
    lo = int(PERIOD_RANGE_S[0] / envelope.hop)
    hi = min(int(PERIOD_RANGE_S[1] / envelope.hop), len(r) // 2)
    peaks, _ = signal.find_peaks(r[:hi + 1])
    candidates = peaks[(peaks >= lo) & (r[peaks] > 0)]
    best = (None, np.zeros(0, dtype=int), 0.0)
    for frames in candidates:
        starts, score = track_cycle_starts(onsets, float(frames))
        usual = np.exp(-0.5 * (np.log(frames * envelope.hop / USUAL_PERIOD_S) / PERIOD_SPREAD) ** 2)
        if score * usual > best[2]:
            best = (float(frames * envelope.hop), starts, score * usual)
    return best[:2]


def _likeness(envelope: BreathEnvelope, spans: list[tuple[float, float]], cut_first: bool,
              cut_last: bool) -> np.ndarray:
    """How much each cycle's envelope looks like a typical cycle's: the correlation of its course, on a common
    time scale, with the median course of the whole cycles (below 0 counts as 0). A cycle cut off by a file
    end is compared with the same share of a typical cycle: its end at the start, its start at the end."""
    def course(start: float, end: float) -> np.ndarray:
        return np.interp(np.linspace(start, end, SHAPE_POINTS), envelope.times, envelope.values)

    def likeness(span: tuple[float, float], part: tuple[float, float] = (0.0, 1.0)) -> float:
        typical_part = np.interp(np.linspace(*part, SHAPE_POINTS), np.linspace(0, 1, SHAPE_POINTS), typical)
        with np.errstate(divide="ignore", invalid="ignore"):  # a flat course has no correlation: 0 below
            return float(np.corrcoef(course(*span), typical_part)[0, 1])

    whole = spans[int(cut_first):len(spans) - int(cut_last)]
    typical = np.median([course(*span) for span in whole], axis=0)
    usual = np.median([end - start for start, end in whole])
    values = [likeness(span) for span in whole]
    if cut_first:
        values.insert(0, likeness(spans[0], (max(0.0, 1 - (spans[0][1] - spans[0][0]) / usual), 1.0)))
    if cut_last:
        values.append(likeness(spans[-1], (0.0, min(1.0, (spans[-1][1] - spans[-1][0]) / usual))))
    return np.clip(np.nan_to_num(np.array(values)), 0.0, 1.0)


def _regularity(length: float, period: float, cut_off: bool) -> float:
    """1 for a cycle one period long, less the more it differs; a cycle cut off by a file end may be shorter."""
    ratio = (max(length, period) if cut_off else length) / period
    return float(np.exp(-0.5 * (np.log(ratio) / REGULARITY_SPREAD) ** 2))


def fixed_windows(duration: float, reason: str = "") -> Segmentation:
    """Plain FIXED_WINDOW_S windows: the fallback, and the baseline the segmentation is measured against."""
    starts = np.arange(0.0, duration, FIXED_WINDOW_S)
    cycles = tuple(SegmentedCycle(round(float(s), 3), round(float(min(s + FIXED_WINDOW_S, duration)), 3), 0.0)
                   for s in starts if min(s + FIXED_WINDOW_S, duration) - s >= 0.5)
    return Segmentation(cycles, FIXED_WINDOWS, 0.0, None, reason)


def segment_cycles(samples: np.ndarray, sr: int) -> Segmentation:
    """Whole breathing cycles with their confidence, or fixed windows and the reason none were found."""
    duration = len(samples) / sr
    envelope = breath_envelope(samples, sr)
    if len(envelope.values) < 2 * PERIOD_RANGE_S[0] / HOP_S:
        return fixed_windows(duration, f"the recording is too short ({duration:.1f} s) to find a breathing rhythm")
    contrast = float(np.percentile(envelope.values, 90) - np.percentile(envelope.values, 10))
    if contrast < MIN_CONTRAST_DB:
        return fixed_windows(duration, f"no breathing heard: the breath band ({BREATH_BAND_HZ[0]:.0f}-"
                                        f"{BREATH_BAND_HZ[1]:.0f} Hz) changes by only {contrast:.1f} dB")
    onsets = onset_strength(envelope)
    period, starts = period_and_starts(envelope, onsets)
    if period is None or len(starts) < 2:
        return fixed_windows(duration, f"no breathing rhythm between {PERIOD_RANGE_S[0]:.0f} and "
                                        f"{PERIOD_RANGE_S[1]:.0f} s")
    period_frames = period / envelope.hop
    clarity = np.clip(onsets[starts] / _typical_onset(onsets, period_frames), 0.0, 1.0)
    times = envelope.times[starts]
    # Whole cycles between consecutive starts, and the pieces the file's ends cut off when they hold at least
    # END_PIECE of a breath: ICBHI's annotators start a median 0.4 s into a file and end 0.18 s before its end.
    bounds = [(times[i], times[i + 1], np.sqrt(clarity[i] * clarity[i + 1])) for i in range(len(times) - 1)]
    cut_first, cut_last = times[0] >= END_PIECE * period, duration - times[-1] >= END_PIECE * period
    if cut_first:
        bounds.insert(0, (0.0, times[0], clarity[0]))
    if cut_last:
        bounds.append((times[-1], duration, clarity[-1]))
    likeness = _likeness(envelope, [(start, end) for start, end, _ in bounds], cut_first, cut_last)
    cycles = [SegmentedCycle(round(float(start), 3), round(float(end), 3), round(float(
        sharp * alike * _regularity(end - start, period, cut_off=start == 0 or end == duration)), 3))
        for (start, end, sharp), alike in zip(bounds, likeness)]
    lengths = np.array([c.end - c.start for c in cycles])
    overall = float(np.average([c.confidence for c in cycles], weights=lengths))
    if overall < MIN_CONFIDENCE:
        return fixed_windows(duration, f"the breaths found are too irregular to trust (confidence {overall:.0%})")
    return Segmentation(tuple(cycles), AUTOMATIC, round(overall, 3), round(period, 3))


# ---------------------------------------------------------------- scoring against an annotation

BOUNDARY_TOLERANCE_S = 0.5


@dataclass(frozen=True)
class SegmentationScore:
    """Boundary agreement and cycle counts of a segmentation against a reference; scores add up over files."""

    matched: int  # found boundaries paired one to one with a reference boundary within the tolerance
    reference_boundaries: int
    found_boundaries: int
    reference_cycles: int
    found_cycles: int  # counted over the stretch the reference annotates

    def __add__(self, other: SegmentationScore) -> SegmentationScore:
        return SegmentationScore(*(a + b for a, b in zip(self.counts, other.counts)))

    @property
    def counts(self) -> tuple[int, int, int, int, int]:
        return (self.matched, self.reference_boundaries, self.found_boundaries, self.reference_cycles,
                self.found_cycles)

    @property
    def precision(self) -> float:
        if not self.found_boundaries:
            return float(not self.reference_boundaries)
        return self.matched / self.found_boundaries

    @property
    def recall(self) -> float:
        if not self.reference_boundaries:
            return float(not self.found_boundaries)
        return self.matched / self.reference_boundaries

    @property
    def f1(self) -> float:
        total = self.reference_boundaries + self.found_boundaries
        return 2 * self.matched / total if total else 1.0  # nothing to find and nothing found

    @property
    def count_ratio(self) -> float:
        return self.found_cycles / self.reference_cycles if self.reference_cycles else float("nan")


def inner_boundaries(spans, duration: float, margin: float = BOUNDARY_TOLERANCE_S) -> np.ndarray:
    """Every cycle start and end once, without those within `margin` of the file's ends (where a file
    starting or stopping, not breathing, puts a boundary)."""
    times = np.unique(np.round(np.asarray(spans, dtype=float).reshape(-1), 3))
    return times[(times > margin) & (times < duration - margin)]


def score_segmentation(reference, found, duration: float,
                       tolerance: float = BOUNDARY_TOLERANCE_S) -> SegmentationScore:
    """Boundary hits at ±`tolerance` (a maximum one-to-one matching, mir_eval's) and cycle counts.

    `reference` and `found` are (start, end) spans in seconds. Boundaries within `tolerance` of the file's
    ends are left out. Found cycles are counted when their middle lies inside the stretch the reference
    annotates, so that a reference leaving a file's ends unannotated does not count against the segmentation.
    """
    ref_bounds = inner_boundaries(reference, duration, tolerance)
    found_bounds = inner_boundaries(found, duration, tolerance)
    matched = len(match_events(ref_bounds, found_bounds, tolerance)) if len(ref_bounds) and len(found_bounds) else 0
    first, last = (min(s for s, _ in reference), max(e for _, e in reference)) if len(reference) else (0.0, 0.0)
    inside = sum(first <= (s + e) / 2 <= last for s, e in found)
    return SegmentationScore(matched, len(ref_bounds), len(found_bounds), len(reference), int(inside))
