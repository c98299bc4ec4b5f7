"""The background jobs of the Recordings page: core calls composed for one window, run by the engine
adapter. Each goes through the engine's per-file loop (core.analysis.batch, as `lungkd predict` does),
reports a core `Event` per recording for progress and delivers each recording's result (or its Failure) as a
partial result."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from lungkd.core.analysis.batch import Failure, Progress, for_each_recording
from lungkd.core.analysis.display import display_spectrogram, relative_to_loud_parts
from lungkd.core.analysis.explain import explain_recording_cycle
from lungkd.core.analysis.predict import RecordingAnalysis
from lungkd.core.data.annotation_io import annotation_path_for, file_digest
from lungkd.core.data.audio import DecodedAudio, load_audio
from lungkd.core.data.generated import is_generated
from lungkd.core.data.patient_metadata import PatientMetadataError
from lungkd.core.events import Event

from .analysis_process import AnalysisProcess, loaded_model
from .spectrogram_settings import SpectrogramSettings
from .waveform_summary import WaveformSummary


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
    generated: bool = False  # written by LungKD's generator (core.data.generated): no real patient's
    waveform: WaveformSummary = field(init=False)  # what the view draws of its samples, at any zoom

    def __post_init__(self) -> None:  # where it is made: the engine thread, not the GUI when it is first shown
        self.waveform = WaveformSummary.of(self.samples, self.sample_rate)

    @property
    def samples(self) -> np.ndarray:
        return self.audio.samples

    @property
    def sample_rate(self) -> int:
        return self.audio.sample_rate

    @property
    def duration(self) -> float:
        return len(self.samples) / self.sample_rate


def compute_spectrogram(samples: np.ndarray, sample_rate: int, settings: SpectrogramSettings) -> Spectrogram:
    db, seconds_per_frame, hz_per_bin = display_spectrogram(samples, sample_rate, window_s=settings.window_ms / 1000,
                                                            hop_s=settings.hop_ms / 1000)
    return Spectrogram(relative_to_loud_parts(db, hz_per_bin), seconds_per_frame, hz_per_bin, settings.image_key())


def annotation_digest(audio: Path) -> str | None:
    """Of the annotation beside the recording as it is now (None: there is none), to tell later whether
    someone else changed it."""
    return file_digest(annotation_path_for(audio))


def _analyse(path: Path, audio: DecodedAudio, model_folder: Path | None, analyses: AnalysisProcess, cancel,
             spans: list[tuple[float, float]] | None = None) -> tuple[RecordingAnalysis | None, str]:
    if model_folder is None:
        return None, "No model chosen: pick one in the toolbar to see predictions."
    try:
        analysis = analyses.analyse(path, audio, model_folder, cancel=cancel, spans=spans)
    except PatientMetadataError as exc:  # the recording still opens: the patient panel mends the sidecar
        return None, f"{exc.problem.message} Correct it in the Patient panel."
    return analysis, "\n".join(analysis.warnings)


def _each_recording(items: list, work):
    """A job running `work(item, cancel)` on each item (a path, or an open recording) in turn, through the
    engine's per-file loop (core.analysis.batch): each result is delivered as it comes, an error as that
    recording's Failure (one bad file among many), and the rest go on."""
    def job(report, cancel) -> None:
        def progress(p: Progress) -> None:
            words = f"Analysing {p.current.name}" if p.current is not None else "Analysed"
            report(Event("recordings", "progress", words, step=p.done, total=p.total))

        path_of = lambda item: item.path if isinstance(item, OpenRecording) else item  # noqa: E731
        for result in for_each_recording(items, work, path_of=path_of, cancel=cancel, on_progress=progress):
            report.deliver(result)
    return job


def open_job(paths: list[Path], model_folder: Path | None, settings: SpectrogramSettings, analyses: AnalysisProcess,
             left_out: list[Failure] = ()):
    """Decode each recording once, then draw and analyse it from those samples: OpenRecording results, after
    the Failures of what `expand_recordings` left out."""
    def work(path: Path, cancel) -> OpenRecording:
        digest = annotation_digest(path)  # first: the annotation is read bounded and by type before anything else
        audio = load_audio(path)
        recording = OpenRecording(path, audio, compute_spectrogram(audio.samples, audio.sample_rate, settings),
                                  model_folder=model_folder, annotation_digest=digest, generated=is_generated(path))
        recording.analysis, recording.notice = _analyse(path, audio, model_folder, analyses, cancel)
        return recording
    each = _each_recording(paths, work)

    def job(report, cancel) -> None:
        for failed in left_out:
            report.deliver(failed)
        each(report, cancel)
    return job


@dataclass
class Analysed:
    """A model's predictions for a recording: of the cycles it found (spans None), or of given spans; None when
    the recording's patient sidecar could not be read (the notice says why)."""

    path: Path
    model_folder: Path
    analysis: RecordingAnalysis | None
    notice: str
    annotation_digest: str | None = None


def reanalyse_job(requests: list[tuple[OpenRecording, list[tuple[float, float]] | None]], model_folder: Path,
                  analyses: AnalysisProcess):
    """Open recordings (again) with a model, from their decoded samples: of the cycles found beside each when
    its spans are None, else of those spans (an annotation being edited). Analysed results."""
    spans = {recording.path: given for recording, given in requests}

    def work(recording: OpenRecording, cancel) -> Analysed:
        given = spans[recording.path]
        digest = annotation_digest(recording.path) if given is None else None
        return Analysed(recording.path, model_folder,
                        *_analyse(recording.path, recording.audio, model_folder, analyses, cancel, given), digest)
    return _each_recording([recording for recording, _ in requests], work)


def spectrogram_job(samples: np.ndarray, sample_rate: int, settings: SpectrogramSettings):
    return lambda report, cancel: compute_spectrogram(samples, sample_rate, settings)


def explain_job(recording: OpenRecording, model_folder: Path, start: float, end: float):
    """Why the model gives the cycle [start, end) its class (core.analysis.explain): a CycleExplanation."""
    return lambda report, cancel: explain_recording_cycle(recording.path, recording.audio, loaded_model(model_folder),
                                                          start, end, cancel=cancel)


def segment_job(recording: OpenRecording, period: float, analyses: AnalysisProcess):
    """The recording's automatic segmentation again, at a breathing period the user gives."""
    return lambda report, cancel: analyses.segment(recording.path, recording.audio, period)
