"""Reference cycle preparation (docs/method.md section 3), checked sample by sample."""
import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.transforms as T

from lungkd.core.data.annotations import read_annotation_file
from lungkd.core.features.prepare import cycle_span, prepare_cycles, prepare_recording
from lungkd.core.features.inputs import PrepSettings
from lungkd.core.data.records import Cycle, Recording

SR = 16000
CLIP = 128000  # 8 s at 16 kHz
FADE = 1000  # 16000 / 16


def cyc(start, end, line=1):
    return Cycle("rec", 0, start, end, 0, 0, line)


def noise(seconds, sr=SR, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, int(seconds * sr)).astype(np.float32)


def faded(audio, n=FADE):
    """The reference's whole-recording fade, straight from torchaudio."""
    return T.Fade(fade_in_len=n, fade_out_len=n, fade_shape="linear")(torch.from_numpy(audio)).numpy()


def test_settings_validate_and_have_stable_distinct_keys():
    assert PrepSettings().key() == PrepSettings(16000, 8, "repeat", True).key()
    keys = {PrepSettings().key(), PrepSettings(48000).key(), PrepSettings(clip_seconds=4.0).key(),
            PrepSettings(pad="zero").key(), PrepSettings(fade=False).key()}
    assert len(keys) == 5
    for bad in ({"sample_rate": 22050}, {"pad": "reflect"}, {"clip_seconds": 0}):
        with pytest.raises(ValueError):
            PrepSettings(**bad)


@pytest.mark.parametrize("sr,clip_len,fade_len", [(16000, 128000, 1000), (48000, 384000, 3000)])
def test_clip_lengths_and_fade_lengths(sr, clip_len, fade_len):
    settings = PrepSettings(sample_rate=sr)
    assert (settings.clip_len, settings.fade_len) == (clip_len, fade_len)
    clips, problems = prepare_cycles(noise(12, sr), sr, [cyc(0.5, 2.0), cyc(2.0, 11.5)], settings)
    assert clips.shape == (2, clip_len) and clips.dtype == np.float32 and problems == []


def test_whole_recording_fade_values_at_exact_samples():
    audio = np.ones(10 * SR, dtype=np.float32)
    clips, _ = prepare_cycles(audio, SR, [cyc(0.0, 9.0), cyc(9.5, 10.0)], PrepSettings())
    head, tail = clips
    # Fade-in: linspace(0, 1, 1000): sample 0 is 0, slope 1/999, full level from sample 999.
    assert head[0] == 0.0
    np.testing.assert_allclose(head[:FADE], np.arange(FADE) / (FADE - 1), atol=1e-6)
    assert head[FADE - 1] == 1.0 and np.all(head[FADE:] == 1.0)
    # The last 0.5 s holds the recording's fade-out: last sample 0, rising 1/999 per sample backwards.
    np.testing.assert_allclose(tail[:8000][-FADE:], np.arange(FADE)[::-1] / (FADE - 1), atol=1e-6)
    assert tail[7999] == 0.0 and np.all(tail[:8000 - FADE] == 1.0)


def test_fades_match_torchaudio_fade_of_the_reference_bit_for_bit():
    audio = noise(3)
    clips, _ = prepare_cycles(audio, SR, [cyc(0.0, 3.0)], PrepSettings())
    ref = faded(audio)
    ref = T.Fade(fade_in_len=0, fade_out_len=FADE, fade_shape="linear")(
        torch.from_numpy(np.tile(ref, 3)[:CLIP])).numpy()
    np.testing.assert_array_equal(clips[0], ref)


def test_short_cycle_is_tiled_then_faded_out():
    audio = noise(6)
    n = int(1.3 * SR)  # 20800 samples
    clips, _ = prepare_cycles(audio, SR, [cyc(2.0, 3.3)], PrepSettings())
    clip = clips[0]
    np.testing.assert_array_equal(clip[:n], audio[2 * SR:2 * SR + n])  # inside the recording: no fade
    i = np.arange(CLIP - n - FADE)
    np.testing.assert_array_equal(clip[i], clip[i + n])  # period = the cycle length, up to the fade-out
    tiled = np.tile(audio[2 * SR:2 * SR + n], 7)[:CLIP]
    ramp = 1 - np.arange(FADE) / (FADE - 1)
    np.testing.assert_allclose(clip[-FADE:], tiled[-FADE:] * ramp, atol=1e-7)
    assert clip[-1] == 0.0 and clip[CLIP - FADE - 1] == tiled[CLIP - FADE - 1]


def test_long_cycle_keeps_its_first_8_seconds_unfaded():
    audio = noise(12)
    clips, _ = prepare_cycles(audio, SR, [cyc(1.0, 10.7)], PrepSettings())
    np.testing.assert_array_equal(clips[0], audio[SR:SR + CLIP])


def test_a_cycle_of_exactly_8_seconds_is_faded_out_as_in_the_reference():
    audio = noise(10)
    clip = prepare_cycles(audio, SR, [cyc(1.0, 9.0)], PrepSettings())[0][0]
    np.testing.assert_array_equal(clip[:-FADE], audio[SR:SR + CLIP - FADE])
    assert clip[-1] == 0.0


