"""How responsive LungKD Studio stays: the longest stall of the GUI event loop, measured with a QTimer
probe that should tick every 10 ms, while

  1. the demo experiment (tiny models, shortened) trains from the engine thread, once with each executor: in
     the window's own process (inprocess) and in child processes (process, the window's default),
  2. a 10-minute and a 60-minute recording (about 340 and 2,000 cycles) are loaded and analysed by the main
     window, until its plots and table are drawn whole, and
  3. the cycles of each are edited 20 times (boundaries dragged, classes set, a cycle split, two merged, an edit
     undone), each edit redrawn at once and its changed cycles predicted again in the engine thread.

    QT_QPA_PLATFORM=offscreen python -m bench.ui_latency [--minutes 10 60] [--workspace DIR] [--only-recording]

Prints the longest gap between ticks, the 99th percentile and the tick count for each, and how long each edit
took to redraw (median and longest); a stall is what a user would feel as a frozen window.
"""
from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch  # noqa: F401  - before PySide6

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
from PySide6.QtCore import QEventLoop, QTimer  # noqa: E402
from PySide6.QtWidgets import QApplication  # noqa: E402

from bench.machine import describe  # noqa: E402
from lungkd.app.engine import EngineTask  # noqa: E402
from lungkd.core.recipes import parse_experiment  # noqa: E402


class StallProbe:
    """Ticks every `interval_ms`; records the gaps between ticks as the event loop delivers them."""

    def __init__(self, interval_ms: int = 10):
        self.timer = QTimer()
        self.timer.setInterval(interval_ms)
        self.timer.timeout.connect(self._tick)
        self.gaps: list[float] = []
        self._last = None

    def _tick(self) -> None:
        now = time.perf_counter()
        if self._last is not None:
            self.gaps.append(now - self._last)
        self._last = now

    def start(self) -> None:
        self.timer.start()

    def stop(self) -> dict:
        self.timer.stop()
        gaps = np.array(self.gaps) * 1000
        return {"longest_ms": gaps.max(), "p99_ms": np.percentile(gaps, 99), "ticks": len(gaps)}


def _stalls(stats: dict) -> str:
    return (f"longest stall {stats['longest_ms']:.0f} ms, 99th percentile {stats['p99_ms']:.0f} ms, "
            f"{stats['ticks']} ticks")


def run_until_done(task: EngineTask, timeout_s: float) -> None:
    loop = QEventLoop()
    task.done.connect(loop.quit)
    QTimer.singleShot(int(timeout_s * 1000), loop.quit)
    task.start()
    loop.exec()


def demo_training(workspace: Path, executor_name: str) -> dict:
    recipe = parse_experiment({
        "name": "ui-latency", "data": {"synthetic": {"recordings": 16, "seed": 0}},
        "teachers": {"arch": "cnn6", "size": "tiny", "k": 2, "train": {"epochs": 2, "batch_size": 16}},
        "students": [{"arch": "cnn6", "size": "tiny", "labels": "mean_2", "seeds": [1],
                      "train": {"epochs": 2, "batch_size": 16}}]})

    def job(report, cancel):  # as the wizard's Run page does it
        from lungkd.core.kd.executors import create_executor
        from lungkd.core.kd.experiment import Experiment

        executor = create_executor(executor_name)
        try:
            return Experiment(recipe, workspace, on_event=report, cancel=cancel, executor=executor).run()
        finally:
            executor.close()

    events = []
    task = EngineTask(job)
    task.progress.connect(events.append)
    probe = StallProbe()
    probe.start()
    started = time.perf_counter()
    run_until_done(task, 1800)
    return {**probe.stop(), "seconds": time.perf_counter() - started, "events": len(events)}


