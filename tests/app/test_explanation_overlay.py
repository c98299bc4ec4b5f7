"""Why this class, in LungKD Studio: the user selects a cycle and presses X (Analysis > Why this class?); the
engine explains it off the GUI thread and the overlay lands on the spectrogram where the sound that moved the
model lies, on the display's linear-hertz axis; Cancel stops it. A generated normal cycle with a wheeze
inserted at a known time and band, and the shipped demo model, which calls it wheeze."""
import numpy as np
import soundfile as sf
from PySide6.QtCore import Qt
from PySide6.QtTest import QTest

from lungkd.core.labels import CLASS_NAMES
from lungkd.core.models.inventory import shipped_models_folder
from explain_recordings import WHEEZE_S, normal_cycles, with_wheeze
from studio_driver import click_row


def wheeze_recording(folder):
    """An ICBHI-named recording whose one annotated cycle holds a 420 Hz wheeze at its middle."""
    samples, sr, start, end = normal_cycles(1)[0]
    at = start + 0.5 * (end - start)
    path = folder / "101_1b1_Al_sc_Meditron.wav"
    sf.write(path, with_wheeze(samples, sr, at).astype(np.float32), sr)
    path.with_suffix(".txt").write_text(f"{start:.3f}\t{end:.3f}\t0\t0\n")
    return path, at


def open_with_demo_model(window, path, wait_idle):
    window.use_model(str(shipped_models_folder() / "demo-cnn6"))
    window.open_paths([path])
    wait_idle(window)
    click_row(window.recordings, 0)


def test_x_draws_the_explanation_where_the_wheeze_is(window, tmp_path, wait_idle, qtbot):
    path, at = wheeze_recording(tmp_path)
    open_with_demo_model(window, path, wait_idle)
    page = window.recordings
    assert window.explain_action.isEnabled() and not page.explanation.image.isVisible()
    QTest.keyClick(page.table, Qt.Key.Key_X)
    assert window.queue.is_busy()  # off the GUI thread: the window keeps working meanwhile
    wait_idle(window)
    explanation = page.explanation.explanation
    assert explanation is not None and CLASS_NAMES[explanation.target] == "wheeze"
    assert page.explanation.image.isVisible() and "Why wheeze" in page.explanation_caption.text()

    image, rect = page.explanation.image.image, page.explanation.image.mapRectToParent(
        page.explanation.image.boundingRect())
    alpha = image[..., 3].astype(float)  # (columns, rows): time by linear hertz
    column, row = np.unravel_index(np.argmax(alpha), alpha.shape)
    seconds = rect.left() + (column + 0.5) * rect.width() / alpha.shape[0]
    hz = (row + 0.5) * rect.height() / alpha.shape[1]
    assert at - 0.1 <= seconds <= at + WHEEZE_S + 0.1, seconds
    assert 200 <= hz <= 1200, hz  # the wheeze's 420 Hz and its octave, on the display's linear axis
    # most of what is drawn lies in the wheeze's time and band
    times = rect.left() + (np.arange(alpha.shape[0]) + 0.5) * rect.width() / alpha.shape[0]
    rows = (np.arange(alpha.shape[1]) + 0.5) * rect.height() / alpha.shape[1]
    inside = alpha[(times >= at - 0.1) & (times <= at + WHEEZE_S + 0.1)][:, (rows >= 200) & (rows <= 1200)]
    assert inside.sum() > 0.5 * alpha.sum()

    page.recording_list.setCurrentRow(0)
    page.select_cycle(0)
    window.session.current_document().delete([0])  # the explained cycle is edited away: so is its overlay
    qtbot.waitUntil(lambda: not page.explanation.image.isVisible(), timeout=5000)


def test_cancel_stops_the_explanation_and_draws_nothing(window, tmp_path, wait_idle, qtbot):
    path, _ = wheeze_recording(tmp_path)
    open_with_demo_model(window, path, wait_idle)
    page = window.recordings
    window.explain_action.trigger()
    qtbot.waitUntil(lambda: window.cancel_button.isVisible(), timeout=5000)
    with qtbot.waitSignal(page.explaining.cancelled, timeout=30000):
        window.cancel_button.click()
    wait_idle(window, 30000)
    assert not page.explanation.image.isVisible() and page.explanation.explanation is None
