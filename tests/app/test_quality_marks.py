"""The recording's quality and breathing where a user looks in LungKD Studio: the recording list, the header
above the plots and the cycle table, the reasons in words in their tooltips, and the predictions on poor cycles
marked (hatched in the track, in italics in the table, in the export). A synthetic annotated recording with the
recorder overdriven over a known stretch, opened as a user opens it."""
import csv
import shutil

import soundfile as sf

from lungkd.app.recordings.cycle_table import QUALITY
from lungkd.core.analysis.quality import POOR
from lungkd.core.data.synth import with_clipping

CLIPPED = (4.0, 6.0)


def clipped_copy(recording, folder):
    samples, sr = sf.read(recording, dtype="float32")
    target = folder / recording.name
    sf.write(target, with_clipping(samples, sr, *CLIPPED), sr, subtype="PCM_16")
    shutil.copy(recording.with_suffix(".txt"), target.with_suffix(".txt"))
    return target


def test_quality_and_breathing_show_in_the_list_the_header_and_the_table(window, recording, tmp_path, wait_idle,
                                                                         qtbot):
    clipped = clipped_copy(recording, tmp_path)
    window.open_paths([clipped])
    wait_idle(window)
    page = window.recordings
    analysis = page.session.current.analysis
    assert analysis.quality == POOR or any(c.poor for c in analysis.cycles)

    entry = page.recording_list.label_text(clipped)
    assert f"quality {analysis.quality}" in entry and "breaths/min" in entry and "cycles poorly recorded" in entry
    item = page.recording_list.item_for(clipped)
    assert "clipped" in item.toolTip()  # the reasons in words

    title = page.view.title.text()
    assert f"quality {analysis.quality}" in title
    assert f"{analysis.breathing_rate:.0f} breaths/min ({analysis.breathing_rate_confidence:.0%} sure)" in title
    assert "clipped" in page.view.title.toolTip()

    shown = page.session.shown_cycles()
    poor = [row for row, c in enumerate(shown) if c.poor]
    assert poor and all(shown[row].start < CLIPPED[1] and shown[row].end > CLIPPED[0] for row in poor)
    table = page.table
    for row, cycle in enumerate(shown):
        cell = table.item(row, QUALITY)
        prediction = table.item(row, table.column("prediction"))
        assert prediction.font().italic() == cycle.poor
        if cycle.poor:
            assert cell.text() == "⚠ poor" and "clipped" in cell.toolTip()
            assert "poor recording quality" in prediction.toolTip()
            page.select_cycle(row)  # the readout says it too, where the pointer is
            assert "quality poor" in page.view.describe(page.view.track, (cycle.start + cycle.end) / 2, 1.5)


def test_the_export_of_the_studio_marks_the_poor_cycles(window, recording, tmp_path, wait_idle):
    clipped = clipped_copy(recording, tmp_path)
    window.open_paths([clipped])
    wait_idle(window)
    window.session.export_csv(tmp_path / "cycles.csv")
    with open(tmp_path / "cycles.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    shown = window.session.shown_cycles()
    assert [row["quality"] for row in rows] == [c.quality for c in shown]
    assert any(row["quality"] == POOR and "clipped" in row["quality_reasons"] for row in rows)
    assert {row["breathing_rate"] for row in rows} == {f"{window.session.current.analysis.breathing_rate:.1f}"}


def test_a_cycle_drawn_over_the_clipped_stretch_is_marked_poor_once_predicted(window, recording, tmp_path,
                                                                               wait_idle):
    clipped = clipped_copy(recording, tmp_path)
    window.open_paths([clipped])
    wait_idle(window)
    document = window.session.current_document()
    document.delete([i for i, s in enumerate(document.spans) if s.start < CLIPPED[1] and s.end > CLIPPED[0]])
    document.add(*CLIPPED)  # the user draws a cycle over exactly the stretch that clipped
    wait_idle(window)  # the engine predicts the new span, and checks it
    page = window.recordings
    row = next(i for i, c in enumerate(page.session.shown_cycles()) if (c.start, c.end) == CLIPPED)
    assert page.session.shown_cycles()[row].poor
    assert page.table.item(row, QUALITY).text() == "⚠ poor" and "clipped" in page.table.item(row, QUALITY).toolTip()
