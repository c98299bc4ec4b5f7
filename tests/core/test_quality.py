"""The quality check (core/analysis/quality.py): each defect inserted at a known place into generated
recordings of every device is found there and nowhere else, clean recordings have no finding, long recordings
are measured in bounded memory, and on the 10 shared real recordings the clipped ones are marked.

The recordings are the generator's with its own hum and friction turned off (it plants both at places it
does not report); the defects are then added where the test says (core/data/synth.py's `with_*`), through a
real WAV file where the sample format matters.
"""
import tracemalloc
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from lungkd.core.analysis import band_levels
from lungkd.core.analysis.quality import (CLIPPING, FRICTION, GOOD, HEART, HUM, LOW_SNR, POOR, TOO_QUIET, TOO_SHORT,
                                          WARNING, assess_quality)
from lungkd.core.data.synth import (DEVICES, at_loud_level, first_of_each_device, plan_dataset, render_recording,
                                    with_clipping, with_friction, with_heart_sounds, with_hum, with_noise)

SEED = 3


def clean_recordings(per_device: int = 1, seed: int = SEED):
    """(device, samples, sample rate, annotated spans) of generated recordings without hum or friction."""
    _, plans = plan_dataset(120, seed)
    chosen = first_of_each_device(plans, per_device)
    assert {plan.patient.device.name for _, plan in chosen} == set(DEVICES)
    for index, plan in chosen:
        plan.patient = replace(plan.patient, traits=replace(plan.patient.traits, hum_hz=0.0, friction_rate=0.0))
        edges = plan.breathing.annotated_edges
        yield plan.patient.device.name, render_recording(plan, seed, index), plan.sample_rate, \
            list(zip(edges[:-1], edges[1:]))


@pytest.fixture(scope="module")
def recordings():
    return list(clean_recordings())


def through_wav(samples: np.ndarray, sr: int, tmp_path, subtype: str = "PCM_16") -> np.ndarray:
    path = tmp_path / "recording.wav"
    sf.write(path, samples, sr, subtype=subtype)
    return sf.read(path, dtype="float32")[0]


def kinds(span) -> set[str]:
    return {f.kind for f in span.findings}


def cycles_touching(quality, start: float, end: float):
    return [c for c in quality.cycles if c.start <= end and c.end >= start]


def cycles_apart(quality, start: float, end: float):
    return [c for c in quality.cycles if c.end <= start or c.start >= end]


# ---------------------------------------------------------------- clean recordings: nothing found

def test_clean_generated_recordings_of_every_device_have_no_finding():
    for device, samples, sr, spans in clean_recordings(per_device=2, seed=5):
        quality = assess_quality(samples, sr, spans)
        assert quality.verdict == GOOD, (device, quality.recording.reasons)
        assert all(c.verdict == GOOD for c in quality.cycles), device
        assert len(quality.cycles) == len(spans)
        assert quality.measures.snr_db > 10 and quality.measures.hum_hz is None


# ---------------------------------------------------------------- each defect, where it was put

def test_clipping_is_found_where_the_recorder_reached_its_limit(recordings, tmp_path):
    for device, samples, sr, spans in recordings:
        clipped = through_wav(with_clipping(samples, sr, 6.0, 8.0), sr, tmp_path)  # two seconds far too loud
        quality = assess_quality(clipped, sr, spans)
        finding = next(f for f in quality.recording.findings if f.kind == CLIPPING)
        assert 6.0 - 0.05 <= finding.start and finding.end <= 8.0 + 0.05, device
        assert "clipped" in finding.reason and "too hard" in finding.reason
        loudest = 6.0 + int(np.argmax(np.abs(samples[int(6 * sr):int(8 * sr)]))) / sr
        assert any(f.kind == CLIPPING and f.severity == POOR
                   for c in cycles_touching(quality, loudest, loudest) for f in c.findings), device
        assert not any(CLIPPING in kinds(c) for c in cycles_apart(quality, 6.0, 8.0))
        assert CLIPPING not in kinds(assess_quality(through_wav(samples, sr, tmp_path), sr).recording)


