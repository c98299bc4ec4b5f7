"""An edit redraws only what changed: the document keeps the cycles an edit left alone the same objects, the
table's other rows keep their cells, the plots' other stretches of time keep their bands and labels, and what is
shown is the same as a redraw from nothing would show."""
import numpy as np
import pyqtgraph as pg
import pytest
import soundfile as sf
from PySide6.QtCore import QEvent, QObject
from PySide6.QtGui import QRegion

from lungkd.app.recordings import cycle_table, recording_view
from lungkd.app.recordings.cycle_document import CycleDocument
from lungkd.app.recordings.cycle_table import CycleTable
from lungkd.app.recordings.recording_view import BAR_CHUNK_S
from lungkd.core.data.annotation_io import Span


@pytest.fixture
def three_minutes(tmp_path):
    """Three minutes of breathing-like noise at 4 kHz, without annotation: segmented into some 100 cycles over
    several stretches of BAR_CHUNK_S."""
    rate = 4000
    t = np.arange(180 * rate) / rate
    breath = np.random.default_rng(0).normal(size=t.size) * (0.3 + 0.25 * np.sin(2 * np.pi * t / 3.5) ** 2)
    path = tmp_path / "three_minutes.wav"
    sf.write(path, (0.2 * breath).astype(np.float32), rate, subtype="PCM_16")
    return path


@pytest.fixture
def opened(window, wait_idle, qtbot, three_minutes):
    """The window with the three minutes opened, analysed and drawn; `settle()` waits for an edit's predictions
    and their redraw."""
    def settle():
        wait_idle(window, 600000)
        qtbot.wait(20)  # the redraw the predictions scheduled
        page = window.recordings
        qtbot.waitUntil(lambda: not page.view.drawing and not page.table.filling)

    window.open_paths([three_minutes])
    settle()
    assert len(window.session.current_document().spans) > 60
    return window, settle


def cells(table):
    return [table.item(row, 1) for row in range(table.rowCount())]


def table_texts(table):
    return [[table.row_number(row)] + [table.item(row, column).text() for column in range(1, table.columnCount())]
            for row in range(table.rowCount())]


