import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

PROJECT_ROOT = Path(__file__).resolve().parents[1]
ICBHI_DIR = PROJECT_ROOT.parent / "shared" / "data" / "icbhi"


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
