import shutil

import pytest
from PySide6.QtCore import QSettings

from lungkd.app.recordings.recording_view import RecordingView
from lungkd.app.shell.main_window import MODEL_KEY, MainWindow
from lungkd.app.training.wizard import TrainingWizard
from tiny_model import tiny_model_folder


@pytest.fixture(scope="session")
def model_folder(synthetic_dir, tmp_path_factory):
    return tiny_model_folder(synthetic_dir, tmp_path_factory)


@pytest.fixture(scope="session")
def recording(synthetic_dir):
    """The annotated recording (ICBHI name) of the session's synthetic dataset with the most cycles."""
    return max(sorted(synthetic_dir.glob("*.wav")), key=lambda p: len(p.with_suffix(".txt").read_text().split("\n")))


@pytest.fixture
def workspace(tmp_path, model_folder):
    """A workspace holding the tiny model as a finished run."""
    folder = tmp_path / "workspace"
    shutil.copytree(model_folder, folder / "runs" / "tiny-cnn6" / "model")
    return folder


@pytest.fixture
def store(tmp_path, workspace):
    """Settings in a temporary ini file, with the tiny model as the one last chosen."""
    settings = QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat)
    settings.setValue(MODEL_KEY, str(workspace / "runs" / "tiny-cnn6" / "model"))
    return settings


def discard_edits(window):
    """Cycle edits a test left unsaved are dropped: closing the window would ask about them and wait."""
    for document in window.session.documents.values():
        document.undo_stack.setClean()


@pytest.fixture
def window(qtbot, workspace, store):
    win = MainWindow(workspace, store)
    qtbot.addWidget(win, before_close_func=discard_edits)
    win.show()
    yield win
    win.queue.cancel_all()
    win.queue.wait_idle(30000)


@pytest.fixture
def wait_idle(qtbot):
    """Waits until the window's engine queue has finished every task and the recording on screen is shown whole."""
    return lambda window, timeout=60000: qtbot.waitUntil(
        lambda: not window.queue.is_busy() and not window.recordings.showing, timeout=timeout)


@pytest.fixture
def wizard(qtbot, tmp_path):
    """The training wizard on a workspace of its own, shown."""
    w = TrainingWizard(tmp_path / "ws")
    qtbot.addWidget(w)
    w.show()
    return w


@pytest.fixture
def view(qtbot):
    """A RecordingView on its own, shown at 1000 x 500."""
    widget = RecordingView()
    qtbot.addWidget(widget)
    widget.resize(1000, 500)
    widget.show()
    qtbot.waitExposed(widget)
    return widget
