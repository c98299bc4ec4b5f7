"""Why this class (core/analysis/explain.py): on generated recordings with a wheeze or crackles inserted at a
known time and band into a normal cycle, the shipped demo model (a tiny CNN6 trained on generated recordings)
calls the cycle wheeze or crackle, and most of the explanation's weight lies on the inserted event; the
model's input grid maps to seconds and hertz as its features are made, tiled copies and CLAP's padding
included."""
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from lungkd.core.analysis.explain import clip_to_recording, explain_cycle, mel_centres, on_linear_grid
from lungkd.core.data.records import Cycle
from lungkd.core.data.synth import crackle_waves
from lungkd.core.features.prepare import clip_batches
from lungkd.core.features.inputs import PrepSettings
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.models.inference import load_saved_model
from lungkd.core.models.registry import create_model, model_info
from explain_recordings import WHEEZE_S, normal_cycles, with_wheeze

DEMO_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo-cnn6"
CRACKLES_S = 0.3


@pytest.fixture(scope="module")
def demo_model():
    model, _ = load_saved_model(DEMO_MODEL)
    return model


def with_crackles(samples, sr, at: float, rng) -> np.ndarray:
    """Eight fine crackles (300-700 Hz) within CRACKLES_S from `at`."""
    times = np.sort(rng.uniform(at, at + CRACKLES_S, 8))
    waves = crackle_waves(rng.uniform(300, 700, 8), 15 * np.sqrt(np.mean(samples ** 2)) * rng.choice([-1, 1], 8), sr)
    out = samples.copy()
    for time, wave in zip(times, waves):
        i = int(time * sr)
        out[i:i + len(wave)] += wave[:len(out) - i]
    return out


def model_input(model, samples, sr, start: float, end: float) -> torch.Tensor:
    """The cycle's features as `lungkd predict` makes them: clip at the model's rate, then its features."""
    inputs = model_info(model.arch_name).inputs
    batch = next(clip_batches(samples.astype(np.float32), sr, [Cycle("r", 0, start, end, 0, 0)], inputs.prep, 1))
    return torch.from_numpy(inputs.features.compute(batch.clips))[0]


@pytest.mark.parametrize("event", ["wheeze", "crackle"])
def test_most_of_the_weight_lies_on_the_inserted_event(demo_model, event):
    rng = np.random.default_rng(0)
    for samples, sr, start, end in normal_cycles():
        length = end - start
        if event == "wheeze":  # in the tone's time (+-0.1 s, two fbank frames beyond its fade) and band
            at = start + 0.5 * length
            changed, region = with_wheeze(samples, sr, at), (at - 0.1, at + WHEEZE_S + 0.1, 200.0, 1200.0)
        else:  # crackles are broadband: in their time, any band
            at = start + 0.15 * length
            changed, region = with_crackles(samples, sr, at, rng), (at - 0.1, at + CRACKLES_S + 0.1, 0.0, 8000.0)
        explanation = explain_cycle(demo_model, model_input(demo_model, changed, sr, start, end), start, end)
        assert CLASS_NAMES[explanation.target] == event and explanation.probability > 0.5
        assert explanation.share_in(*region) > 0.5, (length, explanation.share_in(*region))
        # the same box a quarter of a cycle later (wrapping round to the cycle's start) holds far less
        away = start + (region[0] - start + 0.25 * length) % length
        elsewhere = explanation.share_in(away, away + region[1] - region[0], *region[2:])
        assert elsewhere < 0.5 * explanation.share_in(*region), (elsewhere, explanation.share_in(*region))


