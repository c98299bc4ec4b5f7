"""Screenshots of LungKD Studio's main window with real recordings analysed, for the docs and for
looking at the window as a user would.

    .venv/bin/python -m bench.screenshots [--data ../shared/data/icbhi/audio] [--out bench/out]

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
TRACHEAL = "105_1b1_Tc_sc_Meditron.wav"  # ICBHI's one tracheal recording of the ten in ../shared


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

    from lungkd.app.shell.main import demo_recordings, settle
    from lungkd.app.shell.main_window import MainWindow

    recordings = sorted(args.data.glob("*.wav"))
    if not recordings:
        print(f"no recordings in {args.data}", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    app = QApplication(sys.argv[:1])
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        store = QSettings(str(tmp / "studio.ini"), QSettings.Format.IniFormat)
        workspace = args.workspace or tmp / "workspace"
        window = MainWindow(workspace, store)
        window.resize(1440, 900)
        window.show()
        page = window.recordings

        def shot(name: str) -> None:
            settle(app, 400)
            path = args.out / f"{name}.png"
            window.grab().save(str(path))
            print(path)

        demo = demo_recordings(workspace)
        window.open_paths([demo])  # what a new workspace opens with (app/shell/main.py)
        window.queue.wait_idle()
        shot("01-first-start")
        close_all(page)
        unannotated = tmp / "no-annotation"
        unannotated.mkdir()
        # another recording than the four annotated ones: two files of one recording would be one left out
        (unannotated / recordings[4].name).symlink_to(recordings[4])
        broken = tmp / "damaged-recording.wav"
        broken.write_bytes(b"RIFF\x00\x00")
        window.open_paths(recordings[:4] + [broken, unannotated / recordings[4].name])
        window.queue.wait_idle()
        page.recording_list.setCurrentRow(0)
        cycles = page.session.current.analysis.cycles
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
        window.wizard.close()
        visit_pictures(app, window, args.data, demo, args.out, shot)
        editing_and_review(app, window, workspace, demo, shot, args.data / TRACHEAL, unannotated)
        window.close()
    return 0


def close_all(page) -> None:
    """Every recording closed, and the files that could not be opened taken off the list."""
    while page.session.recordings:
        page.recording_list.setCurrentItem(page.recording_list.item_for(next(iter(page.session.recordings))))
        page.remove_current()
    for path in list(page.recording_list.failures):
        page.recording_list.remove(path)


def visit_pictures(app, window, data: Path, demo: Path, out: Path, shot) -> None:
    """The quality marks on the real session 107 (clipping, mains hum); why a generated cycle is called wheeze,
    drawn over its spectrogram; and the first page and a recording's page of the visit report of session 107, as
    Qt's PDF writer makes it (File > Report of this visit…)."""
    from PySide6.QtCore import QSize
    from PySide6.QtPdf import QPdfDocument

    page = window.recordings
    close_all(page)
    visit = sorted(data.glob("107_2b3_*.wav"))[:3]
    window.open_paths(visit)
    window.queue.wait_idle()
    page.recording_list.setCurrentItem(page.recording_list.item_for(visit[-1]))
    page.select_cycle(next((i for i, c in enumerate(page.session.shown_cycles()) if c.poor), 0))
    shot("14-quality-marks")

    target = out / "visit-report.pdf"
    window.visit_reporter.write(target)
    window.queue.wait_idle()
    if target.exists():
        document = QPdfDocument()
        document.load(str(target))
        for number, name in ((0, "16-visit-report"), (2, "17-visit-report-recording")):
            document.render(min(number, document.pageCount() - 1), QSize(900, 1273)).save(str(out / f"{name}.png"))
            print(out / f"{name}.png")
        document.close()
        target.unlink()
    close_all(page)

    window.open_paths([demo])
    window.queue.wait_idle()
    wheezes = [(path, i) for path in sorted(page.session.documents) for i, c in
               enumerate(page.session.documents[path].shown(page.session.model_folder))
               if c.predicted == 2 and c.truth == 2]
    if wheezes:
        path, index = max(wheezes, key=lambda w: page.session.documents[w[0]].shown(page.session.model_folder)[
            w[1]].confidence)
        page.recording_list.setCurrentItem(page.recording_list.item_for(path))
        page.select_cycle(index)
        page.explain_selected()
        window.queue.wait_idle()
        cycle = page.view.cycles[index]
        page.view.wave.setXRange(cycle.start - 1.0, cycle.end + 1.0, padding=0)
        shot("15-explanation")
    close_all(page)


