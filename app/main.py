"""`lungkd-studio`: LungKD Studio.

torch is imported before PySide6: on Windows the other order fails to load torch's DLLs.
"""
from __future__ import annotations

import argparse
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


FIRST_START_KEY = "first_start_done"


def demo_recordings(workspace: Path) -> Path:
    """Six synthetic recordings in ICBHI layout (with annotations), generated once per workspace."""
    from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset

    return ensure_synthetic_dataset(workspace / "datasets" / "studio-demo", SyntheticData(recordings=6, seed=0))


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from lungkd.core.workspace.paths import resolve_workspace

    from .main_window import MainWindow
    from .theme import application_icon

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LungKD Studio")
    app.setOrganizationName("LungKD")
    app.setDesktopFileName("lungkd-studio")  # Wayland and the taskbar match the window to the desktop entry
    app.setWindowIcon(application_icon())
    workspace = resolve_workspace(args.workspace)
    window = MainWindow(workspace)
    window.show()
    if not args.open and not window.store.value(FIRST_START_KEY, False, type=bool):
        # A newcomer sees predictions at once: a few generated recordings, analysed by the demo model.
        args.open = [demo_recordings(workspace)]
        window.store.setValue(FIRST_START_KEY, True)
    if args.open:
        window.open_paths(args.open)
    if args.screenshot is None:
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
