"""Ctrl-C always ends a command: `lungkd run`, `train` and `predict` interrupted at any moment stop their workers,
exit with 130 and no traceback, and the same command then finishes. The moments: the one where the process
executor hung for ever (just after a reused teacher is reported, when its worker's end was being taken from the
queue), and random moments from the first imports to the end."""
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from lungkd.core.cancel import CancelToken, counting_interrupts
from lungkd.core.kd.executors import InProcessExecutor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.recipes import parse_experiment, recipe_to_toml

SMALL = {
    "name": "ctrl-c", "selection": "best_test", "deterministic": True,
    "data": {"synthetic": {"recordings": 12, "seed": 3}},
    "teachers": {"arch": "cnn6", "size": "tiny", "k": 2, "together": False, "train": {"epochs": 2, "batch_size": 16}},
    "students": [{"arch": "cnn6", "size": "tiny", "labels": "mean_2", "seeds": [1],
                  "train": {"epochs": 1, "batch_size": 16}}],
}
RECIPE = parse_experiment(SMALL)
REUSED = "Teacher seed 1: already trained, reused."


def _start(command: list[str]) -> subprocess.Popen:
    """The command in its own process group with Ctrl-C's default action, as a terminal's foreground job (a
    suite started in the background of a shell without job control inherits SIGINT ignored)."""
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _ctrl_c(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends: to the terminal's foreground group
    except ProcessLookupError:
        pass  # it had ended


def _ended(process: subprocess.Popen, lines: list[str], timeout: float = 120) -> tuple[int, str, str]:
    """Its exit code, standard output and standard error; a command still running after `timeout` is a hang
    (killed, with its process group, so the suite goes on)."""
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"still running {timeout:.0f} s after Ctrl-C:\n{''.join(lines)}{out}\n{err}")
    return process.returncode, "".join(lines) + out, err


def _assert_stopped_cleanly(code: int, out: str, err: str) -> None:
    assert code == 130, f"exit {code}\n{out}\n{err}"
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    pids = [int(line.rsplit(" ", 1)[1]) for line in out.splitlines() if ": training in worker process " in line]
    for pid in pids:  # every worker stopped (reaped: not even a zombie is left)
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)


@pytest.fixture
def first_teacher_trained(tmp_path):
    """A workspace where teacher 1 is trained and teacher 2 is not (cancelled as it started), and the recipe."""
    recipe = tmp_path / "ctrl-c.toml"
    recipe.write_text(recipe_to_toml(RECIPE))
    cancel = CancelToken()

    def on_event(event):
        if event.run == "teacher seed 2" and event.kind == "started":
            cancel.cancel()

    with pytest.raises(Exception, match="cancel"):
        Experiment(RECIPE, tmp_path / "ws", on_event=on_event, cancel=cancel, executor=InProcessExecutor()).run()
    return recipe, tmp_path / "ws"


def _run_command(recipe, workspace) -> list[str]:
    return [sys.executable, "-m", "lungkd.core.cli", "run", str(recipe), "--workspace", str(workspace),
            "--executor", "process", "--workers", "1"]


@pytest.mark.slow
def test_ctrl_c_just_after_a_reused_teacher_is_reported_ends_the_run_and_the_same_command_finishes(
        first_teacher_trained):
    recipe, workspace = first_teacher_trained
    command = _run_command(recipe, workspace)
    for delay in (0.0, 0.1, 0.2, 0.3, 0.4):  # where 4 of 5 tries hung before
        process, lines = _start(command), []
        for line in process.stdout:
            lines.append(line)
            if line.strip() == REUSED:
                time.sleep(delay)
                _ctrl_c(process)
                break
        assert any(line.strip() == REUSED for line in lines), "".join(lines) + process.stderr.read()
        code, out, err = _ended(process, lines)
        _assert_stopped_cleanly(code, out, err)
        assert "run the same command again" in err
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    assert REUSED in again.stdout and "report: " in again.stdout


@pytest.fixture
def python_s_own_sigint_handler():
    """Ctrl-C as in a terminal: a test run started in the background (`cmd &` in a script) inherits SIGINT
    ignored, and then Python installs no handler of its own, which counting_interrupts leaves alone."""
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, before)


def test_while_counted_ctrl_c_is_a_number_the_loop_reads_and_afterwards_python_s_own_again(
        python_s_own_sigint_handler):
    with counting_interrupts() as interrupts:
        for pressed in (1, 2):  # one after the other: two SIGINTs pending at once are one signal to the kernel
            os.kill(os.getpid(), signal.SIGINT)
            deadline = time.monotonic() + 30
            while interrupts.count < pressed and time.monotonic() < deadline:
                time.sleep(0.01)  # the handler runs between two bytecodes of the main thread
            assert interrupts.count == pressed
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    with pytest.raises(KeyboardInterrupt):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


def _open_descriptors() -> set[int]:
    return {int(name) for name in os.listdir("/proc/self/fd")}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="lists descriptors through /proc")
