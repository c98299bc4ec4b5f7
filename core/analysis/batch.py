"""Many recordings at once, as a user gives them: files and folders expanded to recordings, the same work
done on each, and a file that fails listed with its reason while the others go on. `lungkd predict` and
LungKD Studio both go through here (BirdNET-Analyzer's `analyze` is the example). `analyse_folder` keeps each
analysis in the workspace's results cache (core.analysis.results) as it is made, so a folder analysed again,
or a cancelled run started again, skips what was done.
"""
from __future__ import annotations

import itertools
import time
import traceback
from dataclasses import dataclass, field
from itertools import accumulate
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Callable, Generic, Iterator, TypeVar

from lungkd.core.analysis.groundwork import Scout
from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.data.annotations import annotation_beside, annotations_elsewhere
from lungkd.core.data.audio import AUDIO_EXTENSIONS, distinct_recordings, probe_audio
from lungkd.core.data.patient_metadata import PatientTable
from lungkd.core.errors import AudioError, LungKDError, Problem
from lungkd.core.pool import FasterThreads
from lungkd.core.storage import file_sha256, walk_files

if TYPE_CHECKING:  # the analysis imports torch: the command line lists the recordings and starts a Scout before it
    from lungkd.core.analysis.limits import UsableModel
    from lungkd.core.analysis.predict import RecordingAnalysis
    from lungkd.core.analysis.results import AnalysedRecording, ResultsCache

Result = TypeVar("Result")


@dataclass(frozen=True)
class Failure:
    """A recording that gave no result: what went wrong in words, and everything for the details."""

    path: Path
    message: str  # for a list that names the file already: what is wrong and the fix
    text: str  # one line naming the file, as the command line prints it
    details: str  # all of it, the traceback included
    skipped: bool = False  # left out on purpose (a second file of a recording), not failed

    @classmethod
    def of(cls, path: Path, exc: BaseException) -> "Failure":
        if isinstance(exc, LungKDError):
            words, text = f"{exc.problem.message} {exc.problem.fix}".strip(), str(exc)
        else:
            words, text = str(exc) or type(exc).__name__, f"{path}: {exc or type(exc).__name__}"
        return cls(Path(path), words, text, f"{exc}\n\n{''.join(traceback.format_exception(exc))}")

    @classmethod
    def from_problem(cls, problem: Problem, skipped: bool = False) -> "Failure":
        return cls(Path(problem.path or ""), f"{problem.message} {problem.fix}".strip(), str(problem), str(problem),
                   skipped)


def expand_recordings(paths: list[Path], glob: str | None = None) -> tuple[list[Path], list[Failure]]:
    """Files as given (a wrong one is refused when it is read, with its name), folders as the audio files inside
    them, sorted (with `glob`, those whose path inside the folder ends as the pattern says: "*_Meditron.wav",
    "visit-2/*"); one file per recording name, as every command has it (`distinct_recordings`). What gave no
    recording (a folder that cannot be read, or holds none) and what is left out (a second file of a recording,
    `skipped`) come back as Failures saying why, as does an annotation of a recording in another folder of
    the tree (a recording's annotation is the one beside it)."""
    found: list[Path] = []
    texts: list[Path] = []
    problems: list[Problem] = []

    def skipped(folder: Path, reason: str) -> None:
        fix = "give your user read permission." if "cannot be read" in reason else \
            "move the recordings up, or give the deep folder itself."
        problems.append(Problem(str(folder), f"{reason}.", fix))

    for path in map(Path, paths):
        if not path.is_dir():
            found.append(path)
            continue
        files = list(walk_files(path, skipped))
        inside = sorted(p for p in files if p.suffix.lower() in AUDIO_EXTENSIONS)
        if glob:
            inside = [p for p in inside if PurePath(p.relative_to(path)).match(glob)]
        if not inside and path.is_dir():
            problems.append(_no_match(path, glob) if glob else _no_recordings(path))
        found += inside
        texts += [p for p in files if p.suffix.lower() == ".txt"]
    kept, duplicates = distinct_recordings(found)
    left_out = duplicates + _annotations_elsewhere(kept, texts)
    return kept, [Failure.from_problem(p) for p in problems] + [Failure.from_problem(p, True) for p in left_out]