def test_the_weights_add_up_to_the_probability_explained(demo_model):
    samples, sr, start, end = normal_cycles(1)[0]
    features = model_input(demo_model, with_wheeze(samples, sr, start + 1.0), sr, start, end)
    explanation = explain_cycle(demo_model, features, start, end)
    with torch.no_grad():
        p = torch.softmax(demo_model(features[None]), -1)[0, explanation.target]
        reference = min(float(torch.softmax(demo_model(torch.zeros_like(features)[None]), -1)[0, explanation.target]),
                        float(torch.softmax(demo_model(features.median(dim=0, keepdim=True).values.expand_as(
                            features)[None]), -1)[0, explanation.target]))
    assert explanation.weights.shape == features.shape
    assert explanation.weights.sum() == pytest.approx(float(p) - reference, abs=0.05)
    second = explain_cycle(demo_model, features[None], start, end, target=0)  # a batch of one; another class
    with torch.no_grad():
        normal = float(torch.softmax(demo_model(features[None]), -1)[0, 0])
    assert second.target == 0 and second.probability == pytest.approx(normal, abs=1e-5)


def test_a_tiled_cycle_maps_every_copy_to_the_recording_and_folds_onto_the_cycle(demo_model):
    samples, sr, start, end = normal_cycles(1)[0]
    explanation = explain_cycle(demo_model, model_input(demo_model, samples, sr, start, end), start, end)
    length = int(end * 16000) - int(start * 16000)
    assert np.nanmin(explanation.seconds) >= start and np.nanmax(explanation.seconds) < end
    first_frame_again = np.flatnonzero(np.diff(explanation.seconds) < 0)[0] + 1  # the second copy begins
    assert explanation.seconds[first_frame_again] == pytest.approx(start + (first_frame_again * 160 + 200
                                                                            - length) / 16000, abs=1e-4)
    times, folded = explanation.on_cycle()
    assert times[0] >= start and times[-1] <= end + 0.01
    assert folded.sum() == pytest.approx(explanation.weights.sum())
    hz = explanation.hz
    assert len(hz) == 128 and np.all(np.diff(hz) > 0) and 20 < hz[0] < 60 and 7000 < hz[-1] < 8000


def test_clap_inputs_map_the_padding_to_no_time_and_a_prompt_reaches_the_model():
    """A tiny randomly initialised BTS: CLAP's 1001 frames of 10 ms, the last 2 s padding after the 8 s clip."""
    torch.manual_seed(0)
    model = create_model("bts", size="tiny").eval()
    inputs = model_info("bts").inputs
    features = torch.randn(1, 1001, 64)
    explanation = explain_cycle(model, features, 3.0, 5.5, prompt="a recording of the chest")
    assert explanation.weights.shape == (1001, 64)
    assert np.isnan(explanation.seconds[801:]).all() and not np.isnan(explanation.seconds[:800]).any()
    assert (explanation.weights[801:] == 0).all()
    assert explanation.seconds[250] == pytest.approx(3.0 + 0.0)  # 2.5 s into the clip: the second copy's start
    hz = mel_centres(inputs, 64)
    assert np.all(np.diff(hz) > 0) and 50 < hz[0] < 200 and 12000 < hz[-1] < 14000
    zero_padded = clip_to_recording(PrepSettings(48000, pad="zero"), np.array([0.0, 2.75, 4.0, 5.3]), 3.0, 5.5)
    np.testing.assert_allclose(zero_padded, [np.nan, 3.0, 4.25, np.nan])


def test_the_weights_land_on_a_display_s_linear_hertz_where_their_mel_bin_lies(demo_model):
    """One mel bin's weight at one moment of the cycle, put on a linear grid up to 4 kHz: it lands in that bin's
    band and at that moment; weight against the class is left out."""
    samples, sr, start, end = normal_cycles(1)[0]
    explanation = explain_cycle(demo_model, model_input(demo_model, samples, sr, start, end), start, end)
    weights = np.zeros_like(explanation.weights)
    frame, mel = 40, 60
    weights[frame, mel], weights[frame, mel + 20] = 1.0, -1.0
    grid = on_linear_grid(replace(explanation, weights=weights), 4000.0)
    column, row = np.unravel_index(np.argmax(grid.weights), grid.weights.shape)
    hz = (row + 0.5) * grid.hz_per_row
    assert explanation.hz[mel - 1] <= hz <= explanation.hz[mel + 1]
    assert grid.start + column * grid.seconds_per_column == pytest.approx(explanation.seconds[frame], abs=0.03)
    assert grid.weights.min() >= 0.0 and grid.weights.shape[1] == 256
