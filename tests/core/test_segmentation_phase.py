"""Which breathing phase the automatic segmentation starts its cycles at (core/analysis/breath_phase.py), how
sure it is, and how a user steers it: a breathing period they give, and cycles shifted to the other phase.

Synthetic recordings whose inspiration and expiration differ as at the chest wall (expiration softer, darker)
and as at the trachea (a silent gap after inspiration, expiration louder and brighter), of every device; and the
real recordings: the measurement behind the rule, and the tracheal one.
"""
import numpy as np
import pytest
import soundfile as sf

from breath_recordings import TRACHEA, scores_by_device, synthetic_recordings, total
from lungkd.core.analysis.breath_envelope import breath_envelope, steepness
from lungkd.core.analysis.breath_phase import other_onsets, phase_evidence
from lungkd.core.analysis.segmentation import (AUTOMATIC, Segmentation, fixed_windows, other_phase_problem,
                                               score_segmentation, segment_cycles, shift_to_other_phase)
from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.errors import LungKDError


@pytest.fixture(scope="module")
def chest():
    return synthetic_recordings(distinct_phases=True, chest_only=True)


@pytest.fixture(scope="module")
def trachea():
    """The same recordings, rendered at the trachea."""
    return synthetic_recordings(distinct_phases=True, at_trachea=True)


@pytest.fixture(scope="module")
def many():
    """Five chest recordings of each device, and the same rendered at the trachea."""
    return (synthetic_recordings(5, distinct_phases=True, chest_only=True)
            + synthetic_recordings(5, distinct_phases=True, at_trachea=True))


def segmented(recording, **options) -> Segmentation:
    return segment_cycles(recording.samples, recording.sr, **options)


# ---------------------------------------------------------------- the phase the cycles start at

def test_at_the_chest_wall_cycles_start_at_inspiration_the_stronger_phase(chest):
    assert all(r.location != TRACHEA for r in chest)
    for device, score in scores_by_device(chest).items():
        assert score.f1 >= 0.95, device
    for r in chest:
        segmentation = segmented(r, location=r.location)
        assert segmentation.phase_confidence >= 0.8 and not segmentation.phase_uncertain
        assert not segmentation.phase_note
        assert r.score(shift_to_other_phase(segmentation).spans).f1 < 0.3  # the other phase: every boundary off


def test_at_the_trachea_cycles_start_at_inspiration_the_weaker_phase_when_the_site_is_known(trachea):
    assert all(r.location == TRACHEA for r in trachea)
    assert total(scores_by_device(trachea).values()).f1 >= 0.85
    for r in trachea[:4]:  # without the site, taken for the chest wall: the cycles start at expiration
        assert r.score(segmented(r).spans).f1 < 0.4 < r.score(segmented(r, location=TRACHEA).spans).f1


def test_recordings_that_begin_after_inspiration_start_their_first_cycle_at_the_next_inspiration(many):
    """The generator starts each recording anywhere in its first breath; those starting in expiration or the
    pause have their first boundary at the next inspiration, not at the expiration heard first: all of them at
    the chest wall, most at the trachea (where the chain of onsets can begin at the wrong phase)."""
    def late(r) -> bool:
        b = r.plan.breathing
        return -b.edges[0] >= b.insp[0] * (b.edges[1] - b.edges[0])

    def first_right(r) -> bool:
        found = next(start for start, _ in segmented(r, location=r.location).spans if start > 0.5)
        return abs(found - next(start for start, _ in r.spans if start > 0.5)) <= 0.5

    chest = [first_right(r) for r in many if late(r) and r.location != TRACHEA]
    trachea = [first_right(r) for r in many if late(r) and r.location == TRACHEA]
    assert len(chest) >= 8 and len(trachea) >= 8 and len({r.device for r in many if late(r)}) == 4
    assert all(chest) and np.mean(trachea) >= 0.75, trachea


