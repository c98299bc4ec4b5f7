"""The bundle's one entry script. PyInstaller analyses it once; `lungkd-studio` is built from it, and `lungkd`
is a link to that executable (a second .exe on Windows). The name it was started under picks the face."""
import multiprocessing
import sys
from pathlib import Path

if __name__ == "__main__":
    # The preparation cache's worker processes start this executable again (spawn); this turns them into
    # workers instead of second Studios.
    multiprocessing.freeze_support()
    if Path(sys.argv[0]).stem == "lungkd-studio":
        from lungkd.app.shell.main import main
    else:
        from lungkd.core.cli import main
    sys.exit(main())
