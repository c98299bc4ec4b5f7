"""Decoding every format the product accepts, to float32 mono at any rate from 4 kHz, and resampling."""
import sys

import numpy as np
import pytest
import soundfile as sf

from lungkd.core.data.audio import STRETCH_EXACT_SUBTYPES, SamplesOnDisk, decode_audio, in_memory, load_audio, open_audio
from lungkd.core.errors import AudioError

SR = 8000


def tone(seconds=1.0, sr=SR, freq=440.0, amplitude=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float64)


# (extension, format, subtype, largest error allowed against the written signal)
LOSSLESS = [
    (".wav", "WAV", "PCM_U8", 1 / 128),  # 8-bit wav is unsigned
    (".wav", "WAV", "PCM_16", 1 / 2 ** 15),
    (".wav", "WAV", "PCM_24", 1 / 2 ** 23),
    (".wav", "WAV", "PCM_32", 1e-7),  # below float32 resolution of the value
    (".wav", "WAV", "FLOAT", 1e-7),
    (".wav", "WAV", "DOUBLE", 1e-7),
    (".flac", "FLAC", "PCM_16", 1 / 2 ** 15),
    (".flac", "FLAC", "PCM_24", 1 / 2 ** 23),
]


@pytest.mark.parametrize("ext,fmt,subtype,tolerance", LOSSLESS, ids=[f"{f}-{s}" for _, f, s, _ in LOSSLESS])
def test_lossless_formats_decode_to_the_written_samples(tmp_path, ext, fmt, subtype, tolerance):
    path = tmp_path / f"a{ext}"
    signal = tone()
    sf.write(path, signal, SR, format=fmt, subtype=subtype)
    decoded = decode_audio(path)
    assert decoded.sample_rate == SR and decoded.samples.dtype == np.float32 and decoded.samples.ndim == 1
    assert len(decoded.samples) == len(signal) and decoded.warnings == []
    assert np.abs(decoded.samples - signal).max() <= tolerance


def test_ogg_vorbis_decodes_close_to_the_signal(tmp_path):
    path = tmp_path / "a.ogg"
    signal = tone(2.0, sr=16000)
    sf.write(path, signal, 16000, format="OGG", subtype="VORBIS")
    decoded = decode_audio(path)
    assert decoded.sample_rate == 16000 and decoded.samples.dtype == np.float32
    assert abs(len(decoded.samples) - len(signal)) <= 1
    n = min(len(signal), len(decoded.samples))
    assert np.corrcoef(decoded.samples[:n], signal[:n])[0, 1] > 0.99  # lossy, but the same sound


STRETCHES = [(".wav", "WAV", "PCM_U8", 1), (".wav", "WAV", "PCM_16", 1), (".wav", "WAV", "PCM_24", 2),
             (".wav", "WAV", "PCM_32", 3), (".flac", "FLAC", "PCM_16", 2), (".flac", "FLAC", "PCM_24", 1)]


@pytest.mark.parametrize("ext,fmt,subtype,channels", STRETCHES, ids=[f"{f}-{s}-{c}ch" for _, f, s, c in STRETCHES])
def test_a_stretch_read_from_an_integer_recording_is_that_stretch_of_the_whole_decoded_to_the_bit(
        tmp_path, ext, fmt, subtype, channels):
    """What `lungkd predict` reads a batch at a time, beside its helper finding the cycles: the same float32."""
    path = tmp_path / f"a{ext}"
    rng = np.random.default_rng(7)
    sf.write(path, rng.uniform(-1, 1, (3 * SR + 17, channels)), SR, format=fmt, subtype=subtype)
    whole = decode_audio(path)
    opened = open_audio(path)
    assert isinstance(opened.samples, SamplesOnDisk) and subtype in STRETCH_EXACT_SUBTYPES
    assert (len(opened.samples), opened.sample_rate, opened.warnings) == (len(whole.samples), SR, [])
    cuts = [(0, 1), (0, len(whole.samples)), (SR - 3, 2 * SR + 5), (len(whole.samples) - 9, len(whole.samples) + 40)]
    cuts += [tuple(sorted(rng.integers(0, len(whole.samples), 2))) for _ in range(20)]
    for a, b in cuts:  # past the end: as far as it goes, as a numpy slice does
        stretch = opened.samples[a:b]
        assert stretch.dtype == np.float32
        np.testing.assert_array_equal(stretch, whole.samples[a:b])
    np.testing.assert_array_equal(in_memory(opened).samples, whole.samples)


def test_a_truncated_integer_recording_opened_is_read_as_far_as_it_goes_with_the_same_warning(tmp_path):
    path = tmp_path / "cut.wav"
    sf.write(path, tone(4.0), SR, subtype="PCM_16")
    path.write_bytes(path.read_bytes()[:44 + 2 * 6000])  # the header promises 4 s, the file holds 0.75 s
    whole, opened = decode_audio(path), open_audio(path)
    assert len(opened.samples) == 6000 and opened.warnings == whole.warnings and "truncated" in opened.warnings[0].message
    np.testing.assert_array_equal(opened.samples[5000:7000], whole.samples[5000:])


