"""A recording's groundwork: what its analysis needs besides the model — its cycles (the annotation beside it,
else the automatic segmentation) and its checks (quality and breathing) — and a Scout, a helper process that
works it out ahead while this process imports torch and runs the model.

On a two-core machine `lungkd predict` spent about 2.5 s of an hour's recording on one core finding the cycles and
checking the recording, between the start-up and the model's batches; threads could not overlap that work with
the rest, since the analysis' many small numpy steps hold the interpreter's lock (the segmentation beside the
quality measurement in a thread: 2.75 -> 2.69 s). A helper process can: the command starts it before importing
torch, orders the first recording, and while the model classifies one recording the helper finds the next one's
cycles. Nothing here imports torch, so the helper is ready in about a second.
"""
from __future__ import annotations

import logging
import multiprocessing.connection
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lungkd.core.analysis.recording_checks import RecordingChecks, check_recording
from lungkd.core.analysis.segmentation import Segmentation, segment_cycles
from lungkd.core.data.annotations import annotation_beside, clip_cycles_to_duration, read_annotation_file
from lungkd.core.data.audio import load_audio
from lungkd.core.data.metadata import parse_recording_name
from lungkd.core.data.records import Cycle
from lungkd.core.errors import LungKDError, Problem
from lungkd.core.pool import hand_back_freed_memory, spawn_helper

EDITED = "edited"  # cycles a person is placing, predicted before they are saved
HELPER_GONE = ("the helper process finding recordings' cycles stopped (killed, or out of memory); the rest are "
               "found in this process.")


@dataclass
class FoundCycles:
    cycles: list[Cycle]
    source: str  # one of CYCLE_SOURCES
    problems: list[Problem]
    segmentation: Segmentation | None = None  # when there was no annotation


def segment_recording(path: Path, samples: np.ndarray, sr: int, period_hint: float | None = None) -> Segmentation:
    """The automatic segmentation at the site the recording's ICBHI name gives: the site decides which breathing
    phase is inspiration (the trachea's is the softer)."""
    name = parse_recording_name(path.stem)
    return segment_cycles(samples, sr, location=name.location if name else None, period_hint=period_hint)


def find_cycles(path: Path, samples: np.ndarray, sr: int) -> FoundCycles:
    """The annotation beside the recording, else the automatic segmentation (or its fixed windows). An
    annotation without a usable cycle is named in the problems, which say that segmentation replaced it."""
    annotation, problems = annotation_beside(path)
    if annotation is not None:
        cycles, line_problems = read_annotation_file(annotation, path.stem)
        problems += line_problems
        if cycles:
            kept, clipped = clip_cycles_to_duration(cycles, len(samples) / sr, annotation)
            return FoundCycles(list(kept), "annotation", problems + clipped)
    segmentation = segment_recording(path, samples, sr)
    if annotation is not None:
        problems.insert(0, Problem(str(annotation), "the annotation gives no usable cycle, so the cycles were "
                                   f"found without it ({segmentation.method}).", "correct the annotation file."))
    return FoundCycles([Cycle(path.stem, i, c.start, c.end, 0, 0) for i, c in enumerate(segmentation.cycles)],
                       segmentation.method, problems, segmentation)


def edited_cycles(path: Path, spans: list[tuple[float, float]]) -> FoundCycles:
    """Cycles the caller gives (start, end in seconds), in its order: an annotation being edited."""
    return FoundCycles([Cycle(path.stem, i, start, end, 0, 0) for i, (start, end) in enumerate(spans)], EDITED, [])


def checks_of(samples: np.ndarray, sr: int, found: FoundCycles) -> RecordingChecks:
    """The recording's quality and breathing, over the cycles found."""
    return check_recording(samples, sr, [(c.start, c.end) for c in found.cycles], found.source, found.segmentation)


# ---------------------------------------------------------------- the scout

_CYCLES, _CHECKS, _FAILED = "cycles", "checks", "failed"