def alike_phases(sr: int = 4000, period: float = 3.0, seconds: float = 24.0) -> np.ndarray:
    """Two identical sounds a breath, half a period apart: noise of 150-1000 Hz under a hump each."""
    rng = np.random.default_rng(5)
    t = np.arange(int(seconds * sr)) / sr
    spectrum = np.fft.rfft(rng.normal(0, 1, len(t)))
    f = np.fft.rfftfreq(len(t), 1 / sr)
    noise = np.fft.irfft(spectrum * ((f > 150) & (f < 1000)), len(t))
    hump = np.sin(np.pi * ((t / (period / 2)) % 1) / 0.8).clip(0) * ((t / (period / 2)) % 1 < 0.8)
    return (0.2 * noise * (hump + 0.02) / noise.std()).astype(np.float32)


def test_a_recording_whose_phases_sound_alike_says_its_phase_is_uncertain_and_why(chest):
    alike = segment_cycles(alike_phases(), 4000, period_hint=3.0)
    assert alike.method == AUTOMATIC and alike.phase_uncertain and alike.phase_confidence < 0.7
    assert "may start at expiration" in alike.phase_note and "site is unknown" in alike.phase_note
    at_chest = segment_cycles(alike_phases(), 4000, location="Pl", period_hint=3.0)
    assert "at the chest wall inspiration is the stronger phase" in at_chest.phase_note
    sure = segmented(chest[0], location=chest[0].location)
    assert all(c.confidence <= s.confidence for c, s in zip(alike.cycles, sure.cycles))  # the phase counts in each


# ---------------------------------------------------------------- confidence

def test_the_confidence_predicts_boundary_error(many):
    """The recordings above the median confidence have the higher F1, and the cycles above the median cycle
    confidence have both bounds right (within 0.5 s of an annotated boundary or a file end) more often."""
    outcomes = [(segmented(r, location=r.location), r) for r in many]
    middle = np.median([s.confidence for s, _ in outcomes])
    above = total(r.score(s.spans) for s, r in outcomes if s.confidence > middle)
    below = total(r.score(s.spans) for s, r in outcomes if s.confidence <= middle)
    assert above.f1 > below.f1 + 0.03

    def right(t: float, r) -> bool:
        return t < 0.5 or t > r.duration - 0.5 or any(abs(t - b) <= 0.5 for span in r.spans for b in span)

    cycles = [(c.confidence, right(c.start, r) and right(c.end, r)) for s, r in outcomes for c in s.cycles]
    middle = np.median([sure for sure, _ in cycles])
    assert (np.mean([ok for sure, ok in cycles if sure > middle])
            > np.mean([ok for sure, ok in cycles if sure <= middle]) + 0.03)


# ---------------------------------------------------------------- steering: a period, the other phase

def test_a_breathing_period_given_is_the_period_the_cycles_follow(chest):
    r = next(r for r in chest if np.median([end - start for start, end in r.spans]) < 3.5)
    breath = float(np.median([end - start for start, end in r.spans]))
    at_breath = segmented(r, location=r.location, period_hint=breath)
    assert at_breath.period == pytest.approx(breath, abs=1e-3) and r.score(at_breath.spans).f1 >= 0.9
    twice = segmented(r, location=r.location, period_hint=2 * breath)
    assert twice.period == pytest.approx(2 * breath, abs=1e-3)
    assert np.median([c.end - c.start for c in twice.cycles[1:-1]]) == pytest.approx(2 * breath, rel=0.2)


@pytest.mark.parametrize("period", [0.5, 9.0])
def test_a_breathing_period_outside_what_is_looked_for_is_refused_naming_the_range(chest, period):
    with pytest.raises(LungKDError, match=f"a breathing period of {period:g} s is outside the 1-8 s.*between 1 and 8 s"):
        segmented(chest[0], period_hint=period)