def chunk_of(cycle) -> int:
    return int(cycle.start // BAR_CHUNK_S)


def fill(brush) -> tuple:
    brush = pg.mkBrush(brush)
    return brush.color().rgba(), brush.style()


def outline(pen) -> tuple:
    pen = pg.mkPen(pen)
    return pen.color().rgba(), pen.style(), pen.widthF()


def drawing(view):
    """What the view draws, in plain values: each lane's bands (place, fill, outline), the boundaries over the
    spectrogram, and each label's wording, the text it shows and where."""
    bands, boundaries = {}, []
    for stretch in view._stretches.values():
        for lane, item in stretch.items.items():
            if not item.isVisible():
                continue
            if lane == "boundaries":
                boundaries += list(item.getData()[0])
                continue
            o = item.opts
            bands.setdefault(lane, []).extend(
                (x0, x1, o["y0"], o["height"], fill(brush), outline(pen))
                for x0, x1, brush, pen in zip(o["x0"], o["x1"], o["brushes"], o["pens"]))
    labels = [(label.wording, label.shown, label.at if label.shown else None) for label in view.labels]
    return {lane: sorted(b) for lane, b in bands.items()}, sorted(boundaries), labels


def redrawn_from_nothing(view, cycles, qtbot):
    """The view's drawing of `cycles` made anew: everything it drew before is dropped first."""
    view.set_analysis([])
    assert not view._stretches and not view.labels
    view.set_analysis(cycles, edited=view.edited, phase_note=view.phase_note)
    qtbot.waitUntil(lambda: not view.drawing)
    return drawing(view)


def test_an_edit_redraws_only_the_rows_and_stretches_it_changed(opened):
    window, settle = opened
    page, document = window.recordings, window.session.current_document()
    assert page.table.rowCount() == len(document.spans)
    # the first class set on an unannotated recording draws every other cycle in the "no class" lane: the
    # edits measured below are those of a recording being annotated
    document.set_labels({index: 0 for index in range(len(document.spans))})
    settle()
    before_cells, before_stretches = cells(page.table), dict(page.view._stretches)
    assert len(before_stretches) >= 5

    document.set_labels({20: 2})
    settle()
    after = cells(page.table)
    assert [a is b for a, b in zip(before_cells, after)].count(False) == 1 and after[20] is not before_cells[20]
    assert page.table.item(20, page.table.column("annotated")).text() == "wheeze"
    changed = {chunk for chunk, stretch in page.view._stretches.items() if before_stretches.get(chunk) is not stretch}
    assert changed == {chunk_of(document.spans[20])}

    spans = len(document.spans)
    document.split(40, (document.spans[40].start + document.spans[40].end) / 2)
    settle()
    assert page.table.rowCount() == spans + 1
    split_cells = cells(page.table)
    assert all(split_cells[row] is after[row] for row in range(40))  # the rows before the split are untouched
    assert [page.table.row_number(row) for row in range(page.table.rowCount())] == \
        [str(row + 1) for row in range(spans + 1)]  # the rows after it numbered again
    shown = window.session.shown_cycles()
    assert [float(page.table.item(row, 1).text()) for row in range(len(shown))] == \
        pytest.approx([round(c.start, 3) for c in shown], abs=1e-3)

    document.undo_stack.undo()
    document.undo_stack.undo()
    settle()
    assert page.table.rowCount() == spans
    assert page.table.item(20, page.table.column("annotated")).text() == "normal"  # as the setup set it
    bands = drawing(page.view)[0]["model"]
    assert [(x0, x1) for x0, x1, *_ in bands] == sorted((c.start, c.end) for c in window.session.shown_cycles())


class PaintedRegion(QObject):
    """The part of a widget repainted while it watches."""

    def __init__(self, widget):
        super().__init__()
        self.region = QRegion()
        widget.installEventFilter(self)

    def eventFilter(self, watched, event) -> bool:
        if event.type() == QEvent.Type.Paint:
            self.region = self.region.united(event.region())
        return False


def test_an_edit_repaints_only_the_stretch_of_time_it_redrew(opened, qtbot):
    """pyqtgraph repaints a whole plot whenever an item is added to it or taken from it (its ViewBox checks its
    auto-range): an edit's stretches join and leave groups of their own instead."""
    window, settle = opened
    page, document = window.recordings, window.session.current_document()
    page.view.wave.setXRange(0, 180, padding=0)  # the whole recording in view: six stretches of time
    document.set_labels({index: 0 for index in range(len(document.spans))})  # the annotated lane, once
    settle()
    viewport = page.view.plots.viewport()
    for edit in (lambda: document.set_labels({30: 1}), lambda: document.split(50, document.spans[50].start + 0.5),
                 document.undo_stack.undo):
        painted = PaintedRegion(viewport)
        edit()
        settle()
        viewport.removeEventFilter(painted)
        # the stretch redrawn (or two, where the edit's cycle crosses into the next), not the whole plots
        assert not painted.region.isEmpty()
        assert painted.region.boundingRect().width() < viewport.width() / 2, painted.region.boundingRect()


def test_the_document_makes_anew_only_the_cycles_an_edit_changed(opened):
    window, settle = opened
    document, model = window.session.current_document(), window.session.model_folder
    before = document.shown(model)
    document.set_labels({10: 1})
    after = document.shown(model)
    assert after is not before and after[10] is not before[10] and after[10].truth == 1
    assert all(a is b for i, (a, b) in enumerate(zip(before, after)) if i != 10)
    analysed = document.analysis(model).cycles
    document.move_edges([(30, "end")], document.spans[30].end - 0.2)  # a new span: the model has not seen it
    moved = document.shown(model)
    assert moved[30].predicted is None and all(a is b for i, (a, b) in enumerate(zip(after, moved)) if i != 30)
    assert all(a is b for i, (a, b) in enumerate(zip(analysed, document.analysis(model).cycles)) if i < 30)
    settle()  # its prediction arrives: that cycle alone is made again
    predicted = document.shown(model)
    assert predicted[30].predicted is not None and predicted[30] is not moved[30]
    assert all(a is b for i, (a, b) in enumerate(zip(moved, predicted)) if i != 30)


def same_as_from_nothing(window, qtbot):
    """The window's plots and table show what a view and a table made anew for its cycles show."""
    page, cycles = window.recordings, window.session.shown_cycles()
    edited = drawing(page.view)
    assert edited == redrawn_from_nothing(page.view, cycles, qtbot)
    fresh = CycleTable()
    fresh.show_cycles(cycles, distance_limit=window.session.current_analysis().distance_limit)
    qtbot.waitUntil(lambda: not fresh.filling)
    assert table_texts(page.table) == table_texts(fresh)
    return edited


def test_after_edits_the_plots_and_table_are_those_of_a_redraw_from_nothing(opened, qtbot):
    window, settle = opened
    page, document = window.recordings, window.session.current_document()
    page.view.wave.setXRange(20, 70, padding=0)  # near enough for labels to show
    qtbot.wait(20)
    inside = [i for i, span in enumerate(document.spans) if 25 < span.start < 60]
    document.set_labels({inside[0]: 3})  # the first class: every other cycle, in every stretch, has none now
    settle()
    document.set_labels({inside[1]: 1, inside[3]: 2})
    document.split(inside[2], (document.spans[inside[2]].start + document.spans[inside[2]].end) / 2)
    document.merge_with_next(inside[5])
    document.move_edges([(inside[7], "end")], document.spans[inside[7]].end - 0.3)
    document.delete([len(document.spans) - 1])
    document.undo_stack.undo()  # the delete
    settle()

    edited = same_as_from_nothing(window, qtbot)
    assert sum(shown is not None for _, shown, _ in edited[2]) >= 10  # labels shown, and placed


def test_a_long_recording_is_drawn_over_turns_of_the_event_loop_and_an_edit_meanwhile_is_kept(opened, qtbot,
                                                                                              monkeypatch):
    window, settle = opened
    monkeypatch.setattr(recording_view, "STRETCHES_AT_ONCE", 2)  # as an hour's 120 stretches would be
    monkeypatch.setattr(cycle_table, "ROWS_AT_ONCE", 10)
    page, document = window.recordings, window.session.current_document()
    page.view.set_analysis([])
    page.table.show_cycles([])
    window.session.set_current(document.audio_path)  # shown anew, as when it was opened: in pieces
    assert page.showing and not page.view.cycles  # the plots come in the next turn, the table after them
    page.finish_showing()  # as whatever reads the page does
    assert not page.showing and page.view.drawing and not page.view._stretches  # its cycles: in the next turns
    assert page.table.filling and sum(page.table.item(row, 0) is not None for row in range(len(document.spans))) == 10
    document.set_labels({50: 1})  # before the rest is drawn
    document.split(70, (document.spans[70].start + document.spans[70].end) / 2)
    settle()
    assert page.table.item(50, page.table.column("annotated")).text() == "crackle"
    same_as_from_nothing(window, qtbot)


def test_the_cycle_at_a_time_is_the_first_holding_it_even_where_annotated_cycles_overlap(qtbot, tmp_path):
    """The review bar finds each entry's cycle by bisection: the same cycle as reading the cycles in order."""
    spans = [Span(0.0, 4.0, 0), Span(0.4, 4.4, 1), Span(4.4, 8.0, None), Span(5.0, 5.5, 2), Span(7.0, 12.0, 3),
             Span(13.0, 14.0, 0)]  # overlapping, nested, and a gap
    document = CycleDocument(tmp_path / "a.wav", 15.0, 4000, spans, "annotation", None)
    for seconds in np.arange(-1.0, 16.0, 0.05):
        assert document.span_at(seconds) == next((s for s in document.spans if s.start <= seconds < s.end), None)
    document.split(2, 6.0)
    assert document.span_at(6.2) == Span(6.0, 8.0, None) and document.span_at(12.5) is None
