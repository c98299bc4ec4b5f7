"""The cycles of one open recording as the user edits them: a CycleDocument, the one place the plots, the
table, the review queue and the saver read. Every edit is one QUndoCommand on the document's QUndoStack
(the stack's clean state is the saved file, so undoing past a save makes the document unsaved again).

Predictions are kept beside the cycles, by model and span: a prediction belongs to a stretch of audio,
not to a row, so undoing a boundary move brings its prediction back at once, and only new spans need
the model again (the session asks the engine for them). So do each cycle's distance from the model's training
data and how sure the automatic segmentation was of its bounds; whether the whole recording is unlike the
training data is judged again from the cycles as they stand.

Automatic cycles keep the segmentation that found them, so that the user can steer it: cycles shifted to
start at the other breathing phase, or found again at a breathing period they give, are one edit each, whose
undo brings back the cycles and the segmentation before it.
"""
from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, replace
from functools import cached_property
from itertools import accumulate
from pathlib import Path

import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QUndoCommand, QUndoStack

from lungkd.core.analysis.limits import recording_distance
from lungkd.core.analysis.predict import EDITED, CyclePrediction, RecordingAnalysis
from lungkd.core.analysis.quality import POOR
from lungkd.core.analysis.segmentation import Segmentation, other_phase_problem, shift_to_other_phase
from lungkd.core.analysis.review import PredictedClass
from lungkd.core.data.annotation_io import SavedAnnotation, Span, annotation_path_for, save_annotation
from lungkd.core.errors import LungKDError
from lungkd.core.labels import CLASS_NAMES, flags_from_label, label_from_flags

MIN_CYCLE_S = 0.05  # no edit makes a cycle shorter
GRID_S = 0.001  # boundaries set by hand land on the millisecond grid of the ICBHI annotations

SpanKey = tuple[float, float]


def snap(seconds: float) -> float:
    return round(round(seconds / GRID_S) * GRID_S, 3)


def key(span) -> SpanKey:
    return (span.start, span.end)


@dataclass(frozen=True)
class ShownCycle(PredictedClass):
    """A cycle as shown: where it is, its annotated class and the chosen model's probabilities (None while
    the model has not seen this span yet), with what says how far to trust them."""

    start: float
    end: float
    truth: int | None
    probabilities: list[float] | None
    training_distance: float | None = None  # from the model's training data; None: the model cannot tell
    unlike_training: bool | None = None  # the cycle is beyond the model's limit
    segmentation_confidence: float | None = None  # how sure the automatic segmentation was of these bounds
    recording_unlike: bool = False  # most of the recording's cycles are unlike the training data
    quality: str | None = None  # the cycle's recording quality: good, warning, poor (None: not checked yet)
    quality_reasons: tuple[str, ...] = ()

    # worked out once per cycle: the plots, the table and the list ask them of every cycle on every redraw
    predicted = cached_property(PredictedClass.predicted.fget)
    confidence = cached_property(PredictedClass.confidence.fget)

    @property
    def poor(self) -> bool:
        """The recording is too poor over this cycle for its prediction to mean much. Views mark it."""
        return self.quality == POOR

    @property
    def doubted(self) -> bool:
        """The prediction is not to be trusted: the cycle, or its whole recording, is unlike the model's training
        data. Views grey it."""
        return bool(self.unlike_training or self.recording_unlike)

    @property
    def matches(self) -> bool | None:
        return None if self.truth is None or self.probabilities is None else self.truth == self.predicted


def _alike(before: list[tuple], after: list[tuple]) -> int:
    """How many (span, prediction) pairs lead both lists as the very same objects."""
    return next((i for i, (a, b) in enumerate(zip(before, after)) if a[0] is not b[0] or a[1] is not b[1]),
                min(len(before), len(after)))


def _shown_cycle(s: Span, p: CyclePrediction | None, bounds: float | None, recording_unlike: bool) -> ShownCycle:
    return ShownCycle(s.start, s.end, s.label, None if p is None else p.probabilities,
                      None if p is None else p.training_distance, None if p is None else p.unlike_training,
                      bounds, recording_unlike, quality=None if p is None else p.quality,
                      quality_reasons=() if p is None else tuple(p.quality_reasons))