@pytest.mark.parametrize("level_dbfs, severity", [(-55.0, WARNING), (-66.0, POOR)])
def test_a_recording_made_with_too_little_gain_is_too_quiet(recordings, tmp_path, level_dbfs, severity):
    for device, samples, sr, spans in recordings:
        quiet = through_wav(at_loud_level(samples, sr, level_dbfs), sr, tmp_path)
        quality = assess_quality(quiet, sr, spans)
        finding = next(f for f in quality.recording.findings if f.kind == TOO_QUIET)
        assert finding.severity == severity and "too quiet" in finding.reason, device
        assert finding.value == pytest.approx(level_dbfs, abs=2.5)
        assert all(TOO_QUIET in kinds(c) for c in quality.cycles)  # the gain is the recording's


def test_friction_bursts_are_found_where_they_were_put_and_nowhere_else(recordings):
    rng = np.random.default_rng(0)
    bursts = [(3.0, 0.25), (7.0, 0.4)]
    for device, samples, sr, spans in recordings:
        quality = assess_quality(with_friction(samples, sr, bursts, rng), sr, spans)
        finding = next(f for f in quality.recording.findings if f.kind == FRICTION)
        assert finding.start >= 3.0 - 0.1 and finding.end <= 7.4 + 0.1, device
        assert finding.severity == WARNING and "2 bursts" in finding.reason and "crackles" in finding.reason
        for start, length in bursts:
            assert all(FRICTION in kinds(c) for c in cycles_touching(quality, start + 0.1, start + length - 0.1))
        quiet_cycles = [c for c in quality.cycles if all(c.end <= s or c.start >= s + n for s, n in bursts)]
        assert quiet_cycles and not any(FRICTION in kinds(c) for c in quiet_cycles), device


@pytest.mark.parametrize("noise_over_breath, severity", [(1.0, WARNING), (4.0, POOR)])
def test_breath_sounds_buried_in_steady_noise_have_a_low_signal_to_noise_ratio(recordings, noise_over_breath,
                                                                              severity):
    rng = np.random.default_rng(1)
    for device, samples, sr, spans in recordings:
        quality = assess_quality(with_noise(samples, sr, rng, noise_over_breath), sr, spans)
        finding = next(f for f in quality.recording.findings if f.kind == LOW_SNR)
        assert finding.severity == severity and "background noise" in finding.reason, device
        assert (finding.start, finding.end) == (0.0, round(len(samples) / sr, 3))
        assert sum(LOW_SNR in kinds(c) for c in quality.cycles) >= len(spans) / 2


def test_heart_sounds_louder_than_the_breath_in_its_own_band_are_found(recordings):
    rng = np.random.default_rng(2)
    for device, samples, sr, spans in recordings:
        quality = assess_quality(with_heart_sounds(samples, sr, rng, 40), sr, spans)
        finding = next(f for f in quality.recording.findings if f.kind == HEART)
        assert finding.severity == POOR and finding.value >= 10 and "heart sounds" in finding.reason, device
        assert sum(HEART in kinds(c) for c in quality.cycles) >= len(spans) / 2
        assert HUM not in kinds(quality.recording)  # the heart's own rhythm is no mains hum
        faint = assess_quality(with_heart_sounds(samples, sr, rng, 2), sr, spans)
        assert HEART not in kinds(faint.recording), device


@pytest.mark.parametrize("mains", [50.0, 60.0])
@pytest.mark.parametrize("hum_over_breath_db, severity", [(-15.0, WARNING), (3.0, POOR)])
def test_mains_hum_is_found_with_its_frequency(recordings, mains, hum_over_breath_db, severity):
    long_enough = [r for r in recordings if len(r[1]) / r[2] >= 12]  # two 8 s segments
    assert len(long_enough) >= 3
    for device, samples, sr, spans in long_enough:
        quality = assess_quality(with_hum(samples, sr, mains, hum_over_breath_db), sr, spans)
        finding = next(f for f in quality.recording.findings if f.kind == HUM)
        assert finding.severity == severity and f"{mains:.0f} Hz" in finding.reason, device
        assert quality.measures.hum_hz == mains
        assert quality.measures.hum_to_breath_db == pytest.approx(hum_over_breath_db, abs=4)
        assert all(HUM in kinds(c) for c in quality.cycles)


