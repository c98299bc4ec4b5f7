"""The bundle's one entry script. PyInstaller analyses it once; `lungkd-studio` is built from it, and `lungkd`
is a link to that executable (a second .exe on Windows). How it was started picks what it runs: as a training
worker or as the visit report's PDF writer (the engine starts the bundle's executable with one of core.kd.launch's flags,
under either name),
else the Studio or the command line by the name it was started under."""
import multiprocessing
import sys
from pathlib import Path
from typing import Callable


def entry_point(argv: list[str]) -> Callable[[], int]:
    """The function this start runs, for its command line `argv` (sys.argv)."""
    from lungkd.core.kd.launch import is_worker_start, report_pdf_files

    if is_worker_start(argv):
        from lungkd.core.kd.worker import serve

        return serve
    pdf_files = report_pdf_files(argv)
    if pdf_files is not None:
        from lungkd.app.report_pdf import main as write_report_pdf

        return lambda: write_report_pdf(pdf_files)
    if Path(argv[0]).stem == "lungkd-studio":
        from lungkd.app.shell.main import main as studio

        return studio
    from lungkd.core.cli import main as command_line

    return command_line


if __name__ == "__main__":
    # The preparation cache's pool processes start this executable again (spawn); this turns them into pool
    # workers, which end there, instead of second Studios.
    multiprocessing.freeze_support()
    sys.exit(entry_point(sys.argv)())
