"""Automatic breathing-cycle segmentation: whole respiratory cycles, each starting at the onset of inspiration as
ICBHI's annotators mark them, found in the recording alone, each with a confidence.

1. Breath envelope (breath_envelope.py): the loudness and colour of the breath sounds every 20 ms between
   150 Hz and 1 kHz, heart sounds and crackles removed, each band measured above its own floor.
2. Rhythm (breath_rhythm.py): the breathing period, and a chain of onsets one breath apart.
3. Phase (breath_phase.py): the other phase's onset inside each breath, and which of the two phases is
   inspiration: at the chest wall the stronger (louder, after the deeper pause), at the trachea the weaker.
   The cycles start at inspiration's onsets, moved back from the steepest point of each rise to where it starts.
4. Confidence. A cycle is sure when the onsets at its start and end are clear (as strong as a typical onset of
   their phase), its length is about the period, and the phase is sure; the recording's confidence is the
   cycles' average weighed by their length. A recording whose phase is uncertain says so and why.

The user can steer: `segment_cycles(..., period_hint=...)` segments again at a breathing period they give, and
`shift_to_other_phase` starts the cycles at the other phase (a segmentation keeps both phases' onsets).
Recordings without audible, rhythmic breathing (silence, steady noise, a few seconds) fall back to fixed
windows, and the result says why. Every file gets the same settings: the modules' constants, chosen on the ten
real ICBHI recordings in ../shared and on synthetic ones (bench/README.md, "Automatic segmentation").
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungkd.core.analysis.breath_envelope import (BREATH_BAND_HZ, HOP_S, BreathEnvelope, breath_envelope,
                                                  onset_strength, steepness)
from lungkd.core.analysis.breath_phase import (PHASE_SURE, choose_phase, other_onsets, phase_evidence,
                                               refine_onsets)
from lungkd.core.analysis.breath_rhythm import PERIOD_RANGE_S, period_and_starts
from lungkd.core.errors import LungKDError

REGULARITY_SPREAD = 0.35  # a cycle 1.5 times the period (log 0.41) is about half as sure
END_PIECE = 1 / 3  # of a period: a cycle cut off by a file end is kept when at least this long
MIN_CONTRAST_DB = 3.0  # less loudness change than this in the breath band: no breathing heard
MIN_CONFIDENCE = 0.3  # cycles whose bounds are less sure than this are no better than fixed windows
FIXED_WINDOW_S = 4.0
AUTOMATIC, FIXED_WINDOWS = "automatic", "fixed windows"


@dataclass(frozen=True)
class SegmentedCycle:
    start: float
    end: float
    confidence: float  # 0-1 that its bounds are where an expert puts them; fixed windows are 0


@dataclass(frozen=True)
class Onset:
    """Where a breathing phase starts."""

    time: float  # s
    clarity: float  # 0-1: 1 when as strong as a typical onset of its phase


@dataclass(frozen=True)
class Segmentation:
    cycles: tuple[SegmentedCycle, ...]
    method: str  # AUTOMATIC or FIXED_WINDOWS
    confidence: float  # 0-1, the cycles' confidence weighed by length; 0 for fixed windows
    period: float | None  # the breathing period found or given, s
    reason: str = ""  # why it fell back to fixed windows
    phase_sureness: float = 0.0  # 0.5-1: how sure the segmentation is of the phase it chose to start cycles at
    phase_reason: str = ""  # why that choice is uncertain; "" where it is not
    shifted: bool = False  # the cycles start at the other phase than the one the segmentation chose
    onsets: tuple[Onset, ...] = ()  # where the cycles start (but for a piece cut off by the file's start)
    other_onsets: tuple[Onset, ...] = ()  # where the other phase starts: the cycles' starts after a shift
    duration: float = 0.0  # of the recording, s

    @property
    def spans(self) -> list[tuple[float, float]]:
        return [(c.start, c.end) for c in self.cycles]

    @property
    def phase_confidence(self) -> float:
        """0-1: how sure it is that the cycles start at inspiration; 0 for fixed windows."""
        return round(1 - self.phase_sureness, 3) if self.shifted else self.phase_sureness

    @property
    def phase_uncertain(self) -> bool:
        return self.method == AUTOMATIC and self.phase_confidence < PHASE_SURE

    @property
    def phase_note(self) -> str:
        """Why the cycles may not start at inspiration; "" where they are sure to."""
        if self.method != AUTOMATIC:
            return ""
        if self.shifted:
            return (f"the cycles were shifted to start at the other phase, which the segmentation took for "
                    f"expiration ({self.phase_sureness:.0%} sure).")
        return self.phase_reason


def _regularity(length: float, period: float, cut_off: bool) -> float:
    """1 for a cycle one period long, less the more it differs; a cycle cut off by a file end may be shorter."""
    ratio = (max(length, period) if cut_off else length) / period
    return float(np.exp(-0.5 * (np.log(ratio) / REGULARITY_SPREAD) ** 2))


def _bounded_cycles(onsets: tuple[Onset, ...], duration: float, period: float) -> list[tuple[float, float, float]]:
    """(start, end, how sure its bounds are) of the cycles between onsets, and of the pieces the file's ends cut
    off when they hold at least END_PIECE of a breath (ICBHI's annotators keep such pieces)."""
    spans = [(a.time, b.time, np.sqrt(a.clarity * b.clarity), False) for a, b in zip(onsets[:-1], onsets[1:])]
    if onsets and onsets[0].time >= END_PIECE * period:
        spans.insert(0, (0.0, onsets[0].time, onsets[0].clarity, True))
    if onsets and duration - onsets[-1].time >= END_PIECE * period:
        spans.append((onsets[-1].time, duration, onsets[-1].clarity, True))
    return [(start, end, float(clear) * _regularity(end - start, period, cut)) for start, end, clear, cut in spans]


def _weighed(values, spans) -> float:
    return float(np.average(values, weights=[end - start for start, end in spans])) if spans else 0.0


def _automatic(onsets: tuple[Onset, ...], other: tuple[Onset, ...], duration: float, period: float,
               phase_sureness: float, phase_reason: str, shifted: bool = False) -> Segmentation:
    """The segmentation whose cycles start at `onsets`, each as sure as its bounds and the phase."""
    phase = round(1 - phase_sureness, 3) if shifted else phase_sureness
    bounded = _bounded_cycles(onsets, duration, period)
    cycles = tuple(SegmentedCycle(round(start, 3), round(end, 3), round(sure * phase, 3))
                   for start, end, sure in bounded)
    overall = _weighed([c.confidence for c in cycles], [(c.start, c.end) for c in cycles])
    return Segmentation(cycles, AUTOMATIC, round(overall, 3), round(period, 3), "", phase_sureness, phase_reason,
                        shifted, onsets, other, duration)


def fixed_windows(duration: float, reason: str = "") -> Segmentation:
    """Plain FIXED_WINDOW_S windows: the fallback, and the baseline the segmentation is measured against."""
    starts = np.arange(0.0, duration, FIXED_WINDOW_S)
    cycles = tuple(SegmentedCycle(round(float(s), 3), round(float(min(s + FIXED_WINDOW_S, duration)), 3), 0.0)
                   for s in starts if min(s + FIXED_WINDOW_S, duration) - s >= 0.5)
    return Segmentation(cycles, FIXED_WINDOWS, 0.0, None, reason, duration=duration)


def _onsets(envelope: BreathEnvelope, frames: np.ndarray, strength: np.ndarray) -> tuple[Onset, ...]:
    """Onsets at `frames`, moved to where their sound starts, each as clear as its strength against the upper
    quartile of its phase's."""
    typical = float(np.percentile(strength[frames], 75)) if len(frames) else 0.0
    clarity = np.clip(strength[frames] / typical, 0.0, 1.0) if typical > 0 else np.zeros(len(frames))
    times = envelope.times[refine_onsets(envelope, frames)]
    return tuple(Onset(round(float(t), 3), round(float(c), 3)) for t, c in zip(times, clarity))


def check_period_hint(period_hint: float) -> None:
    """Refuses a breathing period the segmentation does not look for (LungKDError naming the range): for
    `segment_cycles`, and for a window asking the user for one before it starts the work."""
    if not PERIOD_RANGE_S[0] <= period_hint <= PERIOD_RANGE_S[1]:
        raise LungKDError(f"a breathing period of {period_hint:g} s is outside the {PERIOD_RANGE_S[0]:g}-"
                          f"{PERIOD_RANGE_S[1]:g} s the segmentation looks for.",
                          fix=f"give the time from one inspiration to the next, between {PERIOD_RANGE_S[0]:g} and "
                              f"{PERIOD_RANGE_S[1]:g} s.")


def segment_cycles(samples: np.ndarray, sr: int, *, location: str | None = None,
                   period_hint: float | None = None) -> Segmentation:
    """Whole breathing cycles with their confidence, or fixed windows and the reason none were found.

    `location` is the recording site as ICBHI's file names give it ("Tc" the trachea, "Al", "Pr"... the chest
    wall; None where unknown, taken as the chest wall): it decides which phase is inspiration. `period_hint`
    (s) segments at that breathing period instead of the one found."""
    if period_hint is not None:
        check_period_hint(period_hint)
    duration = len(samples) / sr
    envelope = breath_envelope(samples, sr)
    if len(envelope.values) < 2 * PERIOD_RANGE_S[0] / HOP_S:
        return fixed_windows(duration, f"the recording is too short ({duration:.1f} s) to find a breathing rhythm")
    contrast = float(np.percentile(envelope.values, 90) - np.percentile(envelope.values, 10))
    if contrast < MIN_CONTRAST_DB:
        return fixed_windows(duration, f"no breathing heard: the breath band ({BREATH_BAND_HZ[0]:.0f}-"
                                        f"{BREATH_BAND_HZ[1]:.0f} Hz) changes by only {contrast:.1f} dB")
    strength = onset_strength(envelope)
    period, chain = period_and_starts(envelope, strength, period_hint)
    if period is None or len(chain) < 2:
        return fixed_windows(duration, f"no breathing rhythm between {PERIOD_RANGE_S[0]:.0f} and "
                                        f"{PERIOD_RANGE_S[1]:.0f} s")
    others = other_onsets(steepness(envelope), chain, period / envelope.hop)
    choice = choose_phase(phase_evidence(envelope, chain, others), location)
    found = np.array([frame for frame in others if frame is not None], dtype=int)
    chosen, other = (chain, found) if choice.chain_is_inspiration or len(found) < 2 else (found, chain)
    segmentation = _automatic(_onsets(envelope, chosen, strength), _onsets(envelope, other, strength), duration,
                              period, choice.sureness, choice.reason)
    bounds = _weighed([sure for _, _, sure in _bounded_cycles(segmentation.onsets, duration, period)],
                      segmentation.spans)
    if bounds < MIN_CONFIDENCE:
        return fixed_windows(duration, f"the breaths found are too irregular to trust (confidence {bounds:.0%})")
    return segmentation


def other_phase_problem(segmentation: Segmentation) -> LungKDError | None:
    """Why the cycles cannot start at the other breathing phase; None where they can. Cheap: the Studio asks at
    every change of selection, without working the shift out."""
    if segmentation.method != AUTOMATIC or len(segmentation.other_onsets) < 2:
        return LungKDError("these cycles have no other breathing phase to start at: "
                           + (segmentation.reason or "only one phase was heard") + ".",
                           fix="segment the recording again with the breathing period you hear, or mark the "
                               "cycles by hand.")
    return None


def shift_to_other_phase(segmentation: Segmentation) -> Segmentation:
    """The same segmentation with its cycles starting at the other breathing phase (where it took expiration to
    start, or back): for a recording whose cycles the user sees start at expiration. Shifting twice gives the
    segmentation back."""
    if (problem := other_phase_problem(segmentation)) is not None:
        raise problem
    return _automatic(segmentation.other_onsets, segmentation.onsets, segmentation.duration, segmentation.period,
                      segmentation.phase_sureness, segmentation.phase_reason, not segmentation.shifted)


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
    from mir_eval.util import match_events  # with scipy.stats: seconds to import, for scoring only

    ref_bounds = inner_boundaries(reference, duration, tolerance)
    found_bounds = inner_boundaries(found, duration, tolerance)
    matched = len(match_events(ref_bounds, found_bounds, tolerance)) if len(ref_bounds) and len(found_bounds) else 0
    first, last = (min(s for s, _ in reference), max(e for _, e in reference)) if len(reference) else (0.0, 0.0)
    inside = sum(first <= (s + e) / 2 <= last for s, e in found)
    return SegmentationScore(matched, len(ref_bounds), len(found_bounds), len(reference), int(inside))