# ---------------------------------------------------------------- edits as plain functions of the cycles


def edges_near(spans: tuple[Span, ...], seconds: float, tolerance: float) -> list[tuple[int, str]]:
    """The cycle edges (index, "start" | "end") nearest to `seconds` within `tolerance`: one edge, or the two
    edges of a boundary that neighbouring cycles share."""
    edges = [(abs(getattr(s, edge) - seconds), i, edge) for i, s in enumerate(spans) for edge in ("start", "end")]
    near = [e for e in edges if e[0] <= tolerance]
    if not near:
        return []
    nearest = min(near)
    position = getattr(spans[nearest[1]], nearest[2])
    return [(i, edge) for _, i, edge in near if abs(getattr(spans[i], edge) - position) < GRID_S / 2]


def edge_limits(spans: tuple[Span, ...], edges: list[tuple[int, str]], duration: float) -> tuple[float, float]:
    """How far the edges can go: each cycle keeps MIN_CYCLE_S, and no cycle runs into a neighbour that
    does not move with it."""
    low, high = 0.0, duration
    moving = set(edges)
    for i, edge in edges:
        span = spans[i]
        if edge == "end":
            low = max(low, span.start + MIN_CYCLE_S)
            if i + 1 < len(spans) and (i + 1, "start") not in moving and spans[i + 1].start >= span.end:
                high = min(high, spans[i + 1].start)
        else:
            high = min(high, span.end - MIN_CYCLE_S)
            if i > 0 and (i - 1, "end") not in moving and spans[i - 1].end <= span.start:
                low = max(low, spans[i - 1].end)
    return low, high


def moved(spans: tuple[Span, ...], edges: list[tuple[int, str]], seconds: float, duration: float) -> tuple[Span, ...]:
    low, high = edge_limits(spans, edges, duration)
    if low > high:
        return spans
    seconds = min(max(snap(seconds), low), high)
    out = list(spans)
    for i, edge in edges:
        out[i] = replace(out[i], **{edge: seconds})
    return tuple(out)


def gap_at(spans: tuple[Span, ...], seconds: float, duration: float) -> tuple[float, float] | None:
    """The stretch of time without cycles around `seconds`, or None inside a cycle."""
    if not 0 <= seconds <= duration or any(s.start <= seconds < s.end for s in spans):
        return None
    low = max([s.end for s in spans if s.end <= seconds], default=0.0)
    high = min([s.start for s in spans if s.start > seconds], default=duration)
    return low, high


def with_cycle(spans: tuple[Span, ...], new: Span) -> tuple[tuple[Span, ...], int]:
    ordered = sorted((*spans, new), key=lambda s: (s.start, s.end))
    return tuple(ordered), ordered.index(new)


def split(spans: tuple[Span, ...], index: int, at: float) -> tuple[Span, ...] | None:
    span = spans[index]
    at = snap(at)
    if not span.start + MIN_CYCLE_S <= at <= span.end - MIN_CYCLE_S:
        return None
    return (*spans[:index], replace(span, end=at), replace(span, start=at), *spans[index + 1:])


def merged_label(a: int | None, b: int | None) -> int | None:
    """A merged cycle holds whatever either part held: crackle from one and wheeze from the other is both."""
    if a is None or b is None:
        return None
    (ca, wa), (cb, wb) = flags_from_label(a), flags_from_label(b)
    return label_from_flags(ca | cb, wa | wb)


def merge_with_next(spans: tuple[Span, ...], index: int) -> tuple[Span, ...] | None:
    if not 0 <= index < len(spans) - 1:
        return None
    a, b = spans[index], spans[index + 1]
    return (*spans[:index], Span(a.start, max(a.end, b.end), merged_label(a.label, b.label)), *spans[index + 2:])


def segmented_spans(segmentation: Segmentation) -> tuple[Span, ...]:
    return tuple(Span(c.start, c.end, None) for c in segmentation.cycles)


# ---------------------------------------------------------------- the document


