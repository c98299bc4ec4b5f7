"""The breathing period of a recording and the onsets that repeat with it.

For a candidate period, dynamic programming (Ellis's beat tracker) picks the onsets that are strongest together
while consecutive ones stay about one period apart; the softer onset of the other phase inside each breath is
passed over, so the chain holds one onset per breath. The candidates are the peaks of the breath sound's
periodicity between 1 and 8 s; each is weighed by its chain's score, by the periodicity there, and by how usual
such a period is in ICBHI (median cycle 2.6 s), so that neither half the period (inspiration and expiration
taken for two breaths) nor twice it wins a near tie. Given a period (the user's), the chain is tracked at it.
"""
from __future__ import annotations

import numpy as np
from scipy import signal

from lungkd.core.analysis.breath_envelope import BreathEnvelope, periodicity

PERIOD_RANGE_S = (1.0, 8.0)
USUAL_PERIOD_S, PERIOD_SPREAD = 2.6, 0.5  # median ICBHI cycle; spread of the weighting, in log units
WEAK_ONSET = 0.4  # an onset weaker than this share of a typical one costs more than it gains
TIGHTNESS = 1.0  # the cost of a cycle length deviating from the period, per squared log ratio
GAP_COST = 2.0  # of bridging more than two periods without an onset (a pause, a cough, noise)


def typical_onset(onsets: np.ndarray, period_frames: float) -> float:
    """The height of a typical strong onset: the upper quartile of the peaks at least half a period apart."""
    peaks, _ = signal.find_peaks(onsets, distance=max(1, int(period_frames / 2)))
    heights = onsets[peaks]
    return float(np.percentile(heights, 75)) if len(heights) else 0.0


def track_cycle_starts(onsets: np.ndarray, period_frames: float) -> tuple[np.ndarray, float]:
    """Frames of the best-scoring chain of onsets about one period apart, and its score.

    Each onset scores its height over a typical onset's, less WEAK_ONSET; each link between two onsets costs
    TIGHTNESS times the squared log ratio of its length to the period."""
    typical = typical_onset(onsets, period_frames)
    if typical <= 0:
        return np.zeros(0, dtype=int), 0.0
    score = onsets / typical - WEAK_ONSET
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


def usual_period_weight(period_s: float) -> float:
    return float(np.exp(-0.5 * (np.log(period_s / USUAL_PERIOD_S) / PERIOD_SPREAD) ** 2))


def period_and_starts(envelope: BreathEnvelope, onsets: np.ndarray,
                      period_hint: float | None = None) -> tuple[float | None, np.ndarray]:
    """The breathing period in s and the frames of the chain of onsets under it, or (None, []). With a
    `period_hint` (s) that period is taken as it is."""
    if period_hint is not None:
        starts, _ = track_cycle_starts(onsets, period_hint / envelope.hop)
        return period_hint, starts
    r = periodicity(envelope)
    lo = envelope.frames(PERIOD_RANGE_S[0])
    hi = min(envelope.frames(PERIOD_RANGE_S[1]), len(r) // 2)
    peaks, _ = signal.find_peaks(r[:hi + 1])
    candidates = peaks[(peaks >= lo) & (r[peaks] > 0)]
    best = (None, np.zeros(0, dtype=int), 0.0)
    for frames in candidates:
        starts, score = track_cycle_starts(onsets, float(frames))
        weight = score * r[frames] * usual_period_weight(frames * envelope.hop)
        if weight > best[2]:
            best = (float(frames * envelope.hop), starts, weight)
    return best[:2]
