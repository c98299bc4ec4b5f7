"""Writing ICBHI annotations (the dataset's own formatting, atomic, numbered backups, changes on disk
refused) and Raven selection tables, read back by the project's own loaders."""
import numpy as np
import pytest
import soundfile as sf
from hypothesis import given, settings
from hypothesis import strategies as st

from lungkd.core.data.annotation_io import (AnnotationChanged, Span, annotation_text, file_digest, format_seconds,
                                            read_annotation_spans, read_raven_table, save_annotation,
                                            write_raven_table)
from lungkd.core.data.annotations import parse_annotation_text, read_annotation_file
from lungkd.core.data.dataset import load_dataset
from lungkd.core.errors import DataError

SPANS = [Span(0.036, 0.579, 0), Span(0.579, 2.45, 1), Span(2.45, 3.8935, 2), Span(12.0, 30.0, 3)]

times = st.floats(min_value=0, max_value=7200, allow_nan=False, allow_infinity=False)


@st.composite
def spans(draw, labels=st.integers(0, 3)):
    """Cycles as an editor may hold them: any non-negative times, start before end."""
    start = draw(times)
    end = draw(st.floats(min_value=start, max_value=7300, exclude_min=True, allow_nan=False, allow_infinity=False))
    return Span(start, end, draw(labels))


def test_every_real_icbhi_annotation_is_written_back_byte_for_byte(icbhi_dir):
    files = sorted((icbhi_dir / "annotations").glob("*.txt"))
    assert len(files) == 920
    for path in files:
        spans_read, problems = read_annotation_spans(path)
        assert not problems
        assert annotation_text(spans_read) == path.read_text(), path.name


def test_numbers_are_written_as_the_dataset_writes_them():
    assert [format_seconds(x) for x in (0.0, 30.0, 2.45, 0.036, 3.8935, 1e-05, 7199.999)] == \
        ["0", "30", "2.45", "0.036", "3.8935", "0.00001", "7199.999"]
    assert annotation_text(SPANS[:2]) == "0.036\t0.579\t0\t0\n0.579\t2.45\t1\t0\n"


@settings(max_examples=300, deadline=None)
@given(st.lists(spans(), min_size=1, max_size=30))
def test_icbhi_text_reads_back_exactly(cycles):
    read, problems = parse_annotation_text(annotation_text(cycles), "rec")
    assert not problems
    assert [Span.from_cycle(c) for c in read] == cycles


@settings(max_examples=300, deadline=None)
@given(st.lists(spans(labels=st.none() | st.integers(0, 3)), min_size=1, max_size=30),
       st.sampled_from([2000.0, 22050.0, 4000.5]))
def test_raven_tables_round_trip(tmp_path_factory, cycles, nyquist):
    path = tmp_path_factory.mktemp("raven") / "rec.Table.1.selections.txt"
    write_raven_table(path, cycles, nyquist)
    read, problems = read_raven_table(path)
    assert not problems
    assert read == sorted(cycles, key=lambda s: (s.start, s.end))


def test_saving_keeps_numbered_backups_and_reads_back_through_the_loader(tmp_path):
    path = tmp_path / "101_1b1_Al_sc_Meditron.txt"
    original = "0.036\t0.579\t0\t0\n0.579\t2.45\t0\t0\n"
    path.write_text(original)
    first = save_annotation(path, SPANS, file_digest(path))
    assert first.backup == tmp_path / "101_1b1_Al_sc_Meditron.txt.~1~" and first.backup.read_text() == original
    cycles, problems = read_annotation_file(path)
    assert not problems
    assert [(c.start, c.end, c.crackle, c.wheeze) for c in cycles] == [
        (0.036, 0.579, 0, 0), (0.579, 2.45, 1, 0), (2.45, 3.8935, 0, 1), (12.0, 30.0, 1, 1)]
    assert first.digest == file_digest(path)
    second = save_annotation(path, SPANS[:1], first.digest)
    assert second.backup.name == "101_1b1_Al_sc_Meditron.txt.~2~"
    assert second.backup.read_text() == annotation_text(SPANS)
    assert path.read_text() == "0.036\t0.579\t0\t0\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == [  # and the edit history (tests/core/test_edit_history.py)
        "101_1b1_Al_sc_Meditron.history.jsonl", "101_1b1_Al_sc_Meditron.txt", "101_1b1_Al_sc_Meditron.txt.~1~",
        "101_1b1_Al_sc_Meditron.txt.~2~"]


