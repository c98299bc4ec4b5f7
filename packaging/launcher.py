"""The bundle's one entry script. PyInstaller analyses it once; `lungkd-studio` is built from it, and `lungkd`
is a link to that executable (a second .exe on Windows). The name it was started under picks the face."""
import multiprocessing
import sys
from pathlib import Path

if __name__ == "__main__":
    # The preparation cache's worker processes start this executable again (spawn); this turns them into
    # workers instead of second Studios.
    multiprocessing.freeze_support()
    if sys.argv[1:2] == ["-m"] and len(sys.argv) > 2:
        # a program the engine starts as `python -m MODULE ARGS` (the visit report's PDF writer,
        # lungkd.app.report_pdf): sys.executable is this bundle, so run the module as Python would
        import runpy

        sys.argv = sys.argv[2:]
        runpy.run_module(sys.argv[0], run_name="__main__", alter_sys=True)
        sys.exit(0)
    if Path(sys.argv[0]).stem == "lungkd-studio":
        from lungkd.app.shell.main import main
    else:
        from lungkd.core.cli import main
    sys.exit(main())
