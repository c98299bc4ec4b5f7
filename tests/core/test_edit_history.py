"""The edit history saved with an annotation (core/data/edit_history.py through annotation_io.save_annotation):
each save appends who changed what and when beside the annotation, the annotation itself saved as before; a
damaged line is named and the rest kept."""
import getpass
import json
from datetime import datetime, timezone

from lungkd.core.data.annotation_io import Span, file_digest, read_annotation_spans, save_annotation
from lungkd.core.data.edit_history import HISTORY_SUFFIX, history_path_for, read_edit_history


def test_each_save_appends_who_changed_what_and_when(tmp_path):
    annotation = tmp_path / "101_1b1_Al_sc_Meditron.txt"
    first = [Span(0.5, 2.5, 0), Span(2.5, 4.75, 1)]
    saved = save_annotation(annotation, first, None)
    assert saved.history == tmp_path / f"101_1b1_Al_sc_Meditron{HISTORY_SUFFIX}" == history_path_for(annotation)

    second = [Span(0.5, 2.5, 2), Span(4.75, 6.0, 0)]  # a class changed, a cycle replaced
    again = save_annotation(annotation, second, saved.digest, actions=["Set cycle 1 to wheeze", "Delete cycle 2"])
    assert read_annotation_spans(annotation)[0] == second  # the annotation is saved as before
    assert again.backup is not None and again.history == saved.history

    records, problems = read_edit_history(annotation)
    assert problems == [] and len(records) == 2
    created, edited = records
    assert created.previous_digest is None and created.changes == ["added the cycle 0.500–2.500 s (normal)",
                                                                   "added the cycle 2.500–4.750 s (crackle)"]
    assert edited.user == getpass.getuser() and edited.annotation == annotation.name
    assert abs((datetime.now(timezone.utc) - datetime.fromisoformat(edited.saved)).total_seconds()) < 60
    assert edited.previous_digest == saved.digest and edited.digest == file_digest(annotation)
    assert edited.changes == ["changed the class of the cycle 0.500–2.500 s from normal to wheeze",
                              "removed the cycle 2.500–4.750 s (crackle)", "added the cycle 4.750–6.000 s (normal)"]
    assert edited.actions == ["Set cycle 1 to wheeze", "Delete cycle 2"]


def test_a_damaged_line_is_named_and_the_others_are_kept(tmp_path):
    annotation = tmp_path / "rec.txt"
    saved = save_annotation(annotation, [Span(0.0, 1.5, 0)], None)
    with saved.history.open("a", encoding="utf-8") as f:
        f.write('{"saved": "2026-01-01T00:00:00+00:00", "user": "x"\n')  # cut short by a crash
    save_annotation(annotation, [Span(0.0, 1.5, 3)], saved.digest)
    records, problems = read_edit_history(annotation)
    assert len(records) == 2 and records[1].changes == ["changed the class of the cycle 0.000–1.500 s from normal "
                                                        "to both"]
    assert len(problems) == 1 and problems[0].line == 2 and "line 2" in problems[0].message
    assert json.loads(saved.history.read_text().splitlines()[0])["user"] == getpass.getuser()


def test_a_history_that_cannot_be_written_does_not_undo_the_save(tmp_path):
    annotation = tmp_path / "rec.txt"
    history_path_for(annotation).mkdir()  # a folder where the history file should be
    saved = save_annotation(annotation, [Span(0.0, 1.5, 0)], None)
    assert saved.history is None and read_annotation_spans(annotation)[0] == [Span(0.0, 1.5, 0)]