@pytest.mark.parametrize("subtype", ["FLOAT", "DOUBLE"])
def test_float_and_lossy_recordings_are_opened_decoded_whole(tmp_path, subtype):
    """Only the whole of a float recording says whether it holds NaN or goes beyond full scale (then it is scaled
    down as a whole); a lossy one is decoded from its start."""
    loud = tmp_path / "loud.wav"
    sf.write(loud, 3 * tone(), SR, subtype=subtype)  # peaks at 1.5: scaled to 1 with a warning
    opened = open_audio(loud)
    assert isinstance(opened.samples, np.ndarray) and "beyond the full scale" in opened.warnings[0].message
    np.testing.assert_array_equal(opened.samples, decode_audio(loud).samples)
    lossy = tmp_path / "a.ogg"
    sf.write(lossy, tone(2.0, sr=16000), 16000, format="OGG", subtype="VORBIS")
    assert isinstance(open_audio(lossy).samples, np.ndarray)


def test_a_recording_removed_or_shortened_while_it_is_read_in_stretches_is_an_error_naming_it(tmp_path):
    path = tmp_path / "moved.wav"
    sf.write(path, tone(3.0), SR, subtype="PCM_16")
    opened = open_audio(path)
    path.write_bytes(path.read_bytes()[:44 + 2 * SR])  # another program rewrote it: 1 s left
    with pytest.raises(AudioError, match="became shorter") as shortened:
        opened.samples[SR // 2:2 * SR]
    assert str(path) in str(shortened.value)
    path.unlink()
    with pytest.raises(AudioError, match="cannot be read any more") as removed:
        opened.samples[0:10]
    assert str(path) in str(removed.value) and "leave the recording in place" in str(removed.value)


@pytest.mark.parametrize("channels", [2, 4])
def test_multichannel_is_averaged_to_mono(tmp_path, channels):
    path = tmp_path / "multi.wav"
    data = np.stack([tone(freq=200.0 * (c + 1), amplitude=0.2) for c in range(channels)], axis=1)
    sf.write(path, data, SR, subtype="FLOAT")
    decoded = decode_audio(path)
    assert decoded.samples.shape == (len(data),)
    np.testing.assert_allclose(decoded.samples, data.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize("sr", [4000, 8000, 11025, 22050, 44100, 48000, 96000])
def test_any_rate_from_4khz_decodes_and_resamples_to_16_and_48khz(tmp_path, sr):
    path = tmp_path / "r.wav"
    sf.write(path, tone(2.0, sr=sr, freq=300.0), sr, subtype="PCM_16")
    assert decode_audio(path).sample_rate == sr
    for target in (16000, 48000):
        out = load_audio(path, target)
        assert out.sample_rate == target and out.samples.dtype == np.float32
        assert len(out.samples) == int(np.ceil(2.0 * target))
        # The 300 Hz tone survives: its spectral peak stays at 300 Hz (bins of 0.5 Hz).
        spectrum = np.abs(np.fft.rfft(out.samples))
        assert abs(np.argmax(spectrum) * target / len(out.samples) - 300.0) <= 1.0


def test_resampling_keeps_a_tone_at_its_level(tmp_path):
    path = tmp_path / "r.wav"
    sf.write(path, tone(2.0, sr=44100, freq=1000.0), 44100, subtype="PCM_24")
    out = load_audio(path, 16000).samples[1600:-1600]  # away from the edges
    assert np.sqrt(np.mean(out ** 2)) == pytest.approx(0.5 / np.sqrt(2), rel=1e-3)


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="reads the peak memory from /proc")
@pytest.mark.parametrize("rate", [4000, 4001, 8000, 11025, 22050, 44100, 44101, 48000, 96000, 96001, 176400,
                                  191999, 192000])
def test_resampling_from_any_rate_is_exact_where_it_matters_and_bounded_in_memory(rate):
    """Awkward rates (a prime, 44,101 Hz) would need a reference kernel of gigabytes; they go phase by phase
    instead. A 300 Hz tone comes out as the same tone at the model's rate, to within 1e-3 of its exact values
    away from the edges, in a process that never holds more than a few hundred MB."""
    import subprocess

    # The peak is this process's own (VmHWM): ru_maxrss would carry over the test runner's peak through exec.
    code = f"""
import numpy as np
from lungkd.core.data.audio import resample
x = (0.5 * np.sin(2 * np.pi * 300 * np.arange(2 * {rate}) / {rate})).astype(np.float32)
worst = 0.0
for target in (16000, 48000):
    y = resample(x, {rate}, target)
    assert len(y) == -(-target * len(x) // {rate}), (len(y), target)
    exact = 0.5 * np.sin(2 * np.pi * 300 * np.arange(len(y)) / target)
    worst = max(worst, float(np.abs(y - exact)[target // 10:-target // 10].max()))
print(worst, next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:")) // 1024)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    worst, peak_mb = float(out[0]), int(out[1])
    assert worst < 1e-3
    assert peak_mb < 1500  # the reference kernel alone would be 3-6 GB at 191,999 Hz


def test_the_phase_by_phase_resampler_is_the_reference_interpolation():
    """Forced onto rates the reference transform handles, both give the same samples (float32 rounding)."""
    import torch
    import torchaudio.transforms as T

    from lungkd.core.data.audio import resample

    x = np.random.default_rng(0).uniform(-0.5, 0.5, 3 * 44100).astype(np.float32)
    for target in (16000, 48000):
        reference = T.Resample(44100, target)(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(resample(x, 44100, target, kernel_limit=0), reference, rtol=0, atol=1e-6)
        np.testing.assert_array_equal(resample(x, 44100, target), reference)  # below the limit: the reference itself


RATE_PAIRS = [(8000, 4000), (11025, 4000), (16000, 4000), (22050, 4000), (44100, 4000), (48000, 4000),
              (96000, 4000), (44100, 8000), (48000, 8000), (4000, 8000)]


@pytest.mark.parametrize("orig,target", RATE_PAIRS)
def test_resampling_without_torch_has_the_reference_taps_and_its_samples_within_float32_rounding(orig, target):
    """What the breath envelope and the recording checks measure with, in a helper that never imports torch."""
    import torchaudio.transforms as T

    from lungkd.core.data import audio

    o, n, width = audio._reduced(orig, target)
    reference = T.Resample(orig, target, lowpass_filter_width=audio.LOWPASS_WIDTH, rolloff=audio.ROLLOFF)
    np.testing.assert_array_equal(audio._reference_kernel(o, n, width), reference.kernel[:, 0, :].numpy())
    x = np.random.default_rng(3).uniform(-1, 1, 3 * orig + 11).astype(np.float32)  # full scale: the worst case
    with_torch, without = audio.resample(x, orig, target), audio.resample_without_torch(x, orig, target)
    assert without.dtype == np.float32 and len(without) == len(with_torch)
    np.testing.assert_allclose(without, with_torch, rtol=0, atol=1e-6)
    for start, stop in ((0, 5), (target - 3, 2 * target + 1), (len(without) - 40, len(without))):
        np.testing.assert_allclose(audio.resample_span(x, orig, target, start, stop,
                                                       resampler=audio.resample_without_torch),
                                   without[start:stop], rtol=0, atol=1e-6)


def test_resampling_without_torch_leaves_awkward_rates_to_the_phase_by_phase_path():
    from lungkd.core.data import audio

    x = np.random.default_rng(4).uniform(-0.5, 0.5, 2 * 44101).astype(np.float32)
    np.testing.assert_array_equal(audio.resample_without_torch(x, 44101, 4000), audio.resample(x, 44101, 4000))


def test_long_recordings_resample_block_by_block_to_the_same_samples(monkeypatch):
    import torch
    import torchaudio.transforms as T

    from lungkd.core.data import audio

    monkeypatch.setattr(audio, "CHUNK_OUTPUT", 1000)  # many blocks on a short signal
    x = np.random.default_rng(1).uniform(-0.5, 0.5, 3 * 44100 + 7).astype(np.float32)
    for target in (16000, 48000):
        reference = T.Resample(44100, target)(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(audio.resample(x, 44100, target), reference, rtol=0, atol=1e-6)


@pytest.mark.parametrize("orig,target,limit", [(4000, 16000, None), (44100, 16000, None), (22050, 48000, None),
                                               (44100, 48000, 0)])  # 0: the phase-by-phase path
def test_a_span_of_the_resampled_audio_is_resampled_from_only_the_input_it_needs(orig, target, limit, monkeypatch):
    """How `lungkd predict` prepares a long recording a batch of cycles at a time (core.features.prepare)."""
    from lungkd.core.data import audio

    if limit is not None:
        monkeypatch.setattr(audio, "KERNEL_LIMIT", limit)
    x = np.random.default_rng(2).uniform(-0.5, 0.5, 4 * orig + 3).astype(np.float32)
    whole = audio.resample(x, orig, target)
    assert len(whole) == audio.resampled_length(len(x), orig, target)
    for start, stop in ((0, 7), (0, len(whole)), (1234, 9876), (len(whole) - 500, len(whole)), (target, target + 1)):
        np.testing.assert_allclose(audio.resample_span(x, orig, target, start, stop), whole[start:stop],
                                   rtol=0, atol=1e-6)