def test_a_dataset_scan_takes_the_saved_file_and_not_its_backups(tmp_path):
    name = "101_1b1_Al_sc_Meditron"
    sf.write(tmp_path / f"{name}.wav", np.zeros(4000 * 40, dtype=np.float32), 4000)
    (tmp_path / f"{name}.txt").write_text("0\t1\t0\t0\n")
    saved = save_annotation(tmp_path / f"{name}.txt", SPANS, file_digest(tmp_path / f"{name}.txt"))
    save_annotation(tmp_path / f"{name}.txt", SPANS, saved.digest)
    index = load_dataset(tmp_path)
    assert [r.name for r in index.recordings] == [name]
    assert [Span.from_cycle(c) for c in index.recordings[0].cycles] == SPANS
    assert not index.warnings


def test_a_file_changed_on_disk_is_reported_and_not_overwritten(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_text("0\t1\t0\t0\n")
    opened = file_digest(path)
    path.write_text("0\t1\t1\t0\n")  # another program saved meanwhile
    with pytest.raises(AnnotationChanged) as caught:
        save_annotation(path, SPANS, opened)
    assert str(path) in str(caught.value) and "changed on disk" in str(caught.value)
    assert "numbered backup" in caught.value.problem.fix
    assert path.read_text() == "0\t1\t1\t0\n" and sorted(p.name for p in tmp_path.iterdir()) == ["rec.txt"]
    saved = save_annotation(path, SPANS, opened, overwrite_changes=True)  # the user chose to keep their edits
    assert saved.backup.read_text() == "0\t1\t1\t0\n" and path.read_text() == annotation_text(SPANS)


def test_a_file_created_since_opening_is_not_overwritten_either(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_text("0\t1\t0\t0\n")
    with pytest.raises(AnnotationChanged, match="was created on disk"):
        save_annotation(path, SPANS, None)
    assert path.read_text() == "0\t1\t0\t0\n"


def test_a_cycle_without_a_class_is_named_and_nothing_is_written(tmp_path):
    path = tmp_path / "rec.txt"
    path.write_text("0\t1\t0\t0\n")
    with pytest.raises(DataError) as caught:
        save_annotation(path, [Span(0, 1, 0), Span(1, 2.5, None)], file_digest(path))
    assert "cycle 2 (1-2.5 s) has no class" in str(caught.value) and str(path) in str(caught.value)
    assert "accept the model's prediction" in caught.value.problem.fix
    assert path.read_text() == "0\t1\t0\t0\n" and len(list(tmp_path.iterdir())) == 1


RAVEN_FROM_A_TOOL = (
    "\ufeffSelection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tDelta Time (s)\t"
    "Annotation\r\n"
    "1\tWaveform 1\t1\t0.500000000\t2.250000000\t0.000\t2000.000\t1.75\tC\r\n"
    "1\tSpectrogram 1\t1\t0.500000000\t2.250000000\t0.000\t2000.000\t1.75\tC\r\n"
    "2\tSpectrogram 1\t1\t3.1\tthree\t0.000\t2000.000\t\tN\r\n"
    "3\tSpectrogram 1\t1\t2.250000000\t3.000000000\t0.000\t2000.000\t0.75\tstridor\r\n"
    "4\tSpectrogram 1\t1\t0.100000000\t0.400000000\t0.000\t2000.000\t0.3\twheeze\r\n")


def test_a_raven_table_from_another_tool_imports_once_per_selection_with_its_problems(tmp_path):
    path = tmp_path / "rec.Table.1.selections.txt"
    path.write_text(RAVEN_FROM_A_TOOL, encoding="utf-8", newline="")
    read, problems = read_raven_table(path)
    assert read == [Span(0.1, 0.4, 2), Span(0.5, 2.25, 1), Span(2.25, 3.0, None)]
    assert [(p.line, p.path) for p in problems] == [(4, str(path)), (5, str(path))]
    assert "'three' are not both numbers" in problems[0].message
    assert "'stridor' is none of normal, crackle, wheeze, both" in problems[1].message


def test_a_table_without_the_time_columns_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "cycles.txt"
    path.write_text("0.036\t0.579\t0\t0\n")  # an ICBHI annotation, not a selection table
    with pytest.raises(DataError) as caught:
        read_raven_table(path)
    assert caught.value.problem.line == 1 and "'Begin Time (s)'" in str(caught.value)
    assert "header row" in caught.value.problem.fix


def test_exported_raven_table_has_the_columns_bioacoustics_tools_read(tmp_path):
    path = tmp_path / "rec.Table.1.selections.txt"
    write_raven_table(path, [Span(0.036, 0.579, 0), Span(0.579, 2.45, None)], 2000.0)
    assert path.read_text().splitlines() == [
        "Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tLow Freq (Hz)\tHigh Freq (Hz)\tClass",
        "1\tSpectrogram 1\t1\t0.036\t0.579\t0\t2000\tnormal",
        "2\tSpectrogram 1\t1\t0.579\t2.45\t0\t2000\t"]
