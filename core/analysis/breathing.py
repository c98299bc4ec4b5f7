"""How the patient is breathing: the breathing rate (breaths per minute) and, where inspiration and expiration
can be told apart, the I:E ratio (inspiratory over expiratory time), each with a confidence.

- The rate comes from whole breathing cycles: the automatic segmentation's (segmentation.py, whose cycles
  start at the onset of inspiration) or an expert's annotation. It is 60 over the median length of the cycles
  that the file's ends do not cut (a piece at either end, or one missed boundary, does not move it); from the
  segmentation its confidence is the segmentation's, from an annotation 1. Where the segmentation found no
  breathing rhythm (fixed windows) there is no rate, and the reason says why.
- Inspiration and expiration: within each cycle the breath sound (150-1200 Hz, a 0.1 s running median
  taking out crackles and clicks: a longer one fills the dip between the phases too) rises with inspiration,
  falls as the flow stops and turns, and rises again with expiration, or stays low where expiration is
  silent, as it mostly is at the chest wall. The inspiration ends at the deepest dip between the first hump
  and the next, or, with no second hump, where the sound has fallen back to within a quarter of its range
  above the cycle's floor. It starts where the sound rising to its peak left that quarter (the segmentation
  places a cycle's start on the rise, a little late). The expiratory time is the rest of the cycle, its pause
  included, as the I:E ratio counts it in clinical use (about 1:2 at rest).
- A cycle's split is clear when the dip or fall is at least CLEAR_DIP_DB deep (10 dB: a tenfold drop in
  sound power as the flow reverses), and counts when at least MIN_DIP_DB deep (3 dB: the sound halved).
  The I:E ratio is the median over the cycles that count; its confidence is the rate's, times the share of
  cycles that count, times their mean clarity, times their agreement (one less the interquartile range of
  their ratios over the median). With fewer than MIN_SPLIT_CYCLES such cycles there is no ratio.

Where the segmentation starts cycles at expiration (a tracheal recording whose phases are equally loud, see
bench/README.md), the ratio reads expiration for inspiration; the confidence cannot tell.

scipy is imported in the functions that compute with it: `lungkd predict` imports this module only to read
the results its helper process sends, and scipy's import cost it about 0.3 s before its helper could start.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lungkd.core.analysis.band_levels import HOP_S, BandLevels, measure_bands
from lungkd.core.analysis.segmentation import AUTOMATIC, Segmentation, segment_cycles
from lungkd.core.analysis.spectra import find_peaks

BREATH_BAND = (150.0, 1200.0)
MEDIAN_S, SMOOTH_S = 0.1, 0.1  # the median takes out crackles and clicks; longer ones fill the dip as well
MIN_DIP_DB, CLEAR_DIP_DB = 3.0, 10.0
FALLEN_SHARE = 0.25  # of the cycle's range above its floor: the inspiratory sound has ended (or not begun)
ONSET_LOOKBACK_S = 0.5
MIN_SPLIT_CYCLES = 2
MIN_CYCLE_FRAMES = 10  # 0.2 s


@dataclass(frozen=True)
class BreathPhases:
    """One cycle split into inspiration and expiration (pause included)."""

    start: float  # the cycle's
    inspiration_start: float  # where the inspiratory sound rises, near the cycle's start
    inspiration_end: float
    end: float
    clarity: float  # 0-1: how deep the dip or fall that ends inspiration is, over CLEAR_DIP_DB

    @property
    def ie_ratio(self) -> float:
        inspiration = self.inspiration_end - self.inspiration_start
        return inspiration / (self.end - self.start - inspiration)


@dataclass(frozen=True)
class Breathing:
    rate_per_min: float | None
    rate_confidence: float  # 0-1
    ie_ratio: float | None  # inspiratory over expiratory time: 0.5 is 1:2
    ie_confidence: float  # 0-1
    cycles: int  # the whole cycles the rate rests on
    phases: tuple[BreathPhases, ...]  # the cycles whose split counts
    source: str  # "automatic" or "annotation"
    reason: str = ""  # why the rate or the ratio is missing

    @property
    def ie_text(self) -> str:
        """As clinicians write it: 1:2.0."""
        return "" if self.ie_ratio is None else f"1:{1 / self.ie_ratio:.1f}"


def _envelope(samples: np.ndarray, sr: int, levels: BandLevels | None) -> tuple[np.ndarray, np.ndarray]:
    """Breath-band level in dB and the frame times, from `levels` where they hold the breath band."""
    if levels is None or BREATH_BAND not in levels.bands:
        levels = measure_bands(samples, sr, (BREATH_BAND,))
    level = levels.level_db(levels.bands.index(BREATH_BAND))
    if len(level):
        from scipy import ndimage  # here, not at the top: see the module's docstring

        level = ndimage.median_filter(level, int(round(MEDIAN_S / HOP_S)) | 1, mode="nearest")
        level = ndimage.uniform_filter1d(level, max(1, int(round(SMOOTH_S / HOP_S))), mode="nearest")
    return level, levels.times


def _fallen(x: np.ndarray, peak: float, floor: float) -> np.ndarray:
    return x <= floor + FALLEN_SHARE * (peak - floor)


def split_cycle(level: np.ndarray, times: np.ndarray, start: float, end: float) -> BreathPhases | None:
    """Where inspiration starts and ends in the cycle [start, end), or None when its sound shows no split."""
    inside = slice(np.searchsorted(times, start), np.searchsorted(times, end))  # times ascend: [start, end)
    x, t = level[inside], times[inside]
    if len(x) < MIN_CYCLE_FRAMES:
        return None
    peaks = find_peaks(np.concatenate([[x.min() - 1], x, [x.min() - 1]]), prominence=MIN_DIP_DB)
    peaks -= 1  # the padding lets a hump at either end of the cycle count as a peak
    if not len(peaks):
        return None
    first = peaks[0]
    if len(peaks) > 1:
        second = peaks[1 + int(np.argmax(x[peaks[1:]]))]
        split = first + int(np.argmin(x[first:second + 1]))
        depth = min(x[first], x[second]) - x[split]
    else:
        floor = float(x[first:].min())
        fallen = np.flatnonzero(_fallen(x[first:], x[first], floor))
        split = first + int(fallen[0]) if len(fallen) else len(x) - 1
        depth = x[first] - floor
    if depth < MIN_DIP_DB or not 0 < split < len(x) - 1:
        return None
    return BreathPhases(start, _inspiration_start(level, times, start, t[first], x[first]), float(t[split]), end,
                        float(min(1.0, depth / CLEAR_DIP_DB)))


def _inspiration_start(level: np.ndarray, times: np.ndarray, start: float, peak_time: float, peak: float) -> float:
    """Where the sound rising to the inspiration's peak left the floor: the last frame before the peak, from
    ONSET_LOOKBACK_S before the cycle's start, within FALLEN_SHARE of the range above the floor. A cycle's
    start is placed on a rise, a little after it began; the inspiration is timed from its beginning."""
    before = slice(np.searchsorted(times, start - ONSET_LOOKBACK_S), np.searchsorted(times, peak_time, "right"))
    x, t = level[before], times[before]
    if peak - x.min() < MIN_DIP_DB:  # already loud from the window's start: the cycle's start is all there is
        return start
    return float(t[np.flatnonzero(_fallen(x, peak, float(x.min())))[-1]])


def _ie(phases: list[BreathPhases], whole: int, rate_confidence: float) -> tuple[float | None, float, str]:
    if len(phases) < MIN_SPLIT_CYCLES:
        return None, 0.0, (f"inspiration and expiration could be told apart in {len(phases)} of {whole} "
                           "breaths, too few for an I:E ratio")
    ratios = np.array([p.ie_ratio for p in phases])
    median = float(np.median(ratios))
    agreement = max(0.0, 1.0 - float(np.subtract(*np.percentile(ratios, [75, 25]))) / median)
    clarity = float(np.mean([p.clarity for p in phases]))
    confidence = rate_confidence * min(1.0, len(phases) / max(whole, 1)) * clarity * agreement
    return median, round(confidence, 3), ""


def _whole(spans: Sequence[tuple[float, float]], duration: float) -> list[tuple[float, float]]:
    """The cycles that the file's ends do not cut (a cycle starting at 0 or ending at the end may be a piece)."""
    return [(s, e) for s, e in spans if s > 0.0 and e < round(duration, 3) - 1e-3]