def editing_and_review(app, window, workspace: Path, demo: Path, shot, tracheal: Path, scratch: Path) -> None:
    """Editing, on the first-start recordings: a class changed, a cycle added by dragging (no class yet), a
    shared boundary being dragged; then cycles shifted to the other phase (`shifted_cycles`).
    Review: generated recordings whose annotations are 20 % wrong, analysed by the student of a small
    experiment; its three teachers' votes and their ensemble show in the table. The teachers and the
    student start from the shipped demo model and are fine-tuned for two epochs here, so this takes a few
    minutes on a CPU, not the hours of a full experiment."""
    from lungkd.app.editing.edit_overlay import Drag, edge_limits
    from lungkd.app.shell.main import settle
    from lungkd.core.data.synth import write_synthetic_dataset
    from lungkd.core.kd.executors import InProcessExecutor
    from lungkd.core.kd.experiment import Experiment
    from lungkd.core.models.inventory import shipped_models_folder
    from lungkd.core.recipes import parse_experiment

    page = window.recordings
    page.spectrogram_bar.colour_map.setCurrentText("viridis")
    page.spectrogram_bar.spins["fmax"].setValue(2000)
    close_all(page)
    window.open_paths([demo])
    window.queue.wait_idle()
    page.recording_list.setCurrentRow(0)
    settle(app, 800)
    page.view.fit()
    document = page.session.current_document()
    document.set_labels({1: 1})
    last = document.spans[-1]
    document.delete([len(document.spans) - 1])
    document.add(last.start + 0.3, min(last.end + 0.3, document.duration - 0.05))
    window.queue.wait_idle()
    page.select_cycle(3)
    edges = [(2, "end"), (3, "start")]
    drag = Drag("edges", document.spans[2].end, edges, edge_limits(document.spans, edges, document.duration))
    window.editing.editor.drag_to(drag, document.spans[2].end + 0.7)  # the mouse is still down: the new boundary
    shot("11-editing")
    window.editing.editor.cancel_drag()  # the drag let go without moving anything
    for document in page.session.documents.values():
        document.undo_stack.setClean()  # nothing is saved: the next screenshots start from the same files
    close_all(page)
    shifted_cycles(window, tracheal, scratch, shot)

    demo = str(shipped_models_folder() / "demo-cnn6")
    fine_tune = {"epochs": 2, "batch_size": 16, "lr": 3e-4}
    recipe = parse_experiment({
        "name": "screenshot-teachers", "selection": "last",
        "data": {"synthetic": {"recordings": 48, "seed": 11, "label_noise": 0.1}},
        "teachers": {"arch": "cnn6", "size": "tiny", "pretrained": demo, "k": 3, "train": fine_tune},
        "students": [{"arch": "cnn6", "size": "tiny", "pretrained": demo, "labels": "mean_3", "seeds": [1],
                      "train": fine_tune}]})
    experiment = Experiment(recipe, workspace, executor=InProcessExecutor())
    experiment.run()
    noisy = workspace / "datasets" / "noisy-labels"
    write_synthetic_dataset(noisy, recordings=6, seed=12, label_noise=0.2)
    window.open_paths([noisy])
    window.queue.wait_idle()
    window.use_model(str(experiment.folder / "students" / "cnn6-mean_3-seed-1" / "model"))
    window.review.toggle.setChecked(True)
    window.queue.wait_idle()
    settle(app, 400)
    for _ in range(2):
        window.review.next.trigger()
    settle(app, 400)
    shot("12-review")
    window.review.toggle.setChecked(False)


def shifted_cycles(window, tracheal: Path, scratch: Path, shot) -> None:
    """The real tracheal recording without its annotation, under a name that does not give its site: taken for
    the chest wall, its cycles start at the stronger phase, which at the trachea is expiration; the user, who
    knows where it was recorded, shifts them to start at the other phase."""
    if not tracheal.exists():
        print(f"13-shifted-cycles not rendered: {tracheal} is not there", file=sys.stderr)
        return
    page = window.recordings
    renamed = scratch / "patient-105-trachea.wav"
    renamed.symlink_to(tracheal)
    window.open_paths([renamed])
    window.queue.wait_idle()
    page.recording_list.setCurrentRow(0)
    window.editing.segmentation.shift.trigger()
    window.queue.wait_idle()  # the shifted cycles predicted
    page.select_cycle(2)
    shot("13-shifted-cycles")
    page.session.current_document().undo_stack.setClean()
    close_all(page)


def wizard_pages(app, window, out: Path) -> None:
    """Every page of the training wizard, with the CPU demo recipe; Inspect is run on the data page."""
    from lungkd.app.shell.main import settle

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
