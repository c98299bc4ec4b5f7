"""core.analysis.spectra against scipy.signal, which it stands in for: the same numbers, to the bit for the
spectra and exactly for the peaks, on random signals and on the awkward ones (flat tops, ties, NaN)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import signal

from lungkd.core.analysis import spectra


@pytest.mark.parametrize("length", [1, 2, 7, 256, 1024])
def test_the_window_is_scipys_periodic_hann(length):
    np.testing.assert_array_equal(spectra.periodic_hann(length), signal.get_window("hann", length))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("frame, hop, length", [(256, 80, 4000), (512, 160, 8000), (256, 80, 256), (255, 7, 1000)])
def test_the_stft_is_scipys_to_the_bit(dtype, frame, hop, length):
    x = np.random.default_rng(length + frame).standard_normal(length).astype(dtype)
    freqs, spectrum = spectra.stft(x, 4000, frame, hop)
    want_freqs, _, want = signal.stft(x, 4000, nperseg=frame, noverlap=frame - hop, boundary=None, padded=False)
    assert spectrum.dtype == want.dtype
    assert spectrum.shape == want.shape == (frame // 2 + 1, 1 + (length - frame) // hop)
    np.testing.assert_array_equal(freqs, want_freqs)
    np.testing.assert_array_equal(spectrum, want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("segment, length", [(32000, 120000), (64000, 64000), (101, 1000)])
def test_the_power_spectrogram_is_scipys_to_the_bit(dtype, segment, length):
    x = (0.1 + np.random.default_rng(segment).standard_normal(length)).astype(dtype)  # a DC offset to remove
    freqs, power = spectra.power_spectrogram(x, 4000, segment)
    want_freqs, _, want = signal.spectrogram(x, 4000, window="hann", nperseg=segment,
                                             noverlap=segment - segment // 2, mode="psd")
    assert power.dtype == want.dtype and power.shape == want.shape
    np.testing.assert_array_equal(freqs, want_freqs)
    np.testing.assert_array_equal(power, want)


def test_a_signal_shorter_than_a_frame_is_refused_with_its_length():
    with pytest.raises(ValueError, match="at least 256 samples"):
        spectra.stft(np.zeros(100, dtype=np.float32), 4000, 256, 80)


# small integers: many flat tops and equal heights, where the order of choosing decides
coarse = arrays(np.float64, st.integers(0, 60), elements=st.integers(-3, 3).map(float))
fine = arrays(np.float64, st.integers(0, 200), elements=st.floats(-1e3, 1e3, allow_nan=False))


@settings(max_examples=300, deadline=None)
@given(st.one_of(coarse, fine), st.none() | st.floats(1, 12), st.none() | st.floats(0, 4))
def test_the_peaks_are_scipys(x, distance, prominence):
    want, _ = signal.find_peaks(x, distance=distance, prominence=prominence)
    np.testing.assert_array_equal(spectra.find_peaks(x, distance=distance, prominence=prominence), want)


@settings(max_examples=100, deadline=None)
@given(arrays(np.float64, st.integers(3, 40), elements=st.sampled_from([0.0, 1.0, 2.0, np.nan])), st.floats(0, 2))
def test_nan_stops_a_peaks_base_as_in_scipy(x, prominence):
    want, _ = signal.find_peaks(x, prominence=prominence)
    np.testing.assert_array_equal(spectra.find_peaks(x, prominence=prominence), want)


def test_peaks_on_a_hand_made_signal():
    x = np.array([0, 2, 2, 2, 0, 5, 1, 3, 1, 4, 4, 6, 0], dtype=float)
    assert spectra.find_peaks(x).tolist() == [2, 5, 7, 11]  # the flat top's middle, then every local maximum
    # the highest first: 11 (6) keeps 7, four samples away; then 5 (5) takes out 2 and 7, three and two away
    assert spectra.find_peaks(x, distance=4).tolist() == [5, 11]
    # 2 and 7 rise 2 over the higher of their bases (0 and 0, 1 and 1); 5 rises 4 (bases 0 and 1), 11 rises 6
    assert spectra.find_peaks(x, prominence=2.5).tolist() == [5, 11]
    assert spectra.find_peaks(x, prominence=2).tolist() == [2, 5, 7, 11]


def test_a_long_signal_with_many_peaks_is_measured_in_pieces():
    x = np.random.default_rng(3).standard_normal(20_000)
    want, _ = signal.find_peaks(x, prominence=0.5, distance=3)
    np.testing.assert_array_equal(spectra.find_peaks(x, prominence=0.5, distance=3), want)