def test_slicing_truncates_start_times_times_rate():
    assert cycle_span(cyc(0.036, 2.279), SR, 10 * SR) == (576, 36464)
    assert cycle_span(cyc(0.0361, 1.0), SR, 10 * SR) == (577, 16000)  # int(577.6)


def test_cycle_that_ends_past_the_audio_is_clipped_to_it():
    audio = noise(5)
    clips, problems = prepare_cycles(audio, SR, [cyc(3.0, 7.0)], PrepSettings())
    chunk = faded(audio)[3 * SR:]  # 2 s, ending with the recording's fade-out
    np.testing.assert_array_equal(clips[0][:2 * SR], chunk)
    np.testing.assert_array_equal(clips[0][2 * SR:4 * SR], chunk)
    assert problems == []


def test_cycle_entirely_past_the_audio_gives_silence_and_a_warning_and_keeps_order():
    audio = noise(5)
    clips, problems = prepare_cycles(audio, SR, [cyc(1.0, 2.0, 1), cyc(6.0, 7.0, 2), cyc(2.0, 3.0, 3)],
                                     PrepSettings(), source="x.wav")
    assert clips.shape == (3, CLIP) and np.all(clips[1] == 0) and np.any(clips[0]) and np.any(clips[2])
    assert len(problems) == 1 and problems[0].path == "x.wav" and problems[0].line == 2
    assert "after the end of the audio (5.000 s)" in problems[0].message


def test_a_cycle_shorter_than_one_sample_gives_silence_and_says_why():
    clips, problems = prepare_cycles(noise(2), SR, [cyc(1.0, 1.00001, 4)], PrepSettings())
    assert not clips.any() and problems[0].line == 4 and "shorter than one sample" in problems[0].message


def test_zero_padding_centres_the_cycle_without_fade():
    audio = noise(6)
    clip = prepare_cycles(audio, SR, [cyc(2.0, 4.0)], PrepSettings(pad="zero"))[0][0]
    offset = (CLIP - 2 * SR) // 2  # 48000, as the reference's diff // 2
    np.testing.assert_array_equal(clip[offset:offset + 2 * SR], audio[2 * SR:4 * SR])
    assert not clip[:offset].any() and not clip[offset + 2 * SR:].any()


def test_fade_off_leaves_samples_untouched():
    audio = noise(4)
    clip = prepare_cycles(audio, SR, [cyc(0.0, 3.0)], PrepSettings(fade=False))[0][0]
    np.testing.assert_array_equal(clip, np.tile(audio[:3 * SR], 3)[:CLIP])


def test_recording_shorter_than_the_fade():
    audio = np.ones(600, dtype=np.float32)  # 37.5 ms < 62.5 ms of fade
    clip = prepare_cycles(audio, SR, [cyc(0.0, 1.0)], PrepSettings())[0][0]
    assert clip.shape == (CLIP,) and clip[0] == 0.0 and np.isfinite(clip).all()


def test_input_samples_are_not_modified():
    audio = noise(3)
    before = audio.copy()
    prepare_cycles(audio, SR, [cyc(0.0, 3.0)], PrepSettings())
    np.testing.assert_array_equal(audio, before)


def test_rate_mismatch_is_refused():
    with pytest.raises(ValueError, match="resample"):
        prepare_cycles(noise(1, 8000), 8000, [cyc(0, 1)], PrepSettings())


def test_prepare_recording_resamples_a_4khz_file_to_48khz(tmp_path):
    path = tmp_path / "101_1b1_Al_sc_Litt3200.wav"
    sf.write(path, 0.3 * np.sin(np.arange(4 * 4000) * 0.2), 4000, subtype="PCM_16")
    rec = Recording("101_1b1_Al_sc_Litt3200", "101", audio_path=path, cycles=(cyc(0.5, 2.0), cyc(2.0, 6.0, 2)))
    clips, problems = prepare_recording(rec, PrepSettings(sample_rate=48000))
    assert clips.shape == (2, 384000)
    assert [p.line for p in problems] == [] and np.abs(clips).max() <= 0.31


