"""The waveform's summary: each level's lows and highs are numpy's min and max over its blocks (the last block
partial), the view draws the envelope of the level that fits its pixels zoomed out and the samples themselves
zoomed in, and a recording shorter than a block is drawn as it is."""
from pathlib import Path

import numpy as np
import pytest

from lungkd.app.recordings.jobs import OpenRecording, compute_spectrogram
from lungkd.app.recordings.spectrogram_settings import SpectrogramSettings
from lungkd.app.recordings.waveform_summary import FEWEST_BLOCKS, FINEST_BLOCK, LEVEL_STEP, WaveformSummary
from lungkd.core.data.audio import DecodedAudio

SR = 4000


def noise(samples: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.normal(0, 0.2, samples) * (1 + np.sin(np.arange(samples) / 5000))).astype(np.float32)


def test_each_level_holds_the_min_and_max_of_its_blocks_the_last_one_partial():
    samples = noise(FINEST_BLOCK * LEVEL_STEP ** 2 * FEWEST_BLOCKS * 3 + 37)  # no level's blocks divide it
    summary = WaveformSummary.of(samples, SR)
    assert [level.block for level in summary.levels] == [FINEST_BLOCK * LEVEL_STEP ** k
                                                         for k in range(len(summary.levels))]
    assert len(summary.levels) > 2 and len(summary.levels[-1].lows) >= FEWEST_BLOCKS
    for level in summary.levels:
        blocks = [samples[i:i + level.block] for i in range(0, len(samples), level.block)]
        assert len(blocks[-1]) < level.block  # the last block is partial
        np.testing.assert_array_equal(level.lows, [block.min() for block in blocks])
        np.testing.assert_array_equal(level.highs, [block.max() for block in blocks])
    assert summary.peak == pytest.approx(np.abs(samples).max())


def test_a_recording_shorter_than_a_block_is_summarised_and_drawn_as_it_is():
    samples = noise(FINEST_BLOCK - 5)
    summary = WaveformSummary.of(samples, SR)
    assert len(summary.levels) == 1
    np.testing.assert_array_equal(summary.levels[0].lows, [samples.min()])
    np.testing.assert_array_equal(summary.levels[0].highs, [samples.max()])
    times, values = summary.envelope(0, len(samples) / SR, 1000)
    np.testing.assert_allclose(times, np.arange(len(samples)) / SR)
    np.testing.assert_allclose(values, samples / np.abs(samples).max())


def test_silence_is_drawn_flat_not_divided_by_zero():
    summary = WaveformSummary.of(np.zeros(SR * 10, np.float32), SR)
    assert summary.peak == 1.0
    assert not np.any(summary.envelope(0, 10, 800)[1])


def test_zoomed_out_each_pixel_has_a_block_whose_min_and_max_are_the_samples_there():
    samples = noise(SR * 600)
    summary = WaveformSummary.of(samples, SR)
    times, values = summary.envelope(0, 600, 1000)
    level = summary.level_for(len(samples) / 1000)
    assert level.block <= len(samples) / 1000 < level.block * LEVEL_STEP  # the coarsest that fits a pixel
    assert len(values) == 2 * len(level.lows) < 8 * 1000  # a few thousand numbers, not 2.4 million
    highs, lows = values[0::2] * summary.peak, values[1::2] * summary.peak
    for index in (0, 17, len(level.lows) - 1):  # the first, one within and the last, partial, block
        block = samples[index * level.block:(index + 1) * level.block]
        assert (lows[index], highs[index]) == (block.min(), block.max())
        assert index * level.block / SR <= times[2 * index] <= (index + 1) * level.block / SR
    assert values.max() == pytest.approx(samples.max() / summary.peak)
    assert values.min() == pytest.approx(samples.min() / summary.peak)


def test_a_part_of_the_recording_is_drawn_from_its_blocks_with_one_beyond_each_edge():
    samples = noise(SR * 600)
    summary = WaveformSummary.of(samples, SR)
    times, values = summary.envelope(100, 160, 500)  # 480 samples a pixel
    level = summary.level_for(480)
    first = 100 * SR // level.block - 1
    assert times[0] < 100 < 160 < times[-1] and times[-1] - times[0] < 61
    block = samples[first * level.block:(first + 1) * level.block]
    assert values[0] * summary.peak == block.max() and values[1] * summary.peak == block.min()


def test_zoomed_in_the_samples_themselves_are_drawn():
    samples = noise(SR * 600)
    summary = WaveformSummary.of(samples, SR)
    times, values = summary.envelope(300, 301, 1000)  # 4 samples a pixel
    np.testing.assert_allclose(times, np.arange(300 * SR - 1, 301 * SR + 1) / SR)
    np.testing.assert_allclose(values, samples[300 * SR - 1:301 * SR + 1] / summary.peak)


def open_recording(samples: np.ndarray) -> OpenRecording:
    return OpenRecording(Path("/data/long.wav"), DecodedAudio(samples, SR, []),
                         compute_spectrogram(samples[:SR * 10], SR, SpectrogramSettings()))


def test_the_view_draws_the_envelope_zoomed_out_and_the_samples_zoomed_in(view):
    samples = noise(SR * 1200)  # 20 minutes
    recording = open_recording(samples)
    view.show_recording(recording, SpectrogramSettings(), [])
    pixels = view.wave.vb.width()
    x, y = view.curve.getData()
    expected = recording.waveform.envelope(0, recording.duration, pixels)
    np.testing.assert_array_equal(x, expected[0])
    np.testing.assert_array_equal(y, expected[1])
    assert len(y) < 8 * pixels
    assert y.max() == pytest.approx(samples.max() / recording.waveform.peak)
    assert y.min() == pytest.approx(samples.min() / recording.waveform.peak)

    view.wave.setXRange(600, 600.5, padding=0)  # half a second: the samples themselves
    x, y = view.curve.getData()
    first, last = int(np.floor(view.wave.vb.viewRange()[0][0] * SR)), int(np.ceil(view.wave.vb.viewRange()[0][1] * SR))
    np.testing.assert_allclose(x, np.arange(first - 1, last + 1) / SR)
    np.testing.assert_allclose(y, samples[first - 1:last + 1] / recording.waveform.peak)

    view.fit()  # and back out: the envelope again
    np.testing.assert_array_equal(view.curve.getData()[1], expected[1])


def test_a_recording_as_long_as_the_last_one_is_drawn_anew(view):
    first, second = open_recording(noise(SR * 60, seed=1)), open_recording(noise(SR * 60, seed=2) * 3)
    view.show_recording(first, SpectrogramSettings(), [])
    view.show_recording(second, SpectrogramSettings(), [])  # the same range: no range change to draw it
    np.testing.assert_array_equal(view.curve.getData()[1],
                                  second.waveform.envelope(0, 60, view.wave.vb.width())[1])