def _annotations_elsewhere(recordings: list[Path], texts: list[Path]) -> list[Problem]:
    """X.txt in another folder of the tree than X.wav is not read (a recording's annotation is the one beside
    it: `annotation_beside`); one that says something else is named, as the dataset reader names it."""
    by_name: dict[str, list[Path]] = {}
    for text in sorted(texts):
        by_name.setdefault(text.stem, []).append(text)
    problems = []
    for recording in recordings:
        elsewhere = [text for text in by_name.get(recording.stem, []) if text.parent != recording.parent]
        if elsewhere:
            problems += annotations_elsewhere(annotation_beside(recording)[0], elsewhere, recording.stem)
    return problems


def _no_recordings(folder: Path) -> Problem:
    """A folder without audio files, and what it holds instead."""
    files = list(itertools.islice(walk_files(folder, lambda *_: None), 1000))
    if not files:
        return Problem(str(folder), "the folder is empty.", f"give a folder of {_AUDIO} recordings.")
    kinds = ", ".join(sorted({p.suffix.lower() or "no extension" for p in files})[:5])
    return Problem(str(folder), f"the folder holds no {_AUDIO} recordings ({len(files)} other file(s): {kinds}).",
                   f"give a folder of {_AUDIO} recordings, or the recordings themselves.")


def _no_match(folder: Path, glob: str) -> Problem:
    return Problem(str(folder), f"no {_AUDIO} recording in the folder matches '{glob}'.",
                   "check the pattern: it is matched against the end of each file's path inside the folder, e.g. "
                   "'*.wav' or 'visit-2/*.flac'.")


_AUDIO = "wav, flac or ogg"


@dataclass
class Progress:
    """Where a batch is: `done` of `total` recordings, `current` the one being worked on; where known, the
    seconds left and how many recordings came from the results cache."""

    done: int
    total: int
    current: Path | None
    eta_s: float | None = None
    reused: int = 0


def for_each_recording(items: list, work: Callable[[object, CancelToken | None], Result], *,
                       path_of: Callable[[object], Path] = Path, cancel: CancelToken | None = None,
                       on_progress: Callable[[Progress], None] | None = None) -> Iterator[Result | Failure]:
    """`work(item, cancel)` on each item in turn, yielding its result, or its Failure when it raised (one bad
    file among many: the rest go on). A cancel stops the batch (Cancelled) between and within recordings."""
    for number, item in enumerate(items):
        path = path_of(item)
        if on_progress:
            on_progress(Progress(number, len(items), path))
        if cancel is not None and cancel.is_set():
            raise Cancelled("analysis cancelled.")
        try:
            yield work(item, cancel)
        except Cancelled:
            raise
        except Exception as exc:
            yield Failure.of(path, exc)
    if on_progress:
        on_progress(Progress(len(items), len(items), None))


@dataclass
class Batch(Generic[Result]):
    results: list[Result] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)  # recordings whose work failed
    left_out: list[Failure] = field(default_factory=list)  # files never worked on: a second file of a recording...


def analyse_paths(paths: list[Path], model: UsableModel, *, cancel: CancelToken | None = None,
                  on_progress: Callable[[Progress], None] | None = None,
                  patients: PatientTable | None = None) -> Batch[RecordingAnalysis]:
    """Every recording the paths hold, analysed by the model (with the patient metadata of `patients` where it
    names them); the files that failed (or were left out) with their reasons."""
    from lungkd.core.analysis.predict import analyse_recording

    recordings, left_out = expand_recordings(paths)
    batch: Batch[RecordingAnalysis] = Batch(failures=[f for f in left_out if not f.skipped],
                                            left_out=[f for f in left_out if f.skipped])
    for outcome in for_each_recording(recordings, lambda path, token: analyse_recording(path, model, cancel=token,
                                                                                        patients=patients),
                                      cancel=cancel, on_progress=on_progress):
        (batch.failures if isinstance(outcome, Failure) else batch.results).append(outcome)
    return batch


