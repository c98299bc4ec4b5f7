"""An edit redraws only what changed: the table's other rows keep their cells, the plots' other stretches of
time keep their bands, and what is shown is the same as a redraw from nothing would show."""
import numpy as np
import pytest
import soundfile as sf

from lungkd.app.recordings.recording_view import BAR_CHUNK_S


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


def cells(table):
    return [table.item(row, 1) for row in range(table.rowCount())]


def chunk_of(cycle) -> int:
    return int(cycle.start // BAR_CHUNK_S)


def test_an_edit_redraws_only_the_rows_and_stretches_it_changed(window, wait_idle, three_minutes):
    window.open_paths([three_minutes])
    wait_idle(window, 600000)
    page, document = window.recordings, window.session.current_document()
    assert len(document.spans) > 60 and page.table.rowCount() == len(document.spans)
    # the first class set on an unannotated recording draws every other cycle in the "no class" lane: the
    # edits measured below are those of a recording being annotated
    document.set_labels({index: 0 for index in range(len(document.spans))})
    wait_idle(window, 600000)
    before_cells, before_bars = cells(page.table), dict(page.view._bar_chunks)
    assert len({chunk for _, chunk in before_bars}) >= 5

    document.set_labels({20: 2})
    wait_idle(window, 600000)
    after = cells(page.table)
    assert [a is b for a, b in zip(before_cells, after)].count(False) == 1 and after[20] is not before_cells[20]
    assert page.table.item(20, page.table.column("annotated")).text() == "wheeze"
    changed = {place for place, (_, item) in page.view._bar_chunks.items() if before_bars.get(place, (0, None))[1]
               is not item}
    assert changed and {chunk for _, chunk in changed} == {chunk_of(document.spans[20])}

    spans = len(document.spans)
    document.split(40, (document.spans[40].start + document.spans[40].end) / 2)
    wait_idle(window, 600000)
    assert page.table.rowCount() == spans + 1
    split_cells = cells(page.table)
    assert all(split_cells[row] is after[row] for row in range(40))  # the rows before the split are untouched
    assert [page.table.item(row, 0).text() for row in range(page.table.rowCount())] == \
        [str(row + 1) for row in range(spans + 1)]  # the rows after it numbered again
    shown = window.session.shown_cycles()
    assert [float(page.table.item(row, 1).text()) for row in range(len(shown))] == \
        pytest.approx([round(c.start, 3) for c in shown], abs=1e-3)

    document.undo_stack.undo()
    document.undo_stack.undo()
    wait_idle(window, 600000)
    assert page.table.rowCount() == spans
    assert page.table.item(20, page.table.column("annotated")).text() == "normal"  # as the setup set it
    bars = page.view._bar_chunks
    drawn = sorted((c.start, c.end) for (lane, _), (members, _) in bars.items() if lane == "model" for c in members)
    assert drawn == sorted((c.start, c.end) for c in window.session.shown_cycles())  # every cycle once, as now
