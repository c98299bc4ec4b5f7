"""The background jobs of the Recordings page: core calls composed for one window, run by the engine
adapter. Each reports a core `Event` per recording for progress and delivers each recording's result (or
its error) as a partial result."""
from __future__ import annotations

import os
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lungkd.core.analysis.display import display_spectrogram, relative_to_loud_parts
from lungkd.core.analysis.limits import UsableModel, load_model_with_limits
from lungkd.core.analysis.predict import RecordingAnalysis, analyse_samples
from lungkd.core.data.annotation_io import annotation_path_for, file_digest
from lungkd.core.data.audio import AUDIO_EXTENSIONS, DecodedAudio, distinct_recordings, load_audio
from lungkd.core.cancel import Cancelled
from lungkd.core.errors import LungKDError, Problem
from lungkd.core.events import Event

from .spectrogram_settings import SpectrogramSettings


@dataclass
class Spectrogram:
    db: np.ndarray  # (frames, bins), dB relative to the recording's loud parts
    seconds_per_frame: float
    hz_per_bin: float
    key: tuple[float, float]  # the settings it was computed with (SpectrogramSettings.image_key)


@dataclass
class OpenRecording:
    path: Path
    audio: DecodedAudio  # mono, at the file's own rate: decoded once, analysed and drawn from here
    spectrogram: Spectrogram
    analysis: RecordingAnalysis | None = None  # None until a model has analysed it
    notice: str = ""  # why there is no analysis, or what the analysis warned about
    model_folder: Path | None = None  # the model that analysed it
    annotation_digest: str | None = None  # of the annotation beside it when it was read (None: there was none)

    @property
    def samples(self) -> np.ndarray:
        return self.audio.samples

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class FailedRecording:
    path: Path
    message: str
    details: str


class ModelCache:
    """Loaded models (with the limits their cards store) by folder, so re-analysing ten recordings loads the
    model once. Used by one job at a time (the task queue runs them in turn)."""

    def __init__(self) -> None:
        self._models: dict[Path, UsableModel] = {}

    def get(self, folder: Path) -> UsableModel:
        if folder not in self._models:
            self._models[folder] = load_model_with_limits(folder)
        return self._models[folder]


def expand_paths(paths: list[Path]) -> tuple[list[Path], list[FailedRecording]]:
    """Files as given (a wrong one is refused later, with its name), folders as the audio files inside; one
    file per recording name, as every command has it (`distinct_recordings`). What is left out (a second file
    of a recording, a folder that cannot be read) comes back as FailedRecordings saying why."""
    out: list[Path] = []
    problems: list[Problem] = []

    def unreadable(exc: OSError) -> None:
        problems.append(Problem(exc.filename, f"this folder cannot be read ({exc.strerror or exc}).",
                                "give your user read permission."))

    for path in paths:
        if path.is_dir():
            out += sorted(Path(folder) / name for folder, _, names in os.walk(path, onerror=unreadable)
                          for name in names if Path(name).suffix.lower() in AUDIO_EXTENSIONS)
        else:
            out.append(path)
    kept, duplicates = distinct_recordings(out)
    return kept, [FailedRecording(Path(p.path), f"{p.message} {p.fix}", str(p)) for p in problems + duplicates]


def nothing_to_open(paths: list[Path]) -> str:
    """Why `paths` gave no recording to open, naming each: an empty folder, a folder without audio (and what it
    holds instead), or a path that is not there."""
    reasons = []
    for path in paths:
        if not path.exists():
            reasons.append(f"{path} does not exist")
        elif path.is_dir():
            files = [p for p in path.rglob("*") if p.is_file()]
            if not files:
                reasons.append(f"the folder {path} is empty")
            else:
                kinds = ", ".join(sorted({p.suffix.lower() or "no extension" for p in files})[:5])
                reasons.append(f"the folder {path} holds no wav, flac or ogg recordings ({len(files)} other "
                               f"file(s): {kinds})")
    return ("Nothing to open: " + "; ".join(reasons) + ".") if reasons else "No wav, flac or ogg files there."


