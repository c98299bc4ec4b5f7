"""The Studio says what is generated and what is doubtful: generated recordings carry a mark in the list and the
recording's header, dropped recordings are shown, a prediction that differs from the annotation is told apart from
a sound outside the model's training data, and the review reasons say when the model is outside it."""
import shutil

from PySide6.QtCore import Qt

from lungkd.app.recordings.words import DIFFERS, GENERATED, OUTSIDE, differ
from lungkd.core.models.inventory import shipped_models_folder
from studio_driver import drop, key, open_for_editing

CTRL_SHIFT = Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier


def test_generated_recordings_are_marked_and_the_first_dropped_recording_is_shown(window, synthetic_dir, tmp_path,
                                                                                  wait_idle, qtbot):
    generated = sorted(synthetic_dir.glob("*.wav"))[:2]
    own = tmp_path / "own recordings"  # the same sounds copied as a user's own: no mark comes with them
    own.mkdir()
    for path in sorted(synthetic_dir.glob("*.wav"))[2:4]:
        for suffix in (".wav", ".txt"):
            shutil.copy(path.with_suffix(suffix), own)
    mine = sorted(own.glob("*.wav"))
    window.open_paths(generated)
    wait_idle(window)
    page = window.recordings
    assert page.session.current.path == generated[0]
    assert f"◆ {GENERATED}" in page.recording_list.label_text(generated[0])
    assert f"◆ {GENERATED}" in page.view.title.text()
    window.grab().save(str(tmp_path / "generated-mark.png"))

    assert drop(window, mine)
    wait_idle(window)
    qtbot.waitUntil(lambda: page.session.current is not None and page.session.current.path == mine[0])
    assert page.recording_list.current_path() == mine[0]  # listed last, and shown
    assert page.recording_list.row(page.recording_list.currentItem()) == 2
    assert GENERATED not in page.recording_list.label_text(mine[0]) and GENERATED not in page.view.title.text()
    window.grab().save(str(tmp_path / "dropped-shown.png"))


def test_differs_from_the_annotation_and_outside_the_training_data_are_told_apart(window, synthetic_dir,
                                                                                  tone_recording, tmp_path,
                                                                                  wait_idle, qtbot):
    picker = window.model_picker  # the shipped demo model knows its training data, so it marks what lies outside
    picker.setCurrentIndex(picker.findData(str(shipped_models_folder() / "demo-cnn6")))
    folder = tmp_path / "recordings"
    folder.mkdir()
    for path in (*sorted(synthetic_dir.glob("*.wav"))[:3], tone_recording):
        shutil.copy(path, folder)
        if path.with_suffix(".txt").is_file():
            shutil.copy(path.with_suffix(".txt"), folder)
    relabelled = folder / sorted(synthetic_dir.glob("*.txt"))[0].name  # every cycle annotated "both"
    relabelled.write_text("".join("\t".join(line.split("\t")[:2] + ["1", "1"]) + "\n"
                                  for line in relabelled.read_text().splitlines()))
    page = open_for_editing(window, folder, wait_idle, qtbot)
    tone = folder / tone_recording.name
    labels = {path: page.recording_list.label_text(path) for path in page.session.recordings}
    assert f"⚠ {OUTSIDE}" in labels[tone] and DIFFERS not in labels[tone]
    differing = sum(c.matches is False for c in page.session.documents[relabelled.with_suffix(".wav")].shown(
        page.session.model_folder))
    assert differing and f"✗ {differ(differing)}" in labels[relabelled.with_suffix(".wav")]
    assert not any("unlike" in text for text in labels.values())

    review = window.review
    key(page, Qt.Key.Key_R, CTRL_SHIFT)
    qtbot.waitUntil(lambda: review.active and bool(review.entries) and not review.waiting, timeout=60000)
    reasons = {}
    for position, entry in enumerate(review.entries):
        review.go(position)
        reasons.setdefault(entry.path, []).append(review.bar.reason.text())
    assert all(reason.endswith(f" · this recording is {OUTSIDE}: doubt the model's view") for reason in reasons[tone])
    assert not any(OUTSIDE in reason for path, said in reasons.items() if path != tone for reason in said)
    review.go(review.entries.index(next(e for e in review.entries if e.path == tone)))
    window.grab().save(str(tmp_path / "review-outside.png"))
