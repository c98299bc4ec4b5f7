"""LungKD Studio as a new user meets it: starting where Qt cannot, the first start of every workspace and the
session after it, folders to open, the model picker, the Experiments page, and the wizard on data it must
refuse."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch  # noqa: F401  - before PySide6, as in the entry point
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QInputDialog, QMessageBox, QWizard

from lungkd.app import system_check
from lungkd.app.shell.main import build_parser, open_window
from lungkd.app.shell.main_window import MainWindow
from lungkd.app.training.runs_view import COLUMNS, RunsView
from lungkd.app.training.wizard import RECIPES_DIR, DataPage, ReviewPage, RunPage, TeachersPage
from lungkd.core.data.dataset import load_dataset
from lungkd.core.workspace.catalog import Catalog
from recorded_experiment import recorded_experiment

DATA = Path(__file__).with_name("data")


# ---------------------------------------------------------------- before Qt starts


def test_without_a_display_the_studio_says_what_to_do_instead_of_aborting(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    result = subprocess.run([sys.executable, "-m", "lungkd.app.shell.main", "--workspace", str(tmp_path / "ws")],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    assert "needs a display, and this session has none" in result.stderr
    assert "QT_QPA_PLATFORM=offscreen lungkd-studio --screenshot" in result.stderr
    assert "Aborted" not in result.stderr and "qt.qpa" not in result.stderr
    assert not (tmp_path / "ws").exists()  # nothing was started


def test_missing_platform_libraries_are_named_with_their_packages():
    ldd = (DATA / "ldd-libqxcb-debian12.txt").read_text()  # ldd on Qt's xcb plugin, Debian 12 without the packages
    missing = system_check.missing_libraries(ldd)
    assert missing == ["libxcb-icccm.so.4", "libxcb-keysyms.so.1"]
    stock = ["libxcb-cursor.so.0", *missing]  # a stock Debian/Ubuntu desktop also lacks xcb-cursor (dlopened)
    assert system_check.install_advice(stock, "debian") == \
        "  Debian, Ubuntu, Mint: sudo apt install libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1"
    assert system_check.install_advice(stock, "fedora") == \
        "  Fedora, RHEL, Rocky: sudo dnf install xcb-util-cursor xcb-util-wm xcb-util-keysyms"
    every = system_check.install_advice(stock, None)  # an unknown distribution: every family's command
    assert len(every.splitlines()) == 4 and "sudo pacman -S xcb-util-cursor xcb-util-wm" in every


@pytest.mark.parametrize("os_release, family", [
    ('NAME="Ubuntu"\nID=ubuntu\nID_LIKE=debian\n', "debian"),
    ('ID=debian\nVERSION_ID="12"\n', "debian"),
    ('ID="rocky"\nID_LIKE="rhel centos fedora"\n', "fedora"),
    ("ID=fedora\n", "fedora"),
    ("ID=arch\n", "arch"),
    ('ID="opensuse-tumbleweed"\nID_LIKE="opensuse suse"\n', "suse"),
    ("ID=nixos\n", None),
])
def test_the_distribution_family_comes_from_os_release(os_release, family):
    assert system_check.distribution_family(os_release) == family


def test_this_machines_missing_libraries_are_really_missing_and_named():
    if shutil.which("ldd") is None or sys.platform != "linux":
        pytest.skip("needs Linux and ldd")
    import ctypes.util

    missing = system_check.plugin_missing_libraries("xcb")
    for library in missing:  # each one the dynamic linker cannot find here
        assert ctypes.util.find_library(library[3:].split(".so")[0]) is None, library
    problem = system_check.startup_problem({"DISPLAY": ":0"}, "Linux")
    if not missing:
        assert problem is None
    else:
        family = system_check.distribution_family() or "debian"
        for library in missing:
            assert system_check.PACKAGES[library][family] in problem
        assert "QT_QPA_PLATFORM=offscreen" in problem
    assert system_check.startup_problem({"QT_QPA_PLATFORM": "offscreen"}, "Linux") is None
    assert system_check.startup_problem({}, "Windows") is None


def test_playback_names_the_missing_pulseaudio_package(window):
    try:
        from PySide6 import QtMultimedia  # noqa: F401
    except ImportError as exc:
        if "libpulse" not in str(exc):
            raise
    else:
        pytest.skip("Qt Multimedia loads here: libpulse is installed")
    assert not window.play_action.isEnabled()
    tip = window.play_action.toolTip()
    assert "libpulse.so.0" in tip and "libpulse0" in tip and "apt install libpulse0" in tip


# ---------------------------------------------------------------- first start and the last session


@pytest.fixture
def user_settings(tmp_path):
    QSettings.setPath(QSettings.Format.NativeFormat, QSettings.Scope.UserScope, str(tmp_path / "settings"))
    yield
    QSettings().clear()


def _start(qtbot, workspace: Path) -> MainWindow:
    window = open_window(build_parser().parse_args(["--workspace", str(workspace)]))
    qtbot.addWidget(window)
    qtbot.waitUntil(lambda: not window.queue.is_busy(), timeout=120000)
    return window


def test_every_new_workspace_gets_the_demo_and_later_starts_reopen_the_last_session(qtbot, tmp_path, user_settings):
    first = _start(qtbot, tmp_path / "first")
    demo = sorted((tmp_path / "first" / "datasets" / "studio-demo").glob("*.wav"))
    assert len(demo) == 6 and sorted(first.session.recordings) == demo
    assert all(recording.generated for recording in first.session.recordings.values())  # marked so in the list
    first.recordings.recording_list.setCurrentRow(0)
    first.recordings.remove_current()  # the user closes one recording before quitting
    first.close()

    second = _start(qtbot, tmp_path / "second")  # the same user, another new workspace: its own demo
    assert len(second.session.recordings) == 6
    assert all(p.is_relative_to(tmp_path / "second") for p in second.session.recordings)
    second.close()

    again = _start(qtbot, tmp_path / "first")  # not new any more: the five recordings left open last time
    assert sorted(again.session.recordings) == demo[1:]
    assert sorted((tmp_path / "first" / "datasets").iterdir()) == [tmp_path / "first" / "datasets" / "studio-demo"]
    recent = again.recent_paths()
    assert recent[0] == (tmp_path / "second" / "datasets" / "studio-demo").resolve()
    again.close()


# ---------------------------------------------------------------- opening folders


def test_file_open_folder_opens_recordings_and_says_when_there_are_none(window, synthetic_dir, tmp_path,
                                                                         monkeypatch, wait_idle):
    empty, other = tmp_path / "empty", tmp_path / "no-audio"
    empty.mkdir()
    other.mkdir()
    (other / "notes.txt").write_text("not audio")
    (other / "cycle.mp3").write_bytes(b"ID3")
    chosen = []
    monkeypatch.setattr("lungkd.app.shell.main_window.QFileDialog.getExistingDirectory", lambda *a, **k: chosen.pop(0))
    assert window.open_folder_action in window.menuBar().actions()[0].menu().actions()

    chosen.append(str(empty))
    window.open_folder_action.trigger()
    assert f"{empty}: the folder is empty" in window.statusBar().currentMessage()
    assert f"{empty}: the folder is empty" in window.recordings.placeholder.text()
    chosen.append(str(other))
    window.open_folder_action.trigger()
    assert f"{other}: the folder holds no wav, flac or ogg recordings (2 other file(s): .mp3, .txt)" in \
        window.statusBar().currentMessage()

    chosen.append(str(synthetic_dir))
    window.open_folder_action.trigger()
    wait_idle(window)
    assert len(window.session.recordings) == len(list(synthetic_dir.glob("*.wav")))
    window._fill_recent_menu()
    labels = [a.text() for a in window.recent_menu.actions()]
    assert labels[0].startswith(f"{synthetic_dir.name}/ — ")
    assert window.recent_paths()[:3] == [synthetic_dir.resolve(), other.resolve(), empty.resolve()]


# ---------------------------------------------------------------- the model picker and the Experiments page


def test_the_picker_names_models_by_experiment_and_refreshes_when_an_experiment_ends(window, workspace,
                                                                                     model_folder):
    recorded_experiment(workspace, model_folder, "my-first")
    before = [window.model_picker.itemText(i) for i in range(window.model_picker.count())]
    assert not any("my-first" in text for text in before)
    wizard = window.open_wizard()
    wizard.experiment_ended.emit(True)  # what the Run page sends when the experiment finishes
    names = [window.model_picker.itemText(i) for i in range(window.model_picker.count())]
    assert "my-first · student cnn6 mean_1 · seed 1 — Score 51.5 on the test split of synthetic-14-seed1-noise0 " \
           "(25 cycles)" in names
    assert window.runs.table.rowCount() == 1
    wizard.close()


@pytest.fixture
def runs(qtbot, workspace):
    view = RunsView(workspace)
    qtbot.addWidget(view)
    view.resize(1300, 500)
    view.show()
    return view


def test_the_experiments_page_empty_then_listing_with_honest_status(runs, workspace, model_folder, qtbot):
    assert runs.stack.currentWidget() is runs.empty and "No experiments in this workspace yet" in runs.empty.text()
    acting = {button.text(): button.isEnabled() for button in runs.on_selected}
    assert acting == {"Open report": False, "Rename…": False, "Delete…": False}  # nothing to act on
    done = recorded_experiment(workspace, model_folder, "done")
    killed = recorded_experiment(workspace, model_folder, "killed", finished=False)
    runs.refresh()
    assert runs.stack.currentWidget() is runs.table
    status = {runs.table.item(r, 0).text(): runs.table.item(r, COLUMNS.index("status")).text()
              for r in range(runs.table.rowCount())}
    assert status == {"done": "finished",
                      "killed": f"stopped — resume with lungkd run {killed / 'recipe.toml'} --workspace {workspace}"}
    qtbot.wait(50)
    header, metrics = runs.table.horizontalHeader(), runs.table.horizontalHeader().fontMetrics()
    for column, title in enumerate(COLUMNS):
        assert header.sectionSize(column) >= metrics.horizontalAdvance(title), title  # no clipped header

    runs.open_report()
    assert runs.message.text() == "Select an experiment in the table first."
    rows = {runs.table.item(r, 0).text(): r for r in range(runs.table.rowCount())}
    assert not any(button.isEnabled() for button in runs.on_selected)  # listed, none selected yet
    runs.table.selectRow(rows["killed"])
    assert all(button.isEnabled() for button in runs.on_selected)
    runs.open_report()
    assert runs.message.text() == "killed has no report yet: it has not run to the end."
    assert (done / "report.html").is_file()


def test_no_browser_is_said_in_the_window(runs, workspace, model_folder, monkeypatch):
    folder = recorded_experiment(workspace, model_folder, "done")
    runs.refresh()
    runs.table.selectRow(0)
    monkeypatch.setattr("lungkd.app.training.runs_view.QDesktopServices.openUrl", lambda url: False)  # no browser here
    runs.open_report()
    assert runs.message.text() == f"No web browser could be started to show the report; open " \
                                  f"{folder / 'report.html'} yourself."


def test_an_experiment_is_renamed_and_deleted_after_confirmation_keeping_its_teachers(runs, workspace, model_folder,
                                                                                     monkeypatch, qtbot):
    recorded_experiment(workspace, model_folder, "failed-try", finished=False)
    runs.refresh()
    runs.table.selectRow(0)
    monkeypatch.setattr(QInputDialog, "getText", lambda *a, **k: ("second-try", True))
    with qtbot.waitSignal(runs.changed):
        runs.rename_selected()
    assert runs.table.item(0, 0).text() == "second-try" and runs.message.text() == "Renamed failed-try to second-try."
    assert (workspace / "experiments" / "second-try" / "recipe.toml").is_file()

    teachers = sorted((workspace / "teachers").rglob("*.safetensors"))
    runs.table.selectRow(0)
    answers = [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(QMessageBox, "question", lambda *a, **k: answers.pop(0))
    runs.delete_selected()  # "No": nothing happens
    assert runs.table.rowCount() == 1 and (workspace / "experiments" / "second-try").is_dir()
    runs.delete_selected()
    assert runs.table.rowCount() == 0 and not (workspace / "experiments" / "second-try").exists()
    assert teachers and sorted((workspace / "teachers").rglob("*.safetensors")) == teachers
    with Catalog.for_workspace(workspace) as catalog:
        assert catalog.experiments() == []


# ---------------------------------------------------------------- the wizard with data it must refuse



def _without_test_audio(synthetic_dir: Path, folder: Path) -> Path:
    index = load_dataset(synthetic_dir)
    folder.mkdir()
    for path in synthetic_dir.iterdir():
        if path.suffix != ".wav" or index.recording(path.stem).split == "train":
            (folder / path.name).symlink_to(path)
    return folder


def _inspect(page: DataPage, qtbot) -> None:
    page.inspect.click()
    qtbot.waitUntil(lambda: page.stats is not None, timeout=60000)


def test_the_data_page_lists_every_warning_and_refuses_a_selection_without_audio(wizard, qtbot, synthetic_dir,
                                                                                 tmp_path):
    folder = _without_test_audio(synthetic_dir, tmp_path / "no-test-audio")
    (folder / "mystery.mp3").write_bytes(b"ID3")  # a second warning beside the missing audio
    data = wizard.currentPage()
    assert data.synthetic.isChecked()
    qtbot.keyClicks(data.folder, str(folder))
    assert not data.synthetic.isChecked() and data.split.currentText() == "official"  # typing a folder chooses it
    _inspect(data, qtbot)
    warnings = data.warnings.toPlainText().splitlines()
    assert len(warnings) == len(data.stats["warnings"]) >= 2
    assert any("unsupported audio format '.mp3'" in w for w in warnings)
    assert any("have no audio file" in w for w in warnings)
    assert f"{len(warnings)} warning(s), listed below" in data.detected.text()
    assert data.counts.item(1, 0).text() == "test" and data.counts.item(1, 6).text() == "0"  # with audio

    wizard.next()
    assert wizard.currentPage() is data
    assert data.error.text().startswith('selection = "best_test" needs cycles with audio in the test split, but its')
    assert '"last"' in data.error.text() and "Traceback" not in data.error.text()

    data.selection.setCurrentText("last")
    wizard.next()  # inspects again for the new selection, then goes on by itself
    qtbot.waitUntil(lambda: isinstance(wizard.currentPage(), TeachersPage), timeout=60000)
    assert data.error.text() == ""

    wizard.back()
    wizard.load_recipe(RECIPES_DIR / "paper-bts-mean5.toml")  # what "Start from this recipe" does
    assert data.counts.rowCount() == 0 and data.warnings.toPlainText() == "" and data.stats is None
    assert data.detected.text() == ""


def test_the_real_icbhi_folder_here_is_refused_for_best_test_with_the_reason(wizard, qtbot, icbhi_dir):
    data = wizard.currentPage()
    qtbot.keyClicks(data.folder, str(icbhi_dir))
    data.selection.setCurrentText("best_test")
    _inspect(data, qtbot)
    assert data.stats["recordings"] == 920 and data.stats["recordings_with_audio"] == 10
    assert len(data.warnings.toPlainText().splitlines()) == len(data.stats["warnings"])
    wizard.next()
    assert wizard.currentPage() is data
    assert "test split, but its 2756 annotated cycles have no readable audio here" in data.error.text()


def test_a_refused_run_says_why_and_a_new_name_forgets_its_error(wizard, qtbot, model_folder):
    while not isinstance(wizard.currentPage(), RunPage):
        wizard.next()
    recorded_experiment(wizard.workspace, model_folder, "demo-cpu")  # another recipe took the name meanwhile
    run = wizard.currentPage()
    run.start()
    qtbot.waitUntil(lambda: run.start_button.text() == "Start as a new experiment", timeout=60000)
    assert "experiment 'demo-cpu' was started with another recipe: the data was 14 generated" in run.error.text()
    assert "give the recipe a new name" in run.error.text()
    log = run.log.toPlainText()
    assert log.startswith("Stopped by an error; the reason is below.") and "another recipe" not in log  # said once
    assert "Traceback" not in log and run.copy_details.isVisible() and "Traceback" in run.details

    wizard.back()
    review = wizard.currentPage()
    assert isinstance(review, ReviewPage)
    assert review.name.text() == "synthetic-240-seed0-noise0"  # proposed: the name is taken by other data
    wizard.next()
    assert wizard.currentPage() is run
    assert run.error.text() == "" and run.start_button.text() == "Run" and run.log.toPlainText() == ""
    assert not run.copy_details.isVisible() and run.stage.text() == "Not started"
    assert not wizard.button(QWizard.WizardButton.NextButton).isEnabled()