def breathing_of_cycles(samples: np.ndarray, sr: int, spans: Sequence[tuple[float, float]], confidence: float,
                        source: str, whole_only: bool = True, levels: BandLevels | None = None) -> Breathing:
    """Rate and I:E ratio from cycle spans (s) whose bounds are as sure as `confidence`; with `whole_only`,
    from those the file's ends do not cut where there are any. `levels`: the recording's `measure_bands`, where
    measured already with the breath band among its bands."""
    given = [(s, e) for s, e in spans if e > s]
    whole = (_whole(given, len(samples) / sr) if whole_only else given) or given
    if not whole:
        return Breathing(None, 0.0, None, 0.0, 0, (), source, "no breathing cycle to count")
    rate = 60.0 / float(np.median([e - s for s, e in whole]))
    level, times = _envelope(samples, sr, levels)
    phases = [p for s, e in whole if (p := split_cycle(level, times, s, e)) is not None]
    ratio, ie_confidence, ie_reason = _ie(phases, len(whole), confidence)
    return Breathing(round(rate, 2), round(confidence, 3), ratio, ie_confidence, len(whole), tuple(phases), source,
                     ie_reason)


def assess_breathing(samples: np.ndarray, sr: int, segmentation: Segmentation | None = None,
                     levels: BandLevels | None = None) -> Breathing:
    """The breathing of a recording without an annotation, from its automatic segmentation (computed here
    unless given); `levels` as `breathing_of_cycles` takes them."""
    segmentation = segmentation or segment_cycles(samples, sr)
    if segmentation.method != AUTOMATIC:
        return Breathing(None, 0.0, None, 0.0, 0, (), segmentation.method,
                         f"no breathing rate: {segmentation.reason or 'no breathing rhythm found'}")
    return breathing_of_cycles(samples, sr, segmentation.spans, segmentation.confidence, AUTOMATIC, levels=levels)


def breathing_of_annotation(samples: np.ndarray, sr: int, spans: Sequence[tuple[float, float]]) -> Breathing:
    """The breathing of an annotated recording: the expert's cycles, as sure as the expert. Every annotated
    cycle counts (the median passes over a piece at either end)."""
    return breathing_of_cycles(samples, sr, spans, 1.0, "annotation", whole_only=False)