def long_recording(workspace: Path, minutes: float) -> tuple[str, object]:
    """Loads the recording; returns the measurement and the window, still open, for the editing run."""
    from lungkd.app.shell.main import freeze_start_up_objects
    from lungkd.app.shell.main_window import MainWindow

    sr = 4000
    rng = np.random.default_rng(0)
    t = np.arange(int(minutes * 60 * sr)) / sr
    breath = rng.normal(size=t.size) * (0.3 + 0.25 * np.sin(2 * np.pi * t / 3.5) ** 2)
    path = workspace / "recordings" / f"{minutes:g}_minutes.wav"
    path.parent.mkdir(parents=True, exist_ok=True)  # a new workspace has no folder yet
    sf.write(path, (0.2 * breath).astype(np.float32), sr, subtype="PCM_16")
    window = MainWindow(workspace)
    window.show()
    freeze_start_up_objects()  # as the Studio does once its window is shown
    probe = StallProbe()
    probe.start()
    started = time.perf_counter()
    window.open_paths([path])
    window.queue.wait_idle(600000)  # runs the event loop, so the probe keeps ticking
    page = window.recordings
    while page.showing or page.view.drawing or page.table.filling:  # the whole first drawing is part of the load
        QApplication.processEvents()
    elapsed = time.perf_counter() - started
    return f"{_stalls(probe.stop())} over {elapsed:.0f} s ({minutes:g} min at {sr} Hz)", window


def _edit(document, number: int) -> str:
    """The number-th of a clinician's edits: drag a boundary, set a class, split, merge, undo, in turn."""
    index = (number * 7) % (len(document.spans) - 2)
    span = document.spans[index]
    kind = ("drag", "class", "split", "merge", "undo")[number % 5]
    if kind == "drag":
        document.move_edges([(index, "end")], span.end - 0.2)
    elif kind == "class":
        document.set_labels({index: number % 4})
    elif kind == "split":
        document.split(index, (span.start + span.end) / 2)
    elif kind == "merge":
        document.merge_with_next(index)
    else:
        document.undo_stack.undo()
    return kind


def editing(window, edits: int = 20) -> tuple[str, np.ndarray]:
    """Edits as a clinician makes them, one after another: each is drawn at once (plots, table, list) on the
    GUI thread; its changed cycles are then predicted in the engine thread (from the decoded samples the
    window holds), and the next edit waits for that, so "drawn in" is the redraw alone."""
    document = window.session.current_document()
    cycles = len(document.spans)
    redraws = []
    probe = StallProbe()
    probe.start()
    started = time.perf_counter()
    for number in range(edits):
        window.queue.wait_idle(600000)  # the previous edit's cycles predicted: the redraw has the CPU alone
        before = time.perf_counter()
        _edit(document, number)
        redraws.append(time.perf_counter() - before)
        loop = QEventLoop()
        QTimer.singleShot(500, loop.quit)
        loop.exec()
    window.queue.wait_idle(600000)
    elapsed = time.perf_counter() - started
    for document in window.session.documents.values():
        document.undo_stack.setClean()  # nothing to save: no "save before closing?"
    window.close()
    redraw_ms = np.array(redraws) * 1000
    return (f"{_stalls(probe.stop())} over {elapsed:.0f} s; {edits} edits of {cycles} cycles, each drawn in "
            f"{np.median(redraw_ms):.0f} ms (median), {redraw_ms.max():.0f} ms at most"), redraw_ms


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, nargs="+", default=[10.0, 60.0])
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--only-recording", action="store_true", help="skip the training measurement")
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="lungkd-ui-"))
    print(f"{describe()}; load {os.getloadavg()[0]:.1f}")
    if not args.only_recording:
        training = {}
        for name in ("inprocess", "process"):  # each in a workspace of its own: both generate, prepare and train
            training[name] = demo_training(workspace / f"demo-{name}", name)
            print(f"demo training, {name} executor: {_stalls(training[name])} over {training[name]['seconds']:.0f} "
                  f"s and {training[name]['events']} engine events", flush=True)
        print("| executor | longest stall | 99th percentile | wall time |")
        print("|---|---|---|---|")
        for name, stats in training.items():
            print(f"| {name} | {stats['longest_ms']:.0f} ms | {stats['p99_ms']:.0f} ms | {stats['seconds']:.0f} s |")
        ratio = training["inprocess"]["longest_ms"] / training["process"]["longest_ms"]
        print(f"longest stall, inprocess / process: {ratio:.1f}x", flush=True)
    for minutes in args.minutes:
        loading, window = long_recording(workspace, minutes)
        print(f"loading a {minutes:g}-minute recording: {loading}", flush=True)
        edits, _ = editing(window)
        print(f"editing its cycles: {edits}", flush=True)
    del app


if __name__ == "__main__":
    main()
