import os
from pathlib import Path

import pytest

from lungkd.core.pool import numpy_blas_on_one_thread

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
# as in every LungKD process (the commands, the Studio, their helpers): the tests compare what a helper computes
# with what this process does, and OpenBLAS's products on one thread and on two can differ in the last bit
numpy_blas_on_one_thread()

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ICBHI_DIR = PROJECT_ROOT.parent / "shared" / "data" / "icbhi"


def pytest_collection_modifyitems(config, items):
    """Tests that need the real ICBHI files are marked `real_data`: the only ones a clone without
    ../shared skips."""
    for item in items:
        if {"icbhi_dir", "icbhi_audio_dir"} & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.real_data)


@pytest.fixture(scope="session")
def icbhi_dir() -> Path:
    """The real ICBHI files beside the project (annotations, split, metadata, 10 recordings)."""
    if not (ICBHI_DIR / "ICBHI_challenge_train_test.txt").exists():
        pytest.skip(f"real ICBHI files not found at {ICBHI_DIR}")
    return ICBHI_DIR


@pytest.fixture(scope="session")
def icbhi_audio_dir(icbhi_dir) -> Path:
    audio = icbhi_dir / "audio"
    if not any(audio.glob("*.wav")):
        pytest.skip(f"real ICBHI recordings not found in {audio}")
    return audio


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """Fourteen synthetic recordings in exact ICBHI layout (wav + txt, split, demographics, metadata): 9 train
    and 5 test recordings, all four devices, every class, 70 cycles. The data most tests run on."""
    from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset

    return ensure_synthetic_dataset(tmp_path_factory.getbasetemp() / "synthetic-14",
                                    SyntheticData(recordings=14, seed=1))


@pytest.fixture(scope="session")
def adaptation_dir(tmp_path_factory) -> Path:
    """Twenty-four other synthetic recordings (seed 2) of 7 patients, 3 devices: what a model is adapted to
    (core/kd/adapt.py); split by patient, 3 patients to adapt on, 2 to calibrate on and 2 to test on."""
    from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset

    return ensure_synthetic_dataset(tmp_path_factory.getbasetemp() / "adapt-24", SyntheticData(recordings=24, seed=2))


@pytest.fixture(scope="session")
def synthetic_sets(synthetic_dir, tmp_path_factory):
    """The synthetic dataset's cycles as CNN6 inputs (16 kHz fbank, 798 x 128), train and test."""
    from lungkd.core.data.dataset import load_dataset
    from lungkd.core.features.cache import FeatureCache
    from lungkd.core.features.cycle_sets import build_cycle_sets
    from lungkd.core.models.registry import model_info

    return build_cycle_sets(load_dataset(synthetic_dir), model_info("cnn6").inputs,
                            cache=FeatureCache(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def tone_recording(tmp_path_factory) -> Path:
    """20 s of a swelling 440 Hz tone at 8 kHz, no annotation: a sound like no breathing, for the marks of
    recordings unlike a model's training data."""
    import numpy as np
    import soundfile as sf

    path = tmp_path_factory.mktemp("unlike") / "tone.wav"
    sr = 8000
    t = np.arange(20 * sr) / sr
    x = 0.3 * np.sin(2 * np.pi * 440 * t) * (0.6 + 0.4 * np.sin(2 * np.pi * 0.3 * t))
    sf.write(path, (x + np.random.default_rng(0).normal(0, 0.01, len(t))).astype(np.float32), sr)
    return path