def test_digital_silence_says_nothing_was_recorded():
    quality = assess_quality(np.zeros(12 * 8000, np.float32), 8000, [(0.0, 3.0)])
    quiet = next(f for f in quality.recording.findings if f.kind == TOO_QUIET)
    assert quiet.severity == POOR and "nothing was recorded" in quiet.reason
    assert quality.cycles[0].verdict == POOR and {CLIPPING, HUM, HEART, FRICTION}.isdisjoint(kinds(quality.recording))


def test_short_recordings_and_cycles_are_marked_too_short(recordings):
    _, samples, sr, _ = recordings[0]
    assert next(f for f in assess_quality(samples[:2 * sr], sr).recording.findings
                if f.kind == TOO_SHORT).severity == POOR
    six = assess_quality(samples[:6 * sr], sr, [(0.5, 1.2), (1.2, 4.0)])
    assert next(f for f in six.recording.findings if f.kind == TOO_SHORT).severity == WARNING
    assert "two breaths" in six.recording.findings[0].reason
    assert TOO_SHORT in kinds(six.cycles[0]) and TOO_SHORT not in kinds(six.cycles[1])


# ---------------------------------------------------------------- long recordings, in bounded memory

def test_the_measures_are_the_same_whatever_the_block_size(recordings, monkeypatch):
    _, samples, sr, _ = recordings[1]
    bands = ((150.0, 1200.0), (600.0, 4000.0))
    whole, blocks = (band_levels.measure_bands(samples, sr, bands, block_frames=n) for n in (10_000, 97))
    np.testing.assert_allclose(blocks.power, whole.power, rtol=1e-4)
    np.testing.assert_allclose(blocks.flatness_db, whole.flatness_db, rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(blocks.times, whole.times)
    spectrum, in_blocks = (band_levels.long_term_spectrum(samples, sr, block_segments=n) for n in (100, 1))
    assert spectrum.segments == in_blocks.segments >= 3
    np.testing.assert_allclose(in_blocks.power, spectrum.power, rtol=1e-4, atol=1e-12)
    monkeypatch.setattr("lungkd.core.analysis.quality.READ_BLOCK", 4096)
    assert assess_quality(samples, sr).measures == assess_quality(samples, sr).measures


def test_a_long_recording_is_measured_in_bounded_memory(recordings):
    _, samples, sr, _ = next(r for r in recordings if r[2] >= 22050)
    hour_part = np.tile(samples.astype(np.float32), int(600 / (len(samples) / sr)) + 1)  # ten minutes
    tracemalloc.start()
    quality = assess_quality(hour_part, sr)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert quality.duration >= 600
    assert peak < 0.5 * hour_part.nbytes + 60e6, f"{peak / 1e6:.0f} MB for {hour_part.nbytes / 1e6:.0f} MB of audio"


# ---------------------------------------------------------------- the shared real recordings

def test_real_recordings_the_clipped_ones_are_marked_and_the_clean_ones_pass(icbhi_audio_dir):
    """Six of the ten sit at full scale in flat tops of up to 25 ms (the 107 session, and 103 briefly);
    105 and 106 reach their peak once."""
    verdicts = {}
    for path in sorted(icbhi_audio_dir.glob("*.wav")):
        samples, sr = sf.read(path, dtype="float32")
        quality = assess_quality(samples, sr)
        verdicts[path.stem[:10]] = (quality.verdict, kinds(quality.recording))
    assert verdicts["105_1b1_Tc"] == verdicts["106_2b1_Pl"] == verdicts["106_2b1_Pr"] == (GOOD, set())
    assert verdicts["103_2b2_Ar"] == (WARNING, {CLIPPING})
    for name in ("107_2b3_Al", "107_2b3_Ar", "107_2b3_Lr", "107_2b3_Pl", "107_2b3_Pr"):
        assert verdicts[name][0] == POOR and CLIPPING in verdicts[name][1], name