def _reference_clips(path, cycles, sr_out):
    """The BTS pipeline rebuilt from torchaudio: transforms.Resample, Fade, slice clipped to the resampled
    length in samples, first 8 s or tiled and faded out."""
    data, sr = sf.read(path, dtype="float32")
    audio = T.Resample(sr, sr_out)(torch.from_numpy(data)) if sr != sr_out else torch.from_numpy(data)
    n = sr_out // 16
    audio = T.Fade(fade_in_len=n, fade_out_len=n, fade_shape="linear")(audio).numpy()
    clip_len, fade_out = 8 * sr_out, T.Fade(fade_in_len=0, fade_out_len=n, fade_shape="linear")
    out = []
    for c in cycles:
        chunk = audio[min(int(c.start * sr_out), len(audio)):min(int(c.end * sr_out), len(audio))]
        out.append(chunk[:clip_len] if len(chunk) > clip_len else
                   fade_out(torch.from_numpy(np.tile(chunk, -(-clip_len // len(chunk)))[:clip_len])).numpy())
    return np.stack(out)


@pytest.mark.slow
@pytest.mark.parametrize("rate", [16000, 48000])
def test_every_real_recording_matches_the_reference_pipeline(icbhi_audio_dir, rate):
    """prepare_recording against the reference, on all ten real recordings at both model rates."""
    for path in sorted(icbhi_audio_dir.glob("*.wav")):
        cycles, _ = read_annotation_file(path.with_suffix(".txt"), path.stem)
        rec = Recording(path.stem, path.stem.split("_")[0], audio_path=path, cycles=tuple(cycles))
        clips, problems = prepare_recording(rec, PrepSettings(sample_rate=rate))
        np.testing.assert_allclose(clips, _reference_clips(path, cycles, rate), rtol=0, atol=1e-7,
                                   err_msg=path.name)
        assert problems == []


def test_a_cycle_past_the_end_is_clipped_to_the_resampled_length_in_samples(tmp_path):
    """44,101 samples at 44.1 kHz resample to ceil(16000 * 44101 / 44100) = 16001 samples at 16 kHz, while
    int(duration * 16000) = 16000: clipping in seconds would lose the last sample."""
    path = tmp_path / "101_1b1_Al_sc_Meditron.wav"
    sf.write(path, noise(44101 / 44100, sr=44100, seed=3), 44100, subtype="FLOAT")
    duration = 44101 / 44100
    assert int(duration * SR) == 16000
    cycle = Cycle("101_1b1_Al_sc_Meditron", 0, 0.5, 5.0, 0, 0, 1)  # ends 4 s after the audio
    clips, _ = prepare_recording(Recording(cycle.recording, "101", audio_path=path, cycles=(cycle,)), PrepSettings())
    reference = _reference_clips(path, [cycle], SR)
    np.testing.assert_allclose(clips, reference, rtol=0, atol=1e-7)
    assert cycle_span(cycle, SR, 16001) == (8000, 16001)  # the clip holds 8001 samples, the last one included


@pytest.mark.parametrize("settings", [PrepSettings(), PrepSettings(pad="zero"), PrepSettings(fade=False),
                                      PrepSettings(sample_rate=48000)], ids=["repeat", "zero", "no fade", "48k"])
def test_clips_prepared_batch_by_batch_are_the_clips_of_the_whole_recording(settings):
    """`clip_batches` resamples only the stretch each batch needs: the clips (fades at the recording's ends
    included) are those `prepare_cycles` cuts from the whole resampled recording, in any cycle order."""
    from lungkd.core.data.audio import resample
    from lungkd.core.features.prepare import clip_batches

    audio = noise(30, 4000)
    cycles = [cyc(12.0, 14.5, 1), cyc(0.0, 0.03, 2), cyc(0.0, 9.5, 3), cyc(29.98, 31.0, 4), cyc(2.5, 3.0, 5),
              cyc(31.0, 32.0, 6), cyc(20.0, 29.0, 7)]  # unordered; one past the end
    rate = settings.sample_rate
    whole, problems = prepare_cycles(resample(audio, 4000, rate), rate, cycles, settings)
    streamed, streamed_problems = np.full_like(whole, np.nan), []
    for batch in clip_batches(audio, 4000, cycles, settings, batch_size=3, source=None):
        assert len(batch.indices) <= 3
        streamed[batch.indices] = batch.clips
        streamed_problems += batch.problems
    np.testing.assert_array_equal(streamed, whole)
    assert [p.line for p in streamed_problems] == [p.line for p in problems] == [6]


@pytest.mark.parametrize("rate", [4000, 10000, 44100])
def test_the_clips_of_a_recording_analysed_are_the_reference_clips_within_float32_rounding(rate):
    """`lungkd predict` and the Studio cut the model's clips from audio resampled by numpy with the reference's taps
    (`recording_clips`), faster than torch's convolution: each clip is within 1e-6 of the clip training cuts, at the
    rates ICBHI's devices record at, fades and tiling included."""
    from lungkd.core.analysis.predict import recording_clips
    from lungkd.core.data.audio import DecodedAudio
    from lungkd.core.features.prepare import clip_batches

    audio = noise(30, rate, seed=rate)  # full-scale ±0.5
    cycles = [cyc(0.0, 2.5, 1), cyc(2.5, 11.0, 2), cyc(12.0, 14.5, 3), cyc(27.9, 30.0, 4)]
    settings = PrepSettings()
    reference = np.concatenate([b.clips for b in clip_batches(audio, rate, cycles, settings, 2)])
    analysed = np.concatenate([b.clips for b in recording_clips(DecodedAudio(audio, rate, []), cycles, settings, 2,
                                                                 "r.wav")])
    assert analysed.shape == reference.shape == (4, settings.clip_len)
    np.testing.assert_allclose(analysed, reference, rtol=0, atol=1e-6)
    assert np.abs(reference).max() > 0.25  # signal, not silence, is compared
