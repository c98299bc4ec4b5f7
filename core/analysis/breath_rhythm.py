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
from lungkd.core.analysis.breath_envelope import BreathEnvelope, periodicity
from lungkd.core.analysis.spectra import find_peaks

PERIOD_RANGE_S = (1.0, 8.0)
USUAL_PERIOD_S, PERIOD_SPREAD = 2.6, 0.5  # median ICBHI cycle; spread of the weighting, in log units
WEAK_ONSET = 0.4  # an onset weaker than this share of a typical one costs more than it gains
TIGHTNESS = 1.0  # the cost of a cycle length deviating from the period, per squared log ratio
GAP_COST = 2.0  # of bridging more than two periods without an onset (a pause, a cough, noise)


def typical_onset(onsets: np.ndarray, period_frames: float) -> float:
    """The height of a typical strong onset: the upper quartile of the peaks at least half a period apart."""
    peaks = find_peaks(onsets, distance=max(1, int(period_frames / 2)))
    heights = onsets[peaks]
    return float(np.percentile(heights, 75)) if len(heights) else 0.0


def track_cycle_starts(onsets: np.ndarray, period_frames: float) -> tuple[np.ndarray, float]:
    """Frames of the best-scoring chain of onsets about one period apart, and its score.

    Each onset scores its height over a typical onset's, less WEAK_ONSET; each link between two onsets costs
    TIGHTNESS times the squared log ratio of its length to the period. A link is at least half a period long, so
    the frames of each stretch of half a period depend only on frames before it: they are solved together."""
    typical = typical_onset(onsets, period_frames)
    if typical <= 0:
        return np.zeros(0, dtype=int), 0.0
    score = onsets / typical - WEAK_ONSET
    n = len(onsets)
    previous = np.full(n, -1)
    shortest, longest = max(1, int(0.5 * period_frames)), int(2 * period_frames) + 1
    lags = np.arange(longest, shortest - 1, -1)  # from the earliest candidate onset to the latest
    link_cost = TIGHTNESS * np.log(lags / period_frames) ** 2
    best_before = np.maximum.accumulate(score)  # the best score up to each frame, and where it is
    best_at = _first_best(score)
    # score at each frame's candidates, earliest first: frame f's row holds score[f - longest .. f - shortest]
    padded = np.concatenate((np.full(longest, -np.inf), score))
    for start in range(shortest, n, shortest):
        frames = np.arange(start, min(start + shortest, n))
        rows = np.lib.stride_tricks.sliding_window_view(padded[start:frames[-1] - shortest + longest + 1],
                                                        len(lags))  # a view: no copy of the candidates
        chained = rows - link_cost
        best = np.argmax(chained, axis=1)
        link, value = frames - lags[best], chained[np.arange(len(frames)), best]
        # a pause, cough or noise longer than two periods: bridge it at a fixed cost rather than lose the chain
        before = frames - longest - 1  # the last frame before the candidates
        bridged = (before >= 0) & (best_before[np.maximum(before, 0)] - GAP_COST > value)
        link = np.where(bridged, best_at[np.maximum(before, 0)], link)
        value = np.where(bridged, best_before[np.maximum(before, 0)] - GAP_COST, value)
        extend = value > 0  # a chain worth extending; otherwise a chain starts afresh here
        score[frames] += np.where(extend, value, 0.0)
        padded[longest + frames] = score[frames]
        previous[frames] = np.where(extend, link, -1)
        block_best = np.maximum.accumulate(score[frames])
        best_before[frames] = np.maximum(best_before[start - 1], block_best)
        best_at[frames] = np.where(best_before[frames] > best_before[start - 1], start + _first_best(score[frames]),
                                   best_at[start - 1])
    tail = n - int(period_frames)
    end = max(0, tail) + int(np.argmax(score[max(0, tail):]))
    chain = [end]
    while previous[chain[-1]] >= 0:
        chain.append(previous[chain[-1]])
    return np.array(chain[::-1]), float(score[end])


def _first_best(values: np.ndarray) -> np.ndarray:
    """For each position, where the first maximum of the values up to it is (np.argmax of each prefix)."""
    rising = np.concatenate(([True], values[1:] > np.maximum.accumulate(values)[:-1]))
    return np.maximum.accumulate(np.where(rising, np.arange(len(values)), 0))


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
    peaks = find_peaks(r[:hi + 1])
    candidates = peaks[(peaks >= lo) & (r[peaks] > 0)]
    best = (None, np.zeros(0, dtype=int), 0.0)
    for frames in candidates:
        starts, score = track_cycle_starts(onsets, float(frames))
        weight = score * r[frames] * usual_period_weight(frames * envelope.hop)
        if weight > best[2]:
            best = (float(frames * envelope.hop), starts, weight)
    return best[:2]
