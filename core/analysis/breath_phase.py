"""Which breathing phase is inspiration: ICBHI's annotators start a cycle at the onset of inspiration.

The rhythm's chain holds the onsets of the phase whose onsets are strongest; the other phase's onset in each of
its cycles is the steepest rise between them. Of the two phases, the stronger is the one that is louder over its
stretch and follows the deeper pause (`phase_evidence`). Measured on the annotated cycles of the ten real ICBHI
recordings (the annotated start against the steepest rise in the middle of the cycle):
- at the chest wall inspiration is the stronger phase in 8 of the 9 recordings (three devices), by a median
  1.5-11.0 dB per recording, and in 47 of their 54 whole cycles; in 103_2b2_Ar the phases are about as strong
  (-0.5 dB);
- at the trachea (105_1b1_Tc_sc_Meditron) expiration is the stronger, by 10.9 dB, in all 6 cycles: it follows
  the silent gap after inspiration and is louder and about 5 dB brighter, as textbooks describe tracheal sounds.
Loudness and pause decided the rule; colour did not: at the chest wall the quieter expiration takes the
background's colour, brighter or darker by device. So: at the chest wall inspiration is the stronger phase, at
the trachea the weaker; where the site is unknown the chest wall is assumed (86 % of ICBHI's recordings). Where
the phases are about as strong, the chain's own onsets (the strongest) are taken for the stronger phase unless
the other is stronger by PHASE_MARGIN_DB, and the choice is reported as uncertain.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lungkd.core.analysis.breath_envelope import ONSET_BEFORE_S, RISE_S, BreathEnvelope

GUARD = 0.2  # of a period: the other phase's onset lies at least this far from the chain's onsets
PHASE_MARGIN_DB = 1.0  # the chain's onsets are the stronger phase unless the other is stronger by this much
PHASE_SCALE_DB = 2.0  # a cycle whose phases differ by this much beyond the margin votes about 73 % for one
PHASE_SURE = 0.7  # a phase choice less sure than this is uncertain, and the segmentation says so
REFINE_SHARE = 0.2  # an onset is where the envelope has risen this share from the pause to the phase
PAUSE_AFTER_S = 0.06  # the pause before an onset is looked for up to this long after it (it is found late)
TRACHEA = "Tc"  # ICBHI's location code for the trachea; the others are on the chest wall


@dataclass(frozen=True)
class PhaseChoice:
    chain_is_inspiration: bool  # else the cycles start at the other phase's onsets
    sureness: float  # 0.5-1: how sure the cycles then start at inspiration
    reason: str  # why the choice is uncertain; "" when it is not


def _strongest(rises: np.ndarray, lo: int, hi: int) -> int | None:
    lo, hi = max(lo, 0), min(hi, len(rises))
    if hi <= lo or rises[lo:hi].max() <= 0:
        return None
    return lo + int(np.argmax(rises[lo:hi]))


def other_onsets(rises: np.ndarray, starts: np.ndarray, period_frames: float) -> list[int | None]:
    """The other phase's onset before the first start, in each cycle between starts, and after the last start
    (len(starts) + 1 entries, None where nothing rises): the steepest rise at least GUARD of a period from the
    starts, within a period of them."""
    guard, period = int(GUARD * period_frames), int(period_frames)
    bounds = [(starts[0] - period, starts[0] - guard + 1)]
    bounds += [(a + guard, b - guard + 1) for a, b in zip(starts[:-1], starts[1:])]
    bounds.append((starts[-1] + guard, starts[-1] + period))
    return [_strongest(rises, lo, hi) for lo, hi in bounds]


def _pause_before(values: np.ndarray, frame: int, before: int, after: int) -> float:
    return float(values[max(0, frame - before):frame + after].min())


def phase_evidence(envelope: BreathEnvelope, starts: np.ndarray, others: list[int | None]) -> np.ndarray:
    """For each cycle between starts that holds an onset of the other phase: how much stronger the chain's phase
    is, in dB: its mean loudness less the other's, plus how much deeper the pause before it is."""
    e = envelope.values
    before, after = envelope.frames(ONSET_BEFORE_S), envelope.frames(PAUSE_AFTER_S)
    return np.array([e[a:o].mean() - e[o:b].mean()
                     + _pause_before(e, o, before, after) - _pause_before(e, a, before, after)
                     for a, o, b in zip(starts[:-1], others[1:-1], starts[1:]) if o is not None])


def choose_phase(evidence: np.ndarray, location: str | None) -> PhaseChoice:
    """Which onsets start inspiration, how sure that is, and why not where it is not (see the module's text)."""
    if len(evidence) < 2:
        return PhaseChoice(True, 0.5, "only one breathing phase is heard, so it was taken for inspiration; the "
                                      "cycles may start at expiration.")
    votes = 1 / (1 + np.exp(-(evidence + PHASE_MARGIN_DB) / PHASE_SCALE_DB))  # each cycle's: the chain's is stronger
    chain_stronger = float(votes.mean())
    tracheal = location == TRACHEA
    sureness = max(chain_stronger, 1 - chain_stronger)
    reason = ""
    if sureness < PHASE_SURE:
        site = ("at the trachea inspiration is the softer phase" if tracheal else
                "at the chest wall inspiration is the stronger phase" if location else
                "the recording site is unknown; at the chest wall, taken here, inspiration is the stronger phase "
                "(at the trachea the softer)")
        reason = (f"inspiration and expiration are about as strong here (the cycles' phases differ by "
                  f"{abs(float(np.median(evidence))):.1f} dB in loudness and pause), so the cycles may start at "
                  f"expiration; {site}.")
    return PhaseChoice((chain_stronger >= 0.5) != tracheal, round(sureness, 3), reason)


def refine_onsets(envelope: BreathEnvelope, frames: np.ndarray) -> np.ndarray:
    """Each onset moved to where the sound starts: where the envelope has risen REFINE_SHARE of the way from
    the quietest moment of the ONSET_BEFORE_S before it to its level RISE_S after it. Onsets are found where they
    are strongest, on the real recordings a median 0.16 s after the annotated boundary; moved, 0.01 s before."""
    e = envelope.values
    before, after = envelope.frames(ONSET_BEFORE_S), envelope.frames(RISE_S)
    moved = []
    for frame in frames:
        lo = max(0, frame - before) + int(np.argmin(e[max(0, frame - before):frame + 1]))
        level = e[lo] + REFINE_SHARE * (e[min(len(e) - 1, frame + after)] - e[lo])
        risen = np.flatnonzero(e[lo:frame + 1] >= level)
        moved.append(lo + int(risen[0]) if len(risen) else int(frame))
    return np.array(moved, dtype=int)
