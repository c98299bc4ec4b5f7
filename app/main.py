"""`lungkd-studio`: LungKD Studio. torch is imported before PySide6 (on Windows the other order fails)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch  # noqa: F401  - must come before PySide6


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lungkd-studio", description="LungKD Studio")
    parser.add_argument("--workspace", type=Path, help="workspace folder (default: the user data folder)")
    parser.add_argument("--open", type=Path, action="append", default=[], help="a recording or folder to open")
    parser.add_argument("--screenshot", type=Path, help="render the window to this PNG and exit")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from PySide6.QtWidgets import QApplication

    from lungkd.core.workspace_paths import resolve_workspace

    from .main_window import MainWindow

    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("LungKD Studio")
    window = MainWindow(resolve_workspace(args.workspace))
    window.show()
    task = window.open_paths(args.open) if args.open else None
    if args.screenshot:
        if task is not None:
            task.wait(300000)
        window.grab().save(str(args.screenshot))
        window.close()
        return 0
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
