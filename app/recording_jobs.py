"""The background jobs of the Recordings page: core calls composed for one window, run by the engine
adapter. Each reports a core `Event` per recording, carrying the result (or the error) in `data`."""
from __future__ import annotations

import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lungkd.core.analysis.predict import RecordingAnalysis, analyse_recording, display_spectrogram
from lungkd.core.data.annotation_io import file_digest
from lungkd.core.data.audio import AUDIO_EXTENSIONS, load_audio
from lungkd.core.cancel import Cancelled
from lungkd.core.errors import LungKDError
from lungkd.core.analysis.evaluation import load_saved_model
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
    samples: np.ndarray  # mono, at the file's own rate
    sample_rate: int
    spectrogram: Spectrogram
    analysis: RecordingAnalysis | None = None  # None until a model has analysed it
    notice: str = ""  # why there is no analysis, or what the analysis warned about
    model_folder: Path | None = None  # the model that analysed it
    annotation_digest: str | None = None  # of the annotation beside it when it was read (None: there was none)

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


@dataclass
class FailedRecording:
    path: Path
    message: str
    details: str


class ModelCache:
    """Loaded models by folder, so re-analysing ten recordings loads the model once. Used by one job at a
    time (the task queue runs them in turn)."""

    def __init__(self) -> None:
        self._models: dict[Path, object] = {}

    def get(self, folder: Path):
        if folder not in self._models:
            self._models[folder] = load_saved_model(folder)[0]
        return self._models[folder]


def expand_paths(paths: list[Path]) -> list[Path]:
    """Files as given (a wrong one is refused later, with its name), folders as the audio files inside."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)
        else:
            out.append(path)
    return out


def compute_spectrogram(samples: np.ndarray, sample_rate: int, settings: SpectrogramSettings) -> Spectrogram:
    db, seconds_per_frame, hz_per_bin = display_spectrogram(samples, sample_rate, window_s=settings.window_ms / 1000,
                                                            hop_s=settings.hop_ms / 1000)
    # 0 dB at the loud parts above 60 Hz: heart sounds, hum and DC below would otherwise push the breath
    # sounds to the bottom of the colour scale
    loud = float(np.percentile(db[:, int(60 / hz_per_bin) + 1:], 99.9))
    return Spectrogram(db - loud, seconds_per_frame, hz_per_bin, settings.image_key())


def failure(path: Path, exc: Exception) -> FailedRecording:
    """What went wrong in words for the list (the file is named there already), all of it for the details."""
    words = f"{exc.problem.message} {exc.problem.fix}".strip() if isinstance(exc, LungKDError) else str(exc)
    return FailedRecording(path, words or type(exc).__name__, f"{exc}\n\n{traceback.format_exc()}")


def _analyse(path: Path, model_folder: Path | None, models: ModelCache, cancel,
             spans: list[tuple[float, float]] | None = None) -> tuple[RecordingAnalysis | None, str]:
    if model_folder is None:
        return None, "No model chosen: pick one in the toolbar to see predictions."
    analysis = analyse_recording(path, models.get(model_folder), cancel=cancel, spans=spans)
    return analysis, "\n".join(analysis.warnings)


def _each_recording(paths: list[Path], work):
    """A job running `work(path, cancel)` on each path in turn; an error becomes that path's
    FailedRecording (one bad file among many) and the rest go on."""
    def job(report, cancel) -> None:
        for number, path in enumerate(paths, start=1):
            report(Event("recordings", "progress", f"Analysing {path.name}", step=number - 1, total=len(paths)))
            try:
                result = work(path, cancel)
            except Cancelled:
                raise
            except Exception as exc:
                result = failure(path, exc)
            report(Event("recordings", "progress", path.name, step=number, total=len(paths), data={"result": result}))
    return job


def open_job(paths: list[Path], model_folder: Path | None, settings: SpectrogramSettings, models: ModelCache):
    """Decode, draw and analyse each recording: OpenRecording results."""
    def work(path: Path, cancel) -> OpenRecording:
        audio = load_audio(path)
        recording = OpenRecording(path, audio.samples, audio.sample_rate,
                                  compute_spectrogram(audio.samples, audio.sample_rate, settings),
                                  model_folder=model_folder, annotation_digest=file_digest(path.with_suffix(".txt")))
        recording.analysis, recording.notice = _analyse(path, model_folder, models, cancel)
        return recording
    return _each_recording(paths, work)


@dataclass
class Analysed:
    """A model's predictions for a recording: of the cycles it found (spans None), or of given spans."""

    path: Path
    model_folder: Path
    analysis: RecordingAnalysis
    notice: str
    annotation_digest: str | None = None


def reanalyse_job(requests: list[tuple[Path, list[tuple[float, float]] | None]], model_folder: Path,
                  models: ModelCache):
    """Recordings (again) with a model: of the cycles found beside each when its spans are None, else of
    those spans (an annotation being edited). Analysed results."""
    spans = dict(requests)

    def work(path: Path, cancel) -> Analysed:
        digest = file_digest(path.with_suffix(".txt")) if spans[path] is None else None
        return Analysed(path, model_folder, *_analyse(path, model_folder, models, cancel, spans[path]), digest)
    return _each_recording(list(spans), work)


def spectrogram_job(samples: np.ndarray, sample_rate: int, settings: SpectrogramSettings):
    return lambda report, cancel: compute_spectrogram(samples, sample_rate, settings)
