"""The recording view on its own: the header says how the cycles were found and how sure the segmentation
is, and cycle labels never overlap, however short the cycles and however narrow the window."""
import itertools
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtCore import QPointF

from lungkd.app.recordings.cycle_document import CycleDocument
from lungkd.app.recordings.jobs import OpenRecording, compute_spectrogram
from lungkd.app.recordings.spectrogram_settings import SpectrogramSettings
from lungkd.core.analysis.predict import CyclePrediction, RecordingAnalysis
from lungkd.core.data.audio import DecodedAudio

SR = 4000


def recording_with(spans, *, source="automatic", truth=False, confidence=0.8, period=2.5, reason=""):
    """A recording of noise whose analysis has cycles at `spans`; labels of every class, some annotated."""
    samples = np.random.default_rng(0).normal(0, 0.1, int(spans[-1][1] * SR)).astype(np.float32)
    rng = np.random.default_rng(1)
    bounds = None if truth else (0.0 if source == "fixed windows" else 0.7)
    cycles = [CyclePrediction(s, e, list(rng.dirichlet(np.ones(4))), int(rng.integers(4)) if truth else None, bounds)
              for s, e in spans]
    analysis = RecordingAnalysis("/data/breaths.wav", SR, len(samples) / SR, "Meditron", source, cycles,
                                 segmentation_confidence=None if truth else confidence,
                                 breathing_period=None if truth else period, fallback_reason=reason)
    return OpenRecording(Path("/data/breaths.wav"), DecodedAudio(samples, SR, []),
                         compute_spectrogram(samples, SR, SpectrogramSettings()), analysis)


def show(view, recording):
    """The recording in the view with its cycles as the Recordings page gives them: through its CycleDocument."""
    model = Path("/models/any")
    document = CycleDocument.from_analysis(recording.analysis, model, recording.sample_rate, None)
    view.show_recording(recording, SpectrogramSettings(), document.shown(model))


def shown_labels(view):
    """(lane y, scene rectangle, text, cycle start, cycle end) of every visible label."""
    return [(label.y, label.item.sceneBoundingRect(), label.item.toPlainText(), label.start, label.end)
            for label in view.labels if label.item is not None and label.item.isVisible()]  # None: never shown


def assert_labels_apart_and_inside(view):
    """No two shown labels touch, and each lies within its cycle's stretch of the track."""
    shown = shown_labels(view)
    for (_, r1, t1, *_), (_, r2, t2, *_) in itertools.combinations(shown, 2):
        assert not r1.intersects(r2), f"'{t1}' overlaps '{t2}'"
    box = view.track.vb
    for y, rect, text, start, end in shown:
        left, right = (box.mapViewToScene(QPointF(x, y)).x() for x in (start, end))
        assert left - 0.5 <= rect.left() and rect.right() <= right + 0.5, f"'{text}' spills out of its cycle"


SHORT_AND_LONG = [(0.0, 0.15), (0.15, 0.4), (0.4, 0.5), (0.5, 3.0), (3.0, 3.05), (3.05, 3.3), (3.3, 3.8),
                  (3.8, 6.5), (6.5, 6.6), (6.6, 6.62), (6.62, 9.0), (9.0, 9.4), (9.4, 9.6), (9.6, 12.0)]


def test_labels_of_very_short_cycles_never_overlap(view, qtbot):
    show(view, recording_with(SHORT_AND_LONG, truth=True, source="annotation"))
    qtbot.wait(50)
    shown = shown_labels(view)
    assert shown and len(shown) < len(view.labels)  # the long cycles are labelled, the shortest are not
    assert_labels_apart_and_inside(view)
    texts = {text for _, _, text, start, end in shown if end - start >= 2}
    assert any(" " in text for text in texts)  # a long cycle has room for the class and its confidence


@pytest.mark.parametrize("width", [1400, 700, 420])
def test_labels_stay_apart_when_the_window_narrows_or_zooms(view, qtbot, width):
    show(view, recording_with(SHORT_AND_LONG, truth=True, source="annotation"))
    qtbot.wait(50)
    view.resize(width, 500)
    qtbot.wait(50)
    assert_labels_apart_and_inside(view)
    view.zoom(0.3)
    qtbot.wait(50)
    assert_labels_apart_and_inside(view)


def test_overlapping_annotated_cycles_keep_their_labels_apart(view, qtbot):
    overlapping = [(0.0, 4.0), (0.4, 4.4), (4.4, 8.0), (7.0, 12.0)]  # annotators sometimes overlap cycles
    show(view, recording_with(overlapping, truth=True, source="annotation"))
    qtbot.wait(50)
    assert_labels_apart_and_inside(view)
    assert len(shown_labels(view)) >= 3


def test_header_says_how_the_cycles_were_found_and_how_sure(view, qtbot):
    show(view, recording_with([(0.3, 2.8), (2.8, 5.4), (5.4, 7.9)], confidence=0.83, period=2.6))
    title = view.title.text()
    assert "3 cycles from automatic segmentation, 83% sure (a breath every 2.6 s)" in title
    assert "cycle 2: " in view.describe(view.track, 4.0, 1.5) and "its bounds 70% sure" in view.describe(
        view.track, 4.0, 1.5)
    reason = "no breathing heard: the breath band (150-1000 Hz) changes by only 0.7 dB"
    show(view, recording_with([(0.0, 4.0), (4.0, 8.0)], source="fixed windows", confidence=0.0, period=None,
                              reason=reason))
    assert "2 cycles" in view.title.text() and "in fixed 4 s windows" in view.title.text()
    assert reason in view.title.text()
    show(view, recording_with([(0.0, 4.0), (4.0, 8.0)], truth=True, source="annotation"))
    assert "from the annotation file" in view.title.text() and "sure" not in view.title.text()