class EditCommand(QUndoCommand):
    """One edit: the cycles and the selection before and after it."""

    def __init__(self, document: "CycleDocument", text: str, after: tuple[Span, ...], selection: list[int]):
        super().__init__(text)
        self.document = document
        self.before, self.after = document.spans, after
        self.selection_before, self.selection_after = list(document.selection_hint), selection

    def redo(self) -> None:
        self.document._set(self.after, self.selection_after)

    def undo(self) -> None:
        self.document._set(self.before, self.selection_before)


class SegmentationCommand(EditCommand):
    """The cycles replaced by those of another segmentation of the recording, which the document then follows."""

    def __init__(self, document: "CycleDocument", text: str, segmentation: Segmentation):
        spans = segmented_spans(segmentation)
        super().__init__(document, text, spans, [0] if spans else [])
        self.segmentation_before, self.segmentation_after = document.segmentation, segmentation

    def redo(self) -> None:
        self.document._follow(self.segmentation_after)
        super().redo()

    def undo(self) -> None:
        self.document._follow(self.segmentation_before)
        super().undo()


class CycleDocument(QObject):
    changed = Signal()  # the cycles or their predictions changed: redraw, predict new spans
    edited = Signal()  # an edit was done, undone or redone: select what it left selected
    state_changed = Signal()  # saved or not, changed on disk or not: marks and actions

    def __init__(self, audio_path: Path, duration: float, sample_rate: int, spans: list[Span], source: str,
                 disk_digest: str | None, parent: QObject | None = None):
        super().__init__(parent)
        self.audio_path = Path(audio_path)
        self.annotation_path = annotation_path_for(self.audio_path)  # the file the analysis reads cycles from
        self.duration = duration
        self.sample_rate = sample_rate
        self.source = source  # where the cycles first came from: annotation, automatic, fixed windows
        self.spans: tuple[Span, ...] = tuple(sorted(spans, key=lambda s: (s.start, s.end)))
        self.disk_digest = disk_digest  # the annotation file as read (None: there was none)
        self.changed_on_disk = False  # someone else changed the file since (the page watches it)
        self.selection_hint: list[int] = []  # the cycles an edit (or its undo) leaves selected
        self.predictions: dict[Path, dict[SpanKey, CyclePrediction]] = {}  # by model, then span
        self.model_analyses: dict[Path, RecordingAnalysis] = {}  # each model's latest, for what it says of itself
        self.first_analysis: RecordingAnalysis | None = None  # how the cycles were found, the file's warnings
        self.bounds_confidence: dict[SpanKey, float] = {}  # the automatic segmentation's, of the spans it found
        self.segmentation: Segmentation | None = None  # the one the cycles follow; None: they are not automatic
        self.generation = 0  # counts the times its predictions were forgotten: answers asked for before are stale
        self.undo_stack = QUndoStack(self)
        self.undo_stack.cleanChanged.connect(self.state_changed)
        # what the views ask for again and again between changes, worked out once per change: the first slot of
        # `changed`, so every other slot sees the cycles as they now are
        self._worked_out: dict[tuple[str, Path | None], object] = {}
        self.changed.connect(self._worked_out.clear)
        # what was made of each cycle, kept across changes for the cycles a change left as they were
        self._made: dict[tuple[str, Path | None], tuple[list, list, tuple]] = {}
        self._bounds_revision = 0  # counts the changes of bounds_confidence

    def _once(self, what: str, model_folder: Path | None, work):
        """`work()`, remembered until the cycles or their predictions change."""
        memo = (what, Path(model_folder) if model_folder else None)
        if memo not in self._worked_out:
            self._worked_out[memo] = work()
        return self._worked_out[memo]

    def _per_cycle(self, what: str, model_folder: Path | None, predicted: list[tuple[Span, CyclePrediction | None]],
                   mark, make) -> list:
        """`make(span, prediction, bounds confidence, mark)` for each (span, prediction), keeping what was made last
        time for the cycles before and after those whose span or prediction is another object now (and all of it
        while `mark` and the bounds are as then): an edit makes anew only the cycles it changed, and views that
        compare cycles by identity redraw only those."""
        memo = (what, Path(model_folder) if model_folder else None)
        before, made, then = self._made.get(memo, ([], [], None))
        if then != (mark, self._bounds_revision):
            before, made = [], []
        first = _alike(before, predicted)
        last = _alike(before[first:][::-1], predicted[first:][::-1])
        bounds = self.bounds_confidence
        out = made[:first] + [make(span, prediction, bounds.get((span.start, span.end)), mark)
                              for span, prediction in predicted[first:len(predicted) - last]] + made[len(made) - last:]
        self._made[memo] = (predicted, out, (mark, self._bounds_revision))
        return out

    @classmethod
    def from_analysis(cls, analysis: RecordingAnalysis, model_folder: Path, sample_rate: int,
                      disk_digest: str | None, parent: QObject | None = None) -> "CycleDocument":
        spans = [Span(c.start, c.end, c.truth) for c in analysis.cycles]
        document = cls(Path(analysis.path), analysis.duration, sample_rate, spans, analysis.cycle_source,
                       disk_digest, parent)
        document.segmentation = analysis.segmentation
        document.add_predictions(model_folder, analysis)
        return document

    @property
    def modified(self) -> bool:
        return not self.undo_stack.isClean()

    @property
    def name(self) -> str:
        return self.audio_path.name

    @property
    def phase_note(self) -> str:
        """Why the cycles may start at expiration, where the segmentation they follow is unsure; else ""."""
        return self.segmentation.phase_note if self.segmentation else ""

    # ---------------------------------------------------------------- predictions

    def add_predictions(self, model_folder: Path, analysis: RecordingAnalysis) -> None:
        self.first_analysis = self.first_analysis or analysis
        self.model_analyses[Path(model_folder)] = analysis
        self.predictions.setdefault(Path(model_folder), {}).update({key(c): c for c in analysis.cycles})
        self._add_bounds({key(c): c.segmentation_confidence for c in analysis.cycles
                          if c.segmentation_confidence is not None})
        self.changed.emit()

    def forget_predictions(self, model_folders: list[Path]) -> None:
        """These models' predictions no longer hold (the patient metadata their prompts read changed): each of
        its spans is to be predicted again, and answers to what was asked before are dropped."""
        for folder in map(Path, model_folders):
            self.predictions.pop(folder, None)
            self.model_analyses.pop(folder, None)
        self.generation += 1
        self.changed.emit()

    def prediction(self, model_folder: Path | None, span) -> CyclePrediction | None:
        return self.predictions.get(Path(model_folder), {}).get(key(span)) if model_folder else None

    def probabilities(self, model_folder: Path | None, span) -> list[float] | None:
        prediction = self.prediction(model_folder, span)
        return None if prediction is None else prediction.probabilities

    def teacher_probabilities(self, teacher_folders: list[Path], span) -> list[list[float]] | None:
        """Each teacher's probabilities for the span; None until every one of them has voted."""
        votes = [self.probabilities(folder, span) for folder in teacher_folders]
        return None if any(v is None for v in votes) else votes

    def span_at(self, seconds: float) -> Span | None:
        """The first cycle holding `seconds`, or None; found by bisection (the review bar asks it of every entry
        after each edit)."""
        reach = self._once("reach", None, lambda: list(accumulate((s.end for s in self.spans), max)))
        index = bisect_right(reach, seconds)  # the first cycle that ends after `seconds` (cycles may overlap)
        return self.spans[index] if index < len(self.spans) and self.spans[index].start <= seconds else None

    def missing_spans(self, model_folder: Path) -> list[SpanKey]:
        known = self.predictions.get(Path(model_folder), {})
        return [key(s) for s in self.spans if key(s) not in known]

    def _predicted(self, model_folder: Path | None) -> list[tuple[Span, CyclePrediction | None]]:
        def work():
            known = self.predictions.get(Path(model_folder), {}) if model_folder else {}
            return [(s, known.get((s.start, s.end))) for s in self.spans]
        return self._once("predicted", model_folder, work)

    def _recording_distance(self, model_folder: Path | None, predicted) -> tuple[float | None, bool | None]:
        """The model's judgement of the whole recording, from its cycles as they stand (edits included)."""
        analysis = self.model_analyses.get(Path(model_folder)) if model_folder else None
        distances = [p.training_distance for _, p in predicted if p is not None and p.training_distance is not None]
        return recording_distance(distances, analysis.distance_limit if analysis else None)

    def shown(self, model_folder: Path | None) -> list[ShownCycle]:
        return self._once("shown", model_folder, lambda: self._shown(model_folder))

    def _shown(self, model_folder: Path | None) -> list[ShownCycle]:
        predicted = self._predicted(model_folder)
        _, unlike = self._recording_distance(model_folder, predicted)
        return self._per_cycle("shown", model_folder, predicted, bool(unlike), _shown_cycle)

    @property
    def cycle_source(self) -> str:
        """Where the cycles came from: "edited" once anything was edited (even if undone since)."""
        return EDITED if self.undo_stack.count() else self.source

    def analysis(self, model_folder: Path | None) -> RecordingAnalysis | None:
        """The recording's analysis by this model as it stands: the cycles it has predicted, with their classes
        as edited, and its judgement of the whole recording from them; None before the model has run on it."""
        return self._once("analysis", model_folder, lambda: self._analysis(model_folder))

    def _analysis(self, model_folder: Path | None) -> RecordingAnalysis | None:
        latest = self.model_analyses.get(Path(model_folder)) if model_folder else None
        if latest is None:
            return None
        predicted = self._predicted(model_folder)
        median, unlike = self._recording_distance(model_folder, predicted)
        first = self.first_analysis
        cycles = self._per_cycle("analysis", model_folder, [(s, p) for s, p in predicted if p is not None], None,
                                 lambda s, p, bounds, _: replace(p, start=s.start, end=s.end, truth=s.label,
                                                                 segmentation_confidence=bounds))
        found = self.segmentation
        steered = {} if found is None else {"segmentation": found, "segmentation_confidence": found.confidence,
                                            "breathing_period": found.period, "fallback_reason": found.reason}
        return replace(first, cycle_source=self.cycle_source, cycles=cycles, calibrated=latest.calibrated,
                       training_distance=median, distance_limit=latest.distance_limit, unlike_training=unlike,
                       model_warnings=list(latest.model_warnings), prompt=latest.prompt,
                       prompt_source=latest.prompt_source, prompt_notes=list(latest.prompt_notes), **steered)

    # ---------------------------------------------------------------- edits

    def _set(self, spans: tuple[Span, ...], selection: list[int]) -> None:
        self.spans = spans
        self.selection_hint = [i for i in selection if 0 <= i < len(spans)]
        self.edited.emit()
        self.changed.emit()

    def edit(self, text: str, spans: tuple[Span, ...] | None, selection: list[int]) -> bool:
        """Pushes the edit onto the undo stack (which applies it); False when it changes nothing."""
        if spans is None or spans == self.spans:
            return False
        self.undo_stack.push(EditCommand(self, text, spans, selection))
        return True

    def move_edges(self, edges: list[tuple[int, str]], seconds: float) -> bool:
        after = moved(self.spans, edges, seconds, self.duration)
        cycles = " and ".join(f"{'start' if e == 'start' else 'end'} of cycle {i + 1}" for i, e in edges)
        return self.edit(f"Move the {cycles}", after, [edges[0][0]])

    def add(self, start: float, end: float) -> bool:
        start, end = sorted((snap(start), snap(end)))
        if end - start < MIN_CYCLE_S:
            return False
        spans, index = with_cycle(self.spans, Span(start, end, None))
        return self.edit(f"Add a cycle at {start:.3f} s", spans, [index])

    def split(self, index: int, at: float) -> bool:
        return self.edit(f"Split cycle {index + 1} at {snap(at):.3f} s", split(self.spans, index, at),
                         [index, index + 1])

    def merge_with_next(self, index: int) -> bool:
        return self.edit(f"Merge cycles {index + 1} and {index + 2}", merge_with_next(self.spans, index), [index])

    def delete(self, indices: list[int]) -> bool:
        doomed = set(indices)
        after = tuple(s for i, s in enumerate(self.spans) if i not in doomed)
        words = f"cycle {indices[0] + 1}" if len(doomed) == 1 else f"{len(doomed)} cycles"
        return self.edit(f"Delete {words}", after, [min(min(doomed), len(after) - 1)] if after else [])

    def set_labels(self, labels: dict[int, int | None], text: str = "") -> bool:
        after = tuple(replace(s, label=labels[i]) if i in labels else s for i, s in enumerate(self.spans))
        if not text:
            names = {CLASS_NAMES[v] if v is not None else "no class" for v in labels.values()}
            what = f"cycle {next(iter(labels)) + 1}" if len(labels) == 1 else f"{len(labels)} cycles"
            text = f"Set {what} to {', '.join(sorted(names))}"
        return self.edit(text, after, sorted(labels))

    def accept_predictions(self, indices: list[int], model_folder: Path | None) -> bool:
        """The model's class for each of the cycles it has predicted."""
        labels = {}
        for i in indices:
            probabilities = self.probabilities(model_folder, self.spans[i])
            if probabilities is not None:
                labels[i] = int(np.argmax(probabilities))
        what = f"cycle {indices[0] + 1}" if len(indices) == 1 else f"{len(labels)} cycles"
        return bool(labels) and self.set_labels(labels, f"Accept the model's class for {what}")

    def replace_all(self, spans: list[Span], text: str) -> bool:
        return self.edit(text, tuple(sorted(spans, key=lambda s: (s.start, s.end))), [0] if spans else [])

    # ---------------------------------------------------------------- steering the automatic segmentation

    def follow_segmentation(self, segmentation: Segmentation, text: str) -> bool:
        """The segmentation's cycles replace the cycles (as one edit; False when nothing changes). The new spans
        go to the model as any edited cycle does."""
        if segmentation == self.segmentation and self.spans == segmented_spans(segmentation):
            return False
        self.undo_stack.push(SegmentationCommand(self, text, segmentation))
        return True

    def shift_to_other_phase(self) -> bool:
        """The cycles start at the other breathing phase's onsets (LungKDError where the segmentation found no
        other phase, or the cycles are not automatic)."""
        if self.segmentation is None:
            raise LungKDError("only cycles the automatic segmentation found can be shifted to the other phase.",
                              fix="move the cycles' boundaries by hand.")
        shifted = shift_to_other_phase(self.segmentation)
        phase = "the other phase" if shifted.shifted else "the phase the segmentation chose"
        return self.follow_segmentation(shifted, f"Shift the cycles to start at {phase}")

    def shift_problem(self) -> str:
        """Why the automatic cycles cannot start at the other phase, in the engine's words; "" where they can."""
        problem = other_phase_problem(self.segmentation)
        return "" if problem is None else str(problem)

    def _follow(self, segmentation: Segmentation | None) -> None:
        self.segmentation = segmentation
        if segmentation is not None:
            self._add_bounds({(c.start, c.end): c.confidence for c in segmentation.cycles})

    def _add_bounds(self, confidences: dict[SpanKey, float]) -> None:
        if any(self.bounds_confidence.get(span_key) != confidence for span_key, confidence in confidences.items()):
            self.bounds_confidence.update(confidences)
            self._bounds_revision += 1

    # ---------------------------------------------------------------- saving

    def unsaved_actions(self) -> list[str]:
        """The edits since the last save in the editor's words (undo texts), for the edit history."""
        stack = self.undo_stack
        clean = max(stack.cleanIndex(), 0)
        return [stack.text(i) for i in range(clean, stack.index())] if clean <= stack.index() else \
            [f"Undo: {stack.text(i)}" for i in reversed(range(stack.index(), clean))]

    def save(self, *, overwrite_changes: bool = False) -> SavedAnnotation:
        """ICBHI text beside the recording (AnnotationChanged when someone else changed it meanwhile)."""
        saved = save_annotation(self.annotation_path, self.spans, self.disk_digest,
                                overwrite_changes=overwrite_changes, actions=self.unsaved_actions())
        self.disk_digest = saved.digest
        self.changed_on_disk = False
        self.undo_stack.setClean()
        self.state_changed.emit()
        return saved
