"""`lungkd-studio`: LungKD Studio.

torch is imported before PySide6: on Windows the other order fails to load torch's DLLs. Before Qt starts,
app.system_check looks for a display and the libraries Qt's platform plugin needs, so a machine without them
gets the packages to install instead of Qt's abort.
"""
from __future__ import annotations

import argparse
import gc
import os
import signal
import sys
from pathlib import Path

import torch  # noqa: F401  (must come before PySide6)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lungkd-studio", description="LungKD Studio: lung-sound recordings "
                                     "with per-cycle predictions.")
    parser.add_argument("--workspace", type=Path, help="workspace folder (default: $LUNGKD_WORKSPACE or the "
                        "platform's user data folder)")
    parser.add_argument("--open", type=Path, action="append", default=[], metavar="RECORDING",
                        help="a recording or folder to open (repeatable)")
    parser.add_argument("--screenshot", type=Path, metavar="PNG",
                        help="render the window (after opening --open) to this PNG and exit")
    return parser


def settle(app, ms: int = 300) -> None:
    """Lets queued signals and layouts finish before a screenshot."""
    from PySide6.QtCore import QEventLoop, QTimer

    loop = QEventLoop()
    QTimer.singleShot(ms, loop.quit)
    loop.exec()
    app.processEvents()


def demo_recordings(workspace: Path) -> Path:
    """Six synthetic recordings in ICBHI layout (with annotations), generated once per workspace."""
    from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset

    return ensure_synthetic_dataset(workspace / "datasets" / "studio-demo", SyntheticData(recordings=6, seed=0))


def is_new_workspace(folder: Path) -> bool:
    """A workspace that does not exist yet, or an empty folder: it gets the first-start demo."""
    return not folder.is_dir() or not any(folder.iterdir())


def open_window(args: argparse.Namespace):
    """The main window on the workspace, showing what it should on this start: the recordings asked for, else
    the first-start demo in a new workspace, else the recordings open when the workspace was last closed."""
    from lungkd.core.workspace.paths import default_workspace, resolve_workspace

    from .main_window import MainWindow

    new = is_new_workspace(Path(args.workspace).expanduser() if args.workspace else default_workspace())
    workspace = resolve_workspace(args.workspace)
    window = MainWindow(workspace)
    window.show()
    if args.open:
        window.open_paths(args.open)
    elif new:  # a newcomer sees predictions at once: a few generated recordings, analysed by the demo model
        window.open_paths([demo_recordings(workspace)])
    else:
        window.reopen_last_session()
    return window


def freeze_start_up_objects() -> None:
    """Puts what start-up made (torch, Qt, the window: about 300,000 objects, alive as long as the Studio) out of the
    garbage collector's reach. Its full collections then look only at what came after, so they no longer freeze
    the window for 200-350 ms each while an hour-long recording is opened or edited (bench/ui_latency.py)."""
    gc.collect()  # garbage first: frozen, it would never be freed
    gc.freeze()


INTERRUPTED = 130  # as `lungkd` ends when Ctrl-C stops it (128 + SIGINT)


def end_on_ctrl_c(app, window, leave=None) -> None:
    """Ctrl-C in the terminal that started the Studio ends it as it ends a `lungkd` command: what runs is cancelled
    and waited for (an experiment's workers stop after their current step, and the same recipe resumes from
    there), then the Studio leaves with 130, without a traceback; a second Ctrl-C leaves at once. Qt's event loop
    runs no Python between events, so a timer lets the interpreter look at its signals. `leave(code)` ends the
    event loop (app.exit)."""
    from PySide6.QtCore import QTimer

    def on_sigint(signum, frame) -> None:
        signal.signal(signal.SIGINT, lambda *_: os._exit(INTERRUPTED))
        unsaved = sum(1 for document in window.session.documents.values() if not document.undo_stack.isClean())
        print("lungkd-studio: stopped" + (f"; {unsaved} recording(s) had unsaved annotation edits, not saved"
                                          if unsaved else "") + ".", file=sys.stderr, flush=True)
        window.stop_all_work()
        (leave or app.exit)(INTERRUPTED)

    signal.signal(signal.SIGINT, on_sigint)
    window.signal_timer = QTimer(window, interval=200)
    window.signal_timer.timeout.connect(lambda: None)
    window.signal_timer.start()


def main(argv: list[str] | None = None) -> int:
    try:
        return _start(argv)
    except KeyboardInterrupt:  # before the window's own handler: while importing torch and Qt, or opening
        print("lungkd-studio: stopped.", file=sys.stderr)
        return INTERRUPTED


def _start(argv: list[str] | None) -> int:
    from lungkd.core.pool import numpy_blas_on_one_thread

    numpy_blas_on_one_thread()
    args = build_parser().parse_args(argv)
    from ..system_check import startup_problem

    if (problem := startup_problem()) is not None:
        if args.screenshot is None:  # Qt would abort the process here; say why and what to do instead
            print(f"lungkd-studio: {problem}", file=sys.stderr)
            return 1
        os.environ["QT_QPA_PLATFORM"] = "offscreen"  # a screenshot needs no display
    from ..recordings.analysis_process import shared_analyses

    shared_analyses().start()  # the analyses' helper imports torch on another core while this process starts Qt
    from PySide6.QtWidgets import QApplication

    from ..theme import application_icon

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LungKD Studio")
    app.setOrganizationName("LungKD")
    app.setDesktopFileName("lungkd-studio")  # Wayland and the taskbar match the window to the desktop entry
    app.setWindowIcon(application_icon())
    window = open_window(args)
    freeze_start_up_objects()
    if args.screenshot is None:
        end_on_ctrl_c(app, window)
        return app.exec()
    window.queue.wait_idle()
    settle(app)
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    if not window.grab().save(str(args.screenshot)):
        print(f"lungkd-studio: could not write {args.screenshot}", file=sys.stderr)
        return 1
    window.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
