"""A user's own plain folder of recordings, made from the generated ICBHI-layout data: the wav and txt files
alone, as a user keeps them, with no split file and no metadata."""
import shutil
from pathlib import Path

from lungkd.core.data.dataset import load_dataset


def plain_folder(synthetic_dir: Path, folder: Path, patients: int | None = None) -> Path:
    """`patients` keeps only the recordings of that many patients."""
    index = load_dataset(synthetic_dir)
    kept = sorted({r.patient for r in index.recordings})[:patients]
    folder.mkdir()
    for recording in index.recordings:
        if recording.patient in kept:
            for suffix in (".wav", ".txt"):
                shutil.copy(synthetic_dir / f"{recording.name}{suffix}", folder)
    return folder
