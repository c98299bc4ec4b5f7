"""Model inputs (docs/method.md section 4): Kaldi fbank and its normalisations, CLAP log-mel, SpecAugment."""
import numpy as np
import pytest
import torch

from lungkd.core.features.spectral import AUDIOSET_MEAN, AUDIOSET_STD, clap_features, fbank, normalize_fbank, specaugment
from lungkd.core.features.inputs import ClapFeatureSettings, FbankSettings, fbank_frames


def noise(n, rows=2, seed=0):
    return np.random.default_rng(seed).uniform(-0.5, 0.5, (rows, n)).astype(np.float32)


@pytest.fixture(scope="module")
def raw_fbank():
    return fbank(noise(128000))


def test_fbank_of_8_seconds_is_798_by_128(raw_fbank):
    assert fbank_frames(128000) == 798
    assert raw_fbank.shape == (2, 798, 128) and raw_fbank.dtype == np.float32
    assert np.isfinite(raw_fbank).all()


def test_fbank_puts_a_1khz_tone_in_the_mel_bin_that_holds_1khz():
    tone = (0.5 * np.sin(2 * np.pi * 1000 * np.arange(128000) / 16000)).astype(np.float32)[None]
    spectrum = fbank(tone)[0].mean(axis=0)
    # htk mel scale, 128 bins between 20 Hz and 8 kHz: 1 kHz sits at bin ~32.
    mel = lambda f: 1127 * np.log1p(f / 700)  # noqa: E731
    centres = np.linspace(mel(20), mel(8000), 130)[1:-1]
    assert abs(int(spectrum.argmax()) - int(np.abs(centres - mel(1000)).argmin())) <= 1


def test_per_sample_normalisation_gives_mean_0_and_std_one_half(raw_fbank):
    x = normalize_fbank(raw_fbank, "per_sample")
    for sample in x:
        assert abs(sample.mean()) < 1e-5
        assert sample.std(ddof=1) == pytest.approx(0.5, abs=1e-5)  # torch's unbiased std, as the reference


@pytest.mark.parametrize("shape", [(16, 798, 128), (3, 1001, 64), (1, 5, 7)])
def test_per_sample_normalisation_is_the_formula_to_the_bit(shape):
    x = (np.random.default_rng(len(shape)).standard_normal(shape) * 3 - 7).astype(np.float32)
    x64 = x.astype(np.float64)
    formula = (x64 - x64.mean(axis=(-2, -1), keepdims=True)) / (2 * x64.std(axis=(-2, -1), keepdims=True, ddof=1))
    np.testing.assert_array_equal(normalize_fbank(x, "per_sample"), formula.astype(np.float32))


def test_audioset_normalisation_uses_asts_constants(raw_fbank):
    x = normalize_fbank(raw_fbank, "audioset")
    np.testing.assert_allclose(x, (raw_fbank + 4.2677393) / (2 * 4.5689974), rtol=1e-6)
    assert (AUDIOSET_MEAN, AUDIOSET_STD) == (-4.2677393, 4.5689974)


def test_a_silent_clip_normalises_to_zeros_not_nan():
    x = normalize_fbank(fbank(np.zeros((1, 128000), dtype=np.float32)), "per_sample")
    assert np.isfinite(x).all() and not x.any()


def test_fbank_settings_compute_and_keys(raw_fbank):
    clips = noise(128000)
    np.testing.assert_array_equal(FbankSettings(normalization="audioset").compute(clips),
                                  normalize_fbank(raw_fbank, "audioset"))
    assert FbankSettings().sample_rate == 16000
    assert FbankSettings().key() != FbankSettings(normalization="audioset").key() != FbankSettings(64).key()
    with pytest.raises(ValueError):
        FbankSettings(normalization="global")


def test_clap_settings_are_the_checkpoints_not_the_class_defaults():
    from lungkd.core.features.spectral import _clap_extractor

    config = _clap_extractor(ClapFeatureSettings()).to_dict()
    expected = {"feature_size": 64, "sampling_rate": 48000, "hop_length": 480, "max_length_s": 10,
                "fft_window_size": 1024, "padding": "repeatpad", "truncation": "rand_trunc", "frequency_min": 50,
                "frequency_max": 14000, "return_attention_mask": False, "top_db": None}
    assert {k: config[k] for k in expected} == expected


def test_clap_features_of_8_seconds_are_1001_by_64_and_repeatpad_means_2_s_of_zeros():
    clips = noise(384000)
    features = clap_features(clips)
    assert features.shape == (2, 1, 1001, 64) and features.dtype == np.float32
    # repeatpad tiles int(10 s / 8 s) = 1 time, then zero-pads: the same as padding 2 s of zeros.
    padded = np.pad(clips, ((0, 0), (0, 96000)))
    np.testing.assert_array_equal(features, clap_features(padded))
    # Frames whose 1024-sample window lies wholly in the padding sit at the -100 dB floor.
    assert (features[:, 0, 802:] == -100).all() and (features[:, 0, :801] > -100).any(axis=-1).all()


def test_clap_repeatpad_tiles_a_short_clip_before_padding():
    clip = noise(3 * 48000, rows=1)
    tiled = np.pad(np.tile(clip, 3), ((0, 0), (0, 48000)))  # 3 copies (9 s), then 1 s of zeros
    np.testing.assert_array_equal(clap_features(clip), clap_features(tiled))


def test_clap_random_crop_of_long_clips_is_seeded_and_leaves_numpys_rng_alone():
    clip = noise(int(10.5 * 48000), rows=1)
    state = np.random.get_state()[1].copy()
    a = clap_features(clip, ClapFeatureSettings(seed=1))
    np.testing.assert_array_equal(a, clap_features(clip, ClapFeatureSettings(seed=1)))
    assert a.shape == (1, 1, 1001, 64)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


def _masked(x, y):
    """Per sample: fully masked time frames and frequency bins."""
    changed = x != y
    return changed.all(dim=-1), changed.all(dim=-2)


def test_specaugment_masks_bands_with_the_sample_mean_and_bounded_widths():
    x = torch.randn(64, 798, 128, generator=torch.Generator().manual_seed(0))
    means = x.mean(dim=(1, 2))
    assert (x != means.view(64, 1, 1)).all()  # so every masked cell shows as changed
    y = specaugment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and not torch.equal(x, y)
    frames, bins = _masked(x, y)
    for i in range(64):
        changed = x[i] != y[i]
        assert torch.all(y[i][changed] == means[i])  # masked cells hold this sample's mean
        # Every changed cell lies in a masked band; two bands of < 160 frames, two of < 48 bins.
        assert torch.equal(changed, frames[i][:, None] | bins[i][None, :])
        assert frames[i].sum() <= 2 * 159 and bins[i].sum() <= 2 * 47


def test_specaugment_single_band_widths_span_0_to_width_minus_1():
    x = torch.randn(400, 1, 100, 128)  # (B, channel, time, freq) works too
    y = specaugment(x, torch.Generator().manual_seed(1), freq_masks=1, time_masks=0)
    widths = (x != y).all(dim=-2).sum(dim=-1).flatten()
    assert widths.max() == 47 and widths.min() == 0
    runs = [(row.nonzero().flatten()) for row in (x != y).all(dim=-2).flatten(0, 1)]
    assert all(len(r) == 0 or r[-1] - r[0] + 1 == len(r) for r in runs)  # one contiguous band


def test_specaugment_is_reproducible_with_a_generator():
    x = torch.randn(4, 798, 128)
    a = specaugment(x, torch.Generator().manual_seed(7))
    assert torch.equal(a, specaugment(x, torch.Generator().manual_seed(7)))