def test_shifting_starts_every_cycle_at_the_other_phase_and_shifting_back_restores_them(trachea):
    r = trachea[0]
    unsure_of_site = segmented(r)  # taken for the chest wall: starts at expiration
    shifted = shift_to_other_phase(unsure_of_site)
    assert r.score(unsure_of_site.spans).f1 < 0.4 < 0.85 <= r.score(shifted.spans).f1
    bounds = sorted({t for c in shifted.cycles for t in (c.start, c.end)} - {0.0, round(r.duration, 3)})
    assert bounds == [o.time for o in unsure_of_site.other_onsets]
    assert shifted.shifted and shifted.phase_confidence == pytest.approx(1 - unsure_of_site.phase_confidence)
    assert shifted.phase_uncertain and "shifted to start at the other phase" in shifted.phase_note
    assert all(c.confidence < 0.5 for c in shifted.cycles)  # the segmentation still thinks otherwise
    assert shift_to_other_phase(shifted) == unsure_of_site
    assert other_phase_problem(unsure_of_site) is None and other_phase_problem(shifted) is None


def test_fixed_windows_have_no_other_phase_to_shift_to():
    with pytest.raises(LungKDError, match="no other breathing phase to start at: no breathing heard.*Fix: segment"):
        shift_to_other_phase(fixed_windows(10.0, "no breathing heard"))
    said = other_phase_problem(fixed_windows(10.0, "no breathing heard"))  # what the Studio's menu says, unshifted
    assert "no other breathing phase to start at: no breathing heard." in str(said) and "Fix: segment" in str(said)


# ---------------------------------------------------------------- the real recordings

def annotated_onsets(path) -> tuple[np.ndarray, np.ndarray]:
    """A real recording's envelope frames at its annotated inspiration onsets (the whole cycles') and the
    envelope."""
    samples, sr = sf.read(path, dtype="float32")
    cycles, _ = read_annotation_file(path.with_suffix(".txt"))
    envelope = breath_envelope(samples, sr)
    return np.array([int(np.argmin(np.abs(envelope.times - c.start))) for c in cycles[1:]]), envelope


def test_on_the_annotated_cycles_inspiration_is_the_stronger_phase_at_the_chest_wall_and_the_weaker_at_the_trachea(
        icbhi_audio_dir):
    """The measurement behind the rule: inspiration against the other phase, in loudness and the pause before."""
    stronger = {}
    for path in sorted(icbhi_audio_dir.glob("*.wav")):
        starts, envelope = annotated_onsets(path)
        period = float(np.median(np.diff(starts)))
        stronger[path.stem] = float(np.median(phase_evidence(envelope, starts,
                                                             other_onsets(steepness(envelope), starts, period))))
    tracheal = stronger.pop("105_1b1_Tc_sc_Meditron")
    assert tracheal < -5  # expiration, after the gap, is far the stronger
    assert sum(dB > 1 for dB in stronger.values()) == 8 and all(dB > -1 for dB in stronger.values()), stronger


def test_the_real_tracheal_recording_starts_at_inspiration_once_its_site_is_known(icbhi_audio_dir):
    path = icbhi_audio_dir / "105_1b1_Tc_sc_Meditron.wav"
    samples, sr = sf.read(path, dtype="float32")
    reference = [(c.start, c.end) for c in read_annotation_file(path.with_suffix(".txt"))[0]]
    known, unknown = segment_cycles(samples, sr, location="Tc"), segment_cycles(samples, sr)
    assert score_segmentation(reference, known.spans, len(samples) / sr).f1 >= 0.9 and not known.phase_uncertain
    assert score_segmentation(reference, unknown.spans, len(samples) / sr).f1 <= 0.2  # at expiration, as before
    assert score_segmentation(reference, shift_to_other_phase(unknown).spans, len(samples) / sr).f1 >= 0.9


def test_the_real_recording_whose_phases_are_about_as_strong_is_the_one_marked_uncertain(icbhi_audio_dir):
    uncertain = []
    for path in sorted(icbhi_audio_dir.glob("*.wav")):
        samples, sr = sf.read(path, dtype="float32")
        segmentation = segment_cycles(samples, sr, location=path.stem.split("_")[2])
        if segmentation.phase_uncertain:
            uncertain.append(path.stem)
            assert "about as strong" in segmentation.phase_note
    assert uncertain == ["103_2b2_Ar_mc_LittC2SE"]