def test_ctrl_c_before_any_line_of_reading_a_file_is_a_keyboard_interrupt_and_closes_only_that_file(tmp_path):
    """Reading a card, an annotation or a split file can be cut by Ctrl-C anywhere. Cut between handing its
    descriptor to a file object and forgetting it, it was closed twice: the second close's EBADF replaced the
    KeyboardInterrupt (`lungkd predict` said "the model card cannot be read (Bad file descriptor)", exit 2), and
    where another thread had opened a file in between, that file was closed under it. Cut anywhere, the cut is a
    KeyboardInterrupt and no other descriptor is closed; the file's own stays open only where the cut falls in
    the closing itself."""
    import inspect

    from lungkd.core.storage import read_regular_file

    path = tmp_path / "card.json"
    path.write_bytes(bytes(range(256)) * 10_000)  # 2.5 MB: the reading takes more than one step
    assert read_regular_file(path, 3 << 20) == path.read_bytes()
    reading = read_regular_file.__code__
    source, first = inspect.getsourcelines(read_regular_file)
    closing = {first + i for i, line in enumerate(source) if "fd is not None" in line or "os.close(fd)" in line}
    cut_at, cut_lines = 0, []
    while True:
        cut_at, lines = cut_at + 1, 0

        def on_line(frame, event, arg):
            nonlocal lines
            if event == "line":
                lines += 1
                if lines == cut_at:
                    cut_lines.append(frame.f_lineno)
                    raise KeyboardInterrupt  # Ctrl-C's exception, raised as this line is about to run
            return on_line

        before = _open_descriptors()
        sys.settrace(lambda frame, event, arg: on_line if frame.f_code is reading else None)
        try:
            read_regular_file(path, 3 << 20)
        except KeyboardInterrupt:
            pass
        else:
            break  # it ran to the end: every line has been cut
        finally:
            sys.settrace(None)
        after = _open_descriptors()
        assert before <= after, f"cut at line {cut_lines[-1]}: a descriptor it did not open was closed"
        assert after == before or cut_lines[-1] in closing, f"cut at line {cut_lines[-1]}: its descriptor left open"
    assert len(cut_lines) >= 8 and closing <= set(cut_lines)  # opening, checking, reading in steps, closing


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="reads the threads' signal masks through /proc")
def test_the_fbank_threads_start_with_ctrl_c_held_so_that_none_is_left_holding_the_exit():
    """A Ctrl-C while the fbank's thread pool was starting a thread (`lungkd predict`'s second recording, the first
    on two threads) left that thread out of the pool's list: nothing told it to stop, and the interpreter waited
    for it for ever on its way out (a CI run's `lungkd predict` hung after Ctrl-C; by hand, 1 in about 1,000
    Ctrl-Cs in the first 1.5 ms of a fresh pool's first batch). The batch now runs with Ctrl-C held, answered
    when it is done: the pool's threads start inside it, inheriting the blocked signal, and the main thread has it
    back after."""
    code = """
import signal, threading
import numpy as np, torch
from lungkd.core.features import spectral
torch.set_num_threads(2)
features = spectral.fbank(np.random.default_rng(0).uniform(-0.5, 0.5, (4, 16000)).astype(np.float32))
def blocked(thread):
    with open(f"/proc/self/task/{thread.native_id}/status") as f:
        mask = int(next(line for line in f if line.startswith("SigBlk:")).split()[1], 16)
    return bool(mask & (1 << (signal.SIGINT - 1)))
pool = [t for t in threading.enumerate() if t.name.startswith("fbank")]
print(features.shape[0], len(pool), all(map(blocked, pool)), blocked(threading.main_thread()))
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.split() == ["4", "2", "True", "False"], result.stderr


TRAIN_RECIPE = """
name = "ctrl-c-train"
selection = "last"
[data]
synthetic = { recordings = 12, seed = 1 }
[model]
arch = "cnn6"
size = "tiny"
[train]
epochs = 3
batch_size = 16
"""


def _commands(tmp_path, synthetic_dir) -> dict[str, tuple[list[str], float]]:
    """Each command with about how long it runs on this machine (the soak's moments fall within it)."""
    from lungkd.core.models.inventory import shipped_models_folder

    experiment, training = tmp_path / "ctrl-c.toml", tmp_path / "train.toml"
    experiment.write_text(recipe_to_toml(RECIPE))
    training.write_text(TRAIN_RECIPE)
    cli = [sys.executable, "-m", "lungkd.core.cli"]
    return {"run": (_run_command(experiment, tmp_path / "ws"), 40.0),
            "train": ([*cli, "train", str(training), "--workspace", str(tmp_path / "ws")], 25.0),
            "predict": ([*cli, "predict", str(shipped_models_folder() / "demo-cnn6"), str(synthetic_dir), "--json",
                         "--out", str(tmp_path / "predictions.json"), "--force"], 10.0)}


@pytest.mark.slow
@pytest.mark.parametrize("name", ["run", "train", "predict"])
def test_ctrl_c_at_random_moments_ends_the_command_and_the_same_command_then_finishes(name, tmp_path, synthetic_dir):
    command, lasts = _commands(tmp_path, synthetic_dir)[name]
    moments = random.Random(f"ctrl-c {name}")  # the same draws every time the suite runs
    took, interrupted = lasts, 0
    for _ in range(6):  # three Ctrl-Cs at random moments, from the first imports to the end
        if interrupted == 3:
            break
        process, began = _start(command), time.monotonic()
        try:  # a command that ends before its moment tells how long it takes on this machine now
            process.wait(timeout=moments.uniform(0.3, took))
            took = max(0.6, 0.8 * (time.monotonic() - began))
        except subprocess.TimeoutExpired:
            pass
        _ctrl_c(process)
        code, out, err = _ended(process, [])
        if code == 0:
            continue  # it had finished
        if code == -signal.SIGINT:  # it was leaving: Python had given SIGINT back to the system (a shell says 130)
            assert "Traceback" not in err, err
            continue
        _assert_stopped_cleanly(code, out, err)
        interrupted += 1
    assert interrupted >= 1
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
