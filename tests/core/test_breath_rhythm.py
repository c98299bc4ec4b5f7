"""The beat tracker of the segmentation (core.analysis.breath_rhythm.track_cycle_starts) against the same dynamic
programme written frame by frame: the blocked, vectorised version must pick the same chain with the same score."""
import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from lungkd.core.analysis.breath_rhythm import GAP_COST, TIGHTNESS, WEAK_ONSET, track_cycle_starts, typical_onset


def chain_frame_by_frame(onsets: np.ndarray, period: float) -> tuple[list[int], float]:
    """Each frame takes its best link (the earliest of equal ones) to an onset half to twice a period before,
    or bridges a gap longer than two periods at GAP_COST, and extends that chain when it is worth anything."""
    typical = typical_onset(onsets, period)
    if typical <= 0:
        return [], 0.0
    score = list(onsets / typical - WEAK_ONSET)
    previous = [-1] * len(score)
    shortest, longest = max(1, int(0.5 * period)), int(2 * period) + 1
    for frame in range(shortest, len(score)):
        link, value = frame - longest, -math.inf
        for lag in range(longest, shortest - 1, -1):
            if frame - lag >= 0:
                linked = score[frame - lag] - TIGHTNESS * math.log(lag / period) ** 2
                if linked > value:
                    link, value = frame - lag, linked
        before = frame - longest - 1
        if before >= 0:
            best = max(score[:before + 1])
            if best - GAP_COST > value:
                link, value = score.index(best), best - GAP_COST
        if value > 0:
            score[frame] += value
            previous[frame] = link
    tail = max(0, len(score) - int(period))
    end = tail + int(np.argmax(score[tail:]))
    chain = [end]
    while previous[chain[-1]] >= 0:
        chain.append(previous[chain[-1]])
    return chain[::-1], score[end]


def test_a_regular_breath_is_one_chain_one_period_apart():
    onsets = np.zeros(200)
    onsets[5::20] = 1.0  # a breath every 20 frames
    onsets[15::20] = 0.3  # the softer onset of the other phase, passed over
    chain, score = track_cycle_starts(onsets, 20.0)
    assert chain.tolist() == list(range(5, 200, 20))
    assert score > 0 and (chain.tolist(), score) == chain_frame_by_frame(onsets, 20.0)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 10.0, allow_nan=False), min_size=8, max_size=160),
       st.floats(2.0, 30.0))
def test_the_blocked_tracker_picks_the_chain_the_frame_by_frame_one_picks(onsets, period):
    onsets = np.array(onsets)
    chain, score = track_cycle_starts(onsets, period)
    expected_chain, expected_score = chain_frame_by_frame(onsets, period)
    assert chain.tolist() == expected_chain
    assert math.isclose(score, expected_score, rel_tol=1e-12, abs_tol=1e-12)