class Scout:
    """A helper process finding recordings' cycles and checks ahead, in the order they are asked for
    (`order`); `found` and `checks` wait for them. Where the helper is gone (it would not start, or was killed)
    they answer None, said once, and the caller works the recording out itself; a recording that failed in the
    helper raises its error here, as it would have raised in this process."""

    def __init__(self):
        self._connection, theirs = multiprocessing.Pipe()
        self._ordered: deque[Path] = deque()  # what the helper has yet to answer or we to take, oldest first
        self._answers: dict[tuple[Path, str], object] = {}
        self.gone = False
        try:
            self._process = spawn_helper(_scout, theirs)
        except (OSError, RuntimeError):  # no process can start here (a script without a __main__ guard, no memory)
            self._process = None
            self._lost()
        theirs.close()

    def order(self, path: Path) -> None:
        """Has the helper work out the recording's groundwork, unless it is ordered already."""
        if self.gone or Path(path) in self._ordered:
            return
        try:
            self._connection.send(Path(path))
        except (OSError, ValueError):  # the helper's end closed: it is gone
            self._lost()
            return
        self._ordered.append(Path(path))

    def found(self, path: Path) -> FoundCycles | None:
        """The recording's cycles, worked out in the helper (ordered now if they were not); None when it is gone."""
        return self._take(Path(path), _CYCLES)

    def checks(self, path: Path) -> RecordingChecks | None:
        """The recording's checks over the cycles `found` gave; None when the helper is gone."""
        answer = self._take(Path(path), _CHECKS)
        if Path(path) in self._ordered:
            self._ordered.remove(Path(path))
        return answer

    def close(self) -> None:
        """Stops the helper, whatever it is doing (what it worked out ahead is not needed any more)."""
        self._connection.close()
        if self._process is not None:
            if self._process.is_alive():
                self._process.terminate()
            self._process.join()
        self.gone = True

    def __enter__(self) -> "Scout":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _take(self, path: Path, kind: str):
        self.order(path)
        # answers come in the order asked: those of recordings ordered before this one will not be asked for
        while self._ordered and self._ordered[0] != path:
            dropped = self._ordered.popleft()
            self._answers.pop((dropped, _CYCLES), None)
            self._answers.pop((dropped, _CHECKS), None)
        while (path, kind) not in self._answers:
            if self.gone or not self._receive():
                return None
        answer = self._answers.pop((path, kind))
        if isinstance(answer, BaseException):
            self._ordered.remove(path)
            raise answer
        return answer

    def _receive(self) -> bool:
        """Reads the helper's next answer; False when the helper has gone instead."""
        ready = multiprocessing.connection.wait([self._connection, self._process.sentinel])
        try:
            if self._connection not in ready and not self._connection.poll():
                raise EOFError
            path, kind, value = self._connection.recv()
        except (EOFError, OSError):
            self._lost()
            return False
        if path not in self._ordered:
            return True  # the answer for a recording no one will ask about any more
        if kind == _FAILED:  # the recording's cycles and checks both fail with its error
            self._answers[(path, _CYCLES)] = self._answers[(path, _CHECKS)] = value
        else:
            self._answers[(path, kind)] = value
        return True

    def _lost(self) -> None:
        if not self.gone:
            self.gone = True
            logging.getLogger(__name__).warning(HELPER_GONE)


def _scout(connection) -> None:
    """The helper: for each recording ordered, its cycles, then its checks, or the error that stopped it."""
    while True:
        try:
            path = connection.recv()
        except (EOFError, OSError):
            return
        try:
            decoded = load_audio(path)
            found = find_cycles(path, decoded.samples, decoded.sample_rate)
            connection.send((path, _CYCLES, found))
            connection.send((path, _CHECKS, checks_of(decoded.samples, decoded.sample_rate, found)))
            del decoded, found
            hand_back_freed_memory()  # idle until the next order: about 130 MB held otherwise, 40 MB handed back
        except Exception as exc:  # said where the recording is analysed, as if it had failed there
            connection.send((path, _FAILED, exc if isinstance(exc, LungKDError) else RuntimeError(str(exc))))
