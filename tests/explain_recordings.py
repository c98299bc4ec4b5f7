"""Generated normal cycles and a wheeze to insert into them, where the explanation's weight should fall.

Shared by tests/core (core/analysis/explain.py) and tests/app (the overlay in the Studio); tests/ is on sys.path
through its conftest.py."""
import numpy as np

from lungkd.core.data.synth import plan_dataset, render_recording

SEED = 11
WHEEZE_HZ, WHEEZE_S = 420.0, 0.35


def normal_cycles(count: int = 4):
    """(samples, sample rate, start, end) of the first normal cycle of `count` generated recordings."""
    _, plans = plan_dataset(40, SEED)
    found = []
    for index, plan in enumerate(plans):
        normal = np.flatnonzero(plan.labels == 0)
        if len(normal) and len(found) < count:
            k = normal[0] + plan.breathing.first
            found.append((render_recording(plan, SEED, index), plan.sample_rate, *plan.breathing.edges[k:k + 2]))
    return found


def with_wheeze(samples, sr, at: float) -> np.ndarray:
    """A 420 Hz tone with its octave, WHEEZE_S long from `at`, three times the cycle's loudness."""
    t = np.arange(int(WHEEZE_S * sr)) / sr
    tone = (np.sin(2 * np.pi * WHEEZE_HZ * t) + 0.4 * np.sin(4 * np.pi * WHEEZE_HZ * t)) * np.hanning(len(t))
    out = samples.copy()
    out[int(at * sr):int(at * sr) + len(t)] += 3 * np.sqrt(np.mean(samples ** 2)) * tone
    return out
