"""How the engine starts a program of its own (a training worker, the visit report's PDF writer), from a Python
installation or from the frozen desktop bundle.

From Python the process executor starts `python -m lungkd.core.kd.worker`. In the bundle (PyInstaller, where
`sys.frozen` is set) `sys.executable` is the bundle's own launcher, which is no Python: it takes no `-m`, and
would answer "unrecognized arguments". There the worker is the launcher started with one argument,
`FROZEN_WORKER_FLAG`, which packaging/launcher.py checks before anything else and turns into the worker; the PDF
writer is the launcher started with `FROZEN_REPORT_PDF_FLAG` and its two files.

Kept apart from core.kd.worker, which imports torch: the launcher reads the flag here on every start.
"""
from __future__ import annotations

import sys

WORKER_MODULE = "lungkd.core.kd.worker"
FROZEN_WORKER_FLAG = "--lungkd-training-worker"
REPORT_PDF_MODULE = "lungkd.app.report_pdf"
FROZEN_REPORT_PDF_FLAG = "--lungkd-report-pdf"


def is_frozen() -> bool:
    """Whether this process is the desktop bundle (PyInstaller sets `sys.frozen`)."""
    return bool(getattr(sys, "frozen", False))


def _program_command(module: str, frozen_flag: str, *args: str) -> list[str]:
    """`python -m MODULE ARGS`, or in the bundle its launcher with the program's own flag."""
    return [sys.executable, *((frozen_flag,) if is_frozen() else ("-m", module)), *args]


def worker_command() -> list[str]:
    """The command line that starts a training worker from this process."""
    return _program_command(WORKER_MODULE, FROZEN_WORKER_FLAG)


def report_pdf_command(source: str, target: str) -> list[str]:
    """The command line that writes the HTML file `source` as the PDF `target` with Qt's writer."""
    return _program_command(REPORT_PDF_MODULE, FROZEN_REPORT_PDF_FLAG, source, target)


def report_pdf_files(argv: list[str]) -> list[str] | None:
    """The two files of a bundle start as the PDF writer (`argv`: its sys.argv); None for any other start."""
    return argv[2:] if argv[1:2] == [FROZEN_REPORT_PDF_FLAG] and len(argv) == 4 else None


def is_worker_start(argv: list[str]) -> bool:
    """Whether the bundle's launcher was started as a training worker (`argv`: its sys.argv)."""
    return argv[1:] == [FROZEN_WORKER_FLAG]
