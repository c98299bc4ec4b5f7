"""The engine adapter: jobs run off the GUI thread in turn, report progress and results as signals, and
stop when cancelled."""
import threading
import time

from lungkd.app.engine import EngineTask, TaskQueue
from lungkd.core.cancel import Cancelled


def test_tasks_run_in_turn_off_the_gui_thread_and_report(qtbot):
    queue, seen, results = TaskQueue(), [], []

    def job(number):
        def run(report, cancel):
            seen.append((number, threading.current_thread() is threading.main_thread()))
            report(f"{number} half way")
            report.deliver(f"{number}: first part")
            return number * 10
        return run

    progress, partial = [], []
    queue.progress.connect(progress.append)
    for number in (1, 2, 3):
        task = queue.submit(EngineTask(job(number)))
        task.finished.connect(results.append)
        task.partial.connect(partial.append)
    qtbot.waitUntil(lambda: not queue.is_busy(), timeout=10000)
    assert seen == [(1, False), (2, False), (3, False)]
    assert results == [10, 20, 30] and progress == ["1 half way", "2 half way", "3 half way"]
    assert partial == ["1: first part", "2: first part", "3: first part"]  # results travel as results


def test_cancel_stops_the_running_task_and_drops_the_waiting_ones(qtbot):
    queue, started, outcome = TaskQueue(), threading.Event(), []

    def endless(report, cancel):
        started.set()
        while not cancel.is_set():
            time.sleep(0.01)
        raise Cancelled("stopped")

    first = queue.submit(EngineTask(endless))
    second = queue.submit(EngineTask(endless))
    first.cancelled.connect(lambda: outcome.append("first cancelled"))
    second.finished.connect(lambda _: outcome.append("second ran"))
    started.wait(5)
    queue.cancel_all()
    assert queue.wait_idle(10000)
    assert outcome == ["first cancelled"]


def test_an_exception_becomes_a_failed_signal_with_the_traceback(qtbot):
    task = EngineTask(lambda report, cancel: 1 / 0)
    with qtbot.waitSignal(task.failed, timeout=5000) as failed:
        task.start()
    message, details = failed.args
    assert message == "division by zero" and "ZeroDivisionError" in details
    task.wait()


def test_the_status_bar_shows_a_burst_of_progress_at_most_ten_times_a_second(window, qtbot):
    from lungkd.core.events import Event

    shown, span = [], []
    window.statusBar().messageChanged.connect(shown.append)

    def burst(report, cancel):
        span.append(time.monotonic())
        for step in range(1, 201):  # a training step every millisecond
            report(Event("teachers", "progress", f"step {step}", step=step, total=200))
            time.sleep(0.001)
        span.append(time.monotonic())

    window.queue.submit(EngineTask(burst))
    qtbot.waitUntil(lambda: not window.queue.is_busy(), timeout=10000)
    steps = [m for m in shown if m.startswith("step ")]
    seconds = span[1] - span[0]  # about 0.2 s on an idle machine
    assert steps[0] == "step 1"  # the first at once, then at most one per 100 ms
    assert len(steps) <= seconds / 0.1 + 2 and len(steps) < 40, (len(steps), seconds)


def test_a_slot_connected_just_after_start_misses_nothing(qtbot):
    delivered = threading.Event()

    def job(report, cancel):
        report("half way")
        report.deliver("a part")
        delivered.set()
        return "all"

    task = EngineTask(job).start()
    assert delivered.wait(5)  # the job has reported before anyone listens
    progress, partial, results = [], [], []
    task.progress.connect(progress.append)
    task.partial.connect(partial.append)
    task.finished.connect(results.append)
    with qtbot.waitSignal(task.done, timeout=5000):
        pass
    assert (progress, partial, results) == (["half way"], ["a part"], ["all"])


def test_every_started_task_runs_at_once_however_few_the_cores(qtbot):
    """As with a thread of its own: a spectrogram must not wait for a training run and an analysis to end."""
    from PySide6.QtCore import QThreadPool

    count = QThreadPool.globalInstance().maxThreadCount() + 2
    all_started, running = threading.Barrier(count, timeout=10), []

    def meet(report, cancel):
        all_started.wait()  # breaks (and the task fails) unless every task runs at the same time
        return "met"

    tasks = [EngineTask(meet) for _ in range(count)]
    for task in tasks:
        task.finished.connect(running.append)
        task.start()
    qtbot.waitUntil(lambda: len(running) == count, timeout=15000)
    assert running == ["met"] * count and all(task.wait(5000) for task in tasks)


def test_a_warning_raised_in_a_job_is_shown_once_per_place(qtbot, capfd):
    import warnings

    def warn_twice(report, cancel):
        for _ in range(2):
            warnings.warn("the engine says so", UserWarning)

    task = EngineTask(warn_twice)
    with qtbot.waitSignal(task.done, timeout=5000):
        task.start()
    assert capfd.readouterr().err.count("UserWarning: the engine says so") == 1