def audio_seconds(path: Path) -> float:
    """A recording's length from its header (0 when it cannot be read: it will fail with its reason later)."""
    try:
        info = probe_audio(path)
    except AudioError:
        return 0.0
    return info.frames / info.sample_rate


class TimeLeft:
    """The time a batch has left: the seconds of audio still to go, at the pace the recordings analysed so far
    went (recordings read from the results cache cost nothing and teach nothing)."""

    def __init__(self, recordings: list[Path]):
        seconds = [audio_seconds(p) for p in recordings]
        self._left = list(accumulate(reversed(seconds)))[::-1] + [0.0]  # audio from recording i to the end
        self._audio = dict(zip(recordings, seconds))
        self.spent = self.analysed = 0.0
        self.reused = 0

    def record(self, path: Path, took_s: float, reused: bool) -> None:
        if reused:
            self.reused += 1
        else:
            self.spent += took_s
            self.analysed += self._audio.get(path, 0.0)

    def eta(self, done: int) -> float | None:
        return self.spent / self.analysed * self._left[done] if self.analysed else None


def analyse_folder(paths: list[Path], model: UsableModel, results: ResultsCache | None, *, glob: str | None = None,
                   cancel: CancelToken | None = None, on_progress: Callable[[Progress], None] | None = None,
                   on_result: Callable[[AnalysedRecording | Failure], None] | None = None,
                   patients: PatientTable | None = None, threads: int = 1,
                   scout: Scout | None = None) -> Batch[AnalysedRecording]:
    """Every recording the paths hold (`glob` narrowing folders), each analysed by the model (with the patient
    metadata of `patients` where it names them; the features and model on one torch thread or up to `threads`,
    whichever `FasterThreads` finds faster) unless `results` holds its analysis by the same model, from the
    same prompt, already; each new analysis is stored there as soon as it is made, so a cancel (Cancelled) loses
    only the recording being analysed. Progress carries the time left. A `scout` finds each recording's cycles
    and checks it in its helper process, and the next recording's while the model works on this one's."""
    from lungkd.core.analysis.predict import analyse_recording, prompt_for
    from lungkd.core.analysis.results import AnalysedRecording, ModelIdentity

    recordings, left_out = expand_recordings(paths, glob)
    batch: Batch[AnalysedRecording] = Batch(failures=[f for f in left_out if not f.skipped],
                                            left_out=[f for f in left_out if f.skipped])
    identity = ModelIdentity.of(model)
    clock = TimeLeft(recordings)
    chooser = FasterThreads(threads)  # shared by the recordings: short ones teach it too
    following = dict(zip(recordings, recordings[1:]))

    def work(path: Path, token: CancelToken | None) -> AnalysedRecording:
        began = time.perf_counter()
        probe_audio(path)  # a file that is missing or no recording is refused in words, before it is hashed
        digest = file_sha256(path)
        # a model that reads prompts analyses differently when the patient metadata changes
        prompt = prompt_for(path, model.inputs.prompts, patients).text if model.inputs.prompts else None
        entry = results.entry(path, digest, identity, prompt) if results is not None else None
        analysed = results.get(entry, digest, identity) if results is not None else None
        if analysed is None:
            if scout is not None:
                scout.order(path)
                if path in following:  # ahead, on the other core; wasted only if the next one proves cached
                    scout.order(following[path])
            analysed = AnalysedRecording.of(analyse_recording(path, model, cancel=token, patients=patients,
                                                              threads=chooser, scout=scout), digest, identity)
            if results is not None:
                results.put(entry, analysed)
        clock.record(path, time.perf_counter() - began, analysed.reused)
        return analysed

    def progress(p: Progress) -> None:
        if on_progress:
            on_progress(Progress(p.done, p.total, p.current, clock.eta(p.done), clock.reused))

    for outcome in for_each_recording(recordings, work, cancel=cancel, on_progress=progress):
        (batch.failures if isinstance(outcome, Failure) else batch.results).append(outcome)
        if on_result:
            on_result(outcome)
    return batch
