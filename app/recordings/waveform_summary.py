"""A recording's waveform summarised for drawing, as audio editors do it: the smallest and largest sample of each
block at a few block sizes, worked out once (in the engine thread, when the recording is opened), so the view
draws an hour zoomed out from a few thousand numbers and never reduces its 14 million samples on the GUI thread.
Zoomed in far enough, the view draws the samples themselves. Qt-free (numpy only).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FINEST_BLOCK = 16  # samples a block of the finest level holds; fewer a pixel and the samples themselves are drawn
LEVEL_STEP = 4  # each level's blocks hold this many blocks of the level below
FEWEST_BLOCKS = 512  # no level is made coarser than this: a view is wider than that many pixels


@dataclass(frozen=True)
class Level:
    block: int  # samples in each block (the last block holds the rest, maybe fewer)
    lows: np.ndarray  # each block's smallest sample
    highs: np.ndarray  # and its largest


def _reduce(lows: np.ndarray, highs: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The smallest of each `size` lows and the largest of each `size` highs, the last group partial."""
    full = len(lows) // size * size
    new_lows, new_highs = lows[:full].reshape(-1, size).min(axis=1), highs[:full].reshape(-1, size).max(axis=1)
    if full < len(lows):
        new_lows = np.append(new_lows, lows[full:].min())
        new_highs = np.append(new_highs, highs[full:].max())
    return new_lows, new_highs


@dataclass(frozen=True)
class WaveformSummary:
    samples: np.ndarray  # the recording's own, drawn as they are when zoomed in
    sample_rate: int
    levels: tuple[Level, ...]  # finest first
    peak: float  # the largest magnitude of the samples (1 for silence): what the view divides by

    @classmethod
    def of(cls, samples: np.ndarray, sample_rate: int) -> WaveformSummary:
        lows, highs = _reduce(samples, samples, FINEST_BLOCK)
        levels = [Level(FINEST_BLOCK, lows, highs)]
        while len(lows) > LEVEL_STEP * FEWEST_BLOCKS:
            lows, highs = _reduce(lows, highs, LEVEL_STEP)
            levels.append(Level(levels[-1].block * LEVEL_STEP, lows, highs))
        first = levels[0]
        peak = max(-float(first.lows.min(initial=0.0)), float(first.highs.max(initial=0.0))) or 1.0
        return cls(samples, sample_rate, tuple(levels), peak)

    def level_for(self, samples_per_pixel: float) -> Level | None:
        """The coarsest level whose blocks are no wider than a pixel; None where the samples are few enough to
        draw themselves."""
        return next((level for level in reversed(self.levels) if level.block <= samples_per_pixel), None)

    def envelope(self, start: float, end: float, pixels: float) -> tuple[np.ndarray, np.ndarray]:
        """What to draw of [start, end) s across `pixels`: times (s) and values (of the peak). The samples
        themselves where fewer than FINEST_BLOCK fall on a pixel; else each block's largest then smallest value at
        its middle, which a line joins into the filled envelope. One sample or block beyond each edge, so the
        line runs to the edges of the view."""
        total = len(self.samples)
        first = min(max(int(np.floor(start * self.sample_rate)), 0), total)
        last = min(max(int(np.ceil(end * self.sample_rate)), first), total)
        level = self.level_for((last - first) / max(pixels, 1.0))
        if level is None:
            first, last = max(first - 1, 0), min(last + 1, total)
            return np.arange(first, last) / self.sample_rate, self.samples[first:last] / self.peak
        b0, b1 = max(first // level.block - 1, 0), min(-(-last // level.block) + 1, len(level.lows))
        starts = np.arange(b0, b1) * level.block
        middles = (starts + np.minimum(starts + level.block, total)) / 2 / self.sample_rate
        values = np.empty(2 * (b1 - b0), dtype=np.float32)
        values[0::2], values[1::2] = level.highs[b0:b1], level.lows[b0:b1]
        return np.repeat(middles, 2), values / self.peak
