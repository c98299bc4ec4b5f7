"""The bundle's one entry script. PyInstaller analyses it once and builds two executables from it,
`lungkd-studio` and `lungkd`; the name the executable was started under picks the face."""
import multiprocessing
import sys
from pathlib import Path

if __name__ == "__main__":
    # The preparation cache's worker processes start this executable again (spawn); this turns them into
    # workers instead of second Studios.
    multiprocessing.freeze_support()
    if Path(sys.executable).stem == "lungkd-studio":
        from lungkd.app.main import main
    else:
        from lungkd.core.cli import main
    sys.exit(main())
