"""Screenshots of LungKD Studio's main window with real recordings analysed, for the README and for
looking at the window as a user would.

    .venv/bin/python bench/screenshots.py [--data ../shared/data/icbhi/audio] [--out bench/out]

Renders offscreen with the best model found (the shipped demo unless --workspace has a better one), in
a temporary workspace and settings file, so nothing of the user's changes.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

import torch  # noqa: F401  (before PySide6, as in the entry point)

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "icbhi" / "audio",
                        help="a folder of recordings with their annotations")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out")
    parser.add_argument("--workspace", type=Path, help="a workspace whose models to use (default: none)")
    args = parser.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import QSettings
    from PySide6.QtWidgets import QApplication

    from lungkd.app.main import settle
    from lungkd.app.main_window import MainWindow

    recordings = sorted(args.data.glob("*.wav"))
    if not recordings:
        print(f"no recordings in {args.data}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = QSettings(str(tmp / "studio.ini"), QSettings.Format.IniFormat)
        window = MainWindow(args.workspace or tmp / "workspace", store)
        window.resize(1440, 900)
        window.show()
        page = window.recordings

        def shot(name: str) -> None:
            settle(app, 400)
            path = args.out / f"{name}.png"
            window.grab().save(str(path))
            print(path)

        shot("01-first-start")
        unannotated = tmp / "no-annotation"
        unannotated.mkdir()
        (unannotated / recordings[1].name).symlink_to(recordings[1])
        broken = tmp / "damaged-recording.wav"
        broken.write_bytes(b"RIFF\x00\x00")
        window.open_paths(recordings[:4] + [broken, unannotated / recordings[1].name])
        window.queue.wait_idle()
        page.recording_list.setCurrentRow(0)
        cycles = page.current.analysis.cycles
        page.select_cycle(next((i for i, c in enumerate(cycles) if c.matches is False), 0))
        shot("02-annotated-recording")
        page.recording_list.setCurrentRow(page.recording_list.count() - 1)
        shot("03-without-annotation")
        page.recording_list.setCurrentRow(2)
        page.spectrogram_bar.colour_map.setCurrentText("greyscale")
        page.spectrogram_bar.spins["fmax"].setValue(1200)
        page.select_cycle(3)
        page.view.zoom(0.35)
        settle(app, 800)  # the bar waits for the user to pause before applying
        shot("04-zoomed-greyscale")
        wizard_pages(app, window, args.out)
        window.close()
    return 0


def wizard_pages(app, window, out: Path) -> None:
    """Every page of the training wizard, with the CPU demo recipe; Inspect is run on the data page."""
    from lungkd.app.main import settle

    wizard = window.open_wizard()
    wizard.resize(1000, 720)
    names = ["data", "teachers", "soft-labels", "student", "review", "run"]
    data = wizard.currentPage()
    data.inspect.click()
    for _ in range(600):
        if data.stats is not None:
            break
        settle(app, 100)
    for number, name in enumerate(names, start=5):
        settle(app, 300)
        path = out / f"{number:02d}-wizard-{name}.png"
        wizard.grab().save(str(path))
        print(path)
        wizard.next()


if __name__ == "__main__":
    sys.exit(main())