def compute_spectrogram(samples: np.ndarray, sample_rate: int, settings: SpectrogramSettings) -> Spectrogram:
    db, seconds_per_frame, hz_per_bin = display_spectrogram(samples, sample_rate, window_s=settings.window_ms / 1000,
                                                            hop_s=settings.hop_ms / 1000)
    return Spectrogram(relative_to_loud_parts(db, hz_per_bin), seconds_per_frame, hz_per_bin, settings.image_key())


def annotation_digest(audio: Path) -> str | None:
    """Of the annotation beside the recording as it is now (None: there is none), to tell later whether
    someone else changed it."""
    return file_digest(annotation_path_for(audio))


def failure(path: Path, exc: Exception) -> FailedRecording:
    """What went wrong in words for the list (the file is named there already), all of it for the details."""
    words = f"{exc.problem.message} {exc.problem.fix}".strip() if isinstance(exc, LungKDError) else str(exc)
    return FailedRecording(path, words or type(exc).__name__, f"{exc}\n\n{traceback.format_exc()}")


def _analyse(path: Path, audio: DecodedAudio, model_folder: Path | None, models: ModelCache, cancel,
             spans: list[tuple[float, float]] | None = None) -> tuple[RecordingAnalysis | None, str]:
    if model_folder is None:
        return None, "No model chosen: pick one in the toolbar to see predictions."
    analysis = analyse_samples(path, audio, models.get(model_folder), cancel=cancel, spans=spans)
    return analysis, "\n".join(analysis.warnings)


def _each_recording(items: list, work):
    """A job running `work(item, cancel)` on each item (a path, or an open recording) in turn and delivering
    each result; an error becomes that recording's FailedRecording (one bad file among many) and the rest
    go on."""
    def job(report, cancel) -> None:
        for number, item in enumerate(items, start=1):
            path = item.path if isinstance(item, OpenRecording) else item
            report(Event("recordings", "progress", f"Analysing {path.name}", step=number - 1, total=len(items)))
            try:
                result = work(item, cancel)
            except Cancelled:
                raise
            except Exception as exc:
                result = failure(path, exc)
            report.deliver(result)
            report(Event("recordings", "progress", path.name, step=number, total=len(items)))
    return job


def open_job(paths: list[Path], model_folder: Path | None, settings: SpectrogramSettings, models: ModelCache,
             left_out: list[FailedRecording] = ()):
    """Decode each recording once, then draw and analyse it from those samples: OpenRecording results, after
    the FailedRecordings of what `expand_paths` left out."""
    def work(path: Path, cancel) -> OpenRecording:
        audio = load_audio(path)
        recording = OpenRecording(path, audio, compute_spectrogram(audio.samples, audio.sample_rate, settings),
                                  model_folder=model_folder, annotation_digest=annotation_digest(path))
        recording.analysis, recording.notice = _analyse(path, audio, model_folder, models, cancel)
        return recording
    each = _each_recording(paths, work)

    def job(report, cancel) -> None:
        for failed in left_out:
            report.deliver(failed)
        each(report, cancel)
    return job


@dataclass
class Analysed:
    """A model's predictions for a recording: of the cycles it found (spans None), or of given spans."""

    path: Path
    model_folder: Path
    analysis: RecordingAnalysis
    notice: str
    annotation_digest: str | None = None


def reanalyse_job(requests: list[tuple[OpenRecording, list[tuple[float, float]] | None]], model_folder: Path,
                  models: ModelCache):
    """Open recordings (again) with a model, from their decoded samples: of the cycles found beside each when
    its spans are None, else of those spans (an annotation being edited). Analysed results."""
    spans = {recording.path: given for recording, given in requests}

    def work(recording: OpenRecording, cancel) -> Analysed:
        given = spans[recording.path]
        digest = annotation_digest(recording.path) if given is None else None
        return Analysed(recording.path, model_folder,
                        *_analyse(recording.path, recording.audio, model_folder, models, cancel, given), digest)
    return _each_recording([recording for recording, _ in requests], work)


def spectrogram_job(samples: np.ndarray, sample_rate: int, settings: SpectrogramSettings):
    return lambda report, cancel: compute_spectrogram(samples, sample_rate, settings)
