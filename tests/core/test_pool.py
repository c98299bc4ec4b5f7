"""Small jobs do not pay for pools: `run_jobs` works in the caller's process and starts helper processes only
when the work left outlasts starting them; what helpers compute is what the caller would have."""
import json
import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from lungkd.core import pool as pool_module
from lungkd.core.cancel import Cancelled
from lungkd.core.data.synth import write_synthetic_dataset
from lungkd.core.pool import helpers_pay, run_jobs


def square_where(number: int) -> tuple[int, int, int]:
    """A job with some work in it: the number, its square, and the process that computed it."""
    np.linalg.svd(np.random.default_rng(number).normal(size=(120, 120)))
    return number, number * number, os.getpid()


def test_helpers_pay_only_when_the_work_left_outlasts_starting_them():
    assert not helpers_pay(0.2, 9, start_s=5.0)  # ten recordings' preparation: 2 s left against 5 s starts
    assert helpers_pay(0.2, 899, start_s=5.0)  # nine hundred: 180 s left
    assert not helpers_pay(1.0, 10, start_s=5.0)  # exactly two starts: still not worth it
    assert helpers_pay(1.0, 11, start_s=5.0)


def test_small_work_stays_in_this_process_and_no_pool_starts(monkeypatch):
    def no_pool(*args, **kwargs):
        raise AssertionError("a pool was started for work that cannot pay for it")

    monkeypatch.setattr(pool_module, "spawn_pool", no_pool)
    results = list(run_jobs(square_where, range(10), workers=2, start_s=1e6))
    assert sorted((n, sq) for n, sq, _ in results) == [(n, n * n) for n in range(10)]
    assert {pid for *_, pid in results} == {os.getpid()}


def test_large_work_is_shared_with_helpers_and_every_job_is_done_once():
    results = list(run_jobs(square_where, range(40), workers=2, start_s=0.0))
    assert sorted((n, sq) for n, sq, _ in results) == [(n, n * n) for n in range(40)]
    pids = {pid for *_, pid in results}
    assert os.getpid() in pids and len(pids) == 2  # the caller and its one helper both worked
    assert pool_module.worker_start_seconds() >= 0.0  # the helper's start was timed for the next decision


def test_one_worker_means_this_process_alone(monkeypatch):
    monkeypatch.setattr(pool_module, "spawn_pool", lambda *a, **k: pytest.fail("workers=1 started a pool"))
    results = list(run_jobs(square_where, range(6), workers=1, start_s=0.0))
    assert {pid for *_, pid in results} == {os.getpid()}


def test_a_cancel_stops_the_work_and_the_helpers():
    seen = []
    stop = threading.Event()

    def check():
        if stop.is_set():
            raise Cancelled("cancelled")

    with pytest.raises(Cancelled):
        for result in run_jobs(square_where, range(200), workers=2, check=check, start_s=0.0):
            seen.append(result)
            if len(seen) == 5:
                stop.set()
    assert 5 <= len(seen) < 200


def test_synthetic_recordings_are_the_same_bytes_whoever_renders_them(tmp_path, monkeypatch):
    alone = write_synthetic_dataset(tmp_path / "alone", recordings=12, seed=3, workers=1)
    monkeypatch.setattr(pool_module, "WORKER_START_S", 0.0)
    monkeypatch.setattr(pool_module, "_measured_start_s", None)
    shared = write_synthetic_dataset(tmp_path / "shared", recordings=12, seed=3, workers=2)
    assert alone.recordings == shared.recordings == 12
    for path in sorted((tmp_path / "alone").iterdir()):
        assert path.read_bytes() == (tmp_path / "shared" / path.name).read_bytes(), path.name


CALLER = """
import os, time
from lungkd.core.pool import spawn_pool

if __name__ == "__main__":
    pool = spawn_pool(1)
    print(pool.submit(os.getpid).result(), flush=True)  # the helper's pid, once it runs
    time.sleep(300)
"""


def test_a_helper_whose_caller_is_killed_exits_instead_of_waiting_for_work_forever(tmp_path):
    """Killed, the caller cannot shut its pool down; before, its idle helper lived on as an orphan."""
    script = tmp_path / "caller.py"
    script.write_text(CALLER)
    caller = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    helper = int(caller.stdout.readline())
    os.kill(helper, 0)  # alive and idle, waiting for the next job
    caller.send_signal(signal.SIGKILL)
    caller.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(helper, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(helper, signal.SIGKILL)
    pytest.fail("the helper outlived its killed caller by 30 s")


def test_the_first_helper_a_process_starts_is_deaf_to_ctrl_c_too():
    """Spawning starts multiprocessing's resource tracker first, and its start unblocked Ctrl-C: the first helper of
    a process (`lungkd predict`'s Scout) died of a Ctrl-C meant for the command, with a traceback of its own."""
    code = ("import os, signal, time\nfrom lungkd.core.pool import spawn_helper\n"
            "helper = spawn_helper(time.sleep, 2.0)\ntime.sleep(0.5)\nos.kill(helper.pid, signal.SIGINT)\n"
            "helper.join()\nprint('exit', helper.exitcode)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "exit 0", result.stderr
    assert "KeyboardInterrupt" not in result.stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc_trim")
def test_freed_memory_held_between_live_blocks_is_handed_back():
    """A helper's job leaves its heap full of holes between what it keeps: glibc holds them until trimmed."""
    code = ("import numpy as np\nfrom lungkd.core.pool import hand_back_freed_memory\n"
            "def anon():\n"
            "    return next(int(l.split()[1]) for l in open('/proc/self/status') if l.startswith('RssAnon'))\n"
            "blocks = [np.ones(100_000 // 8) for _ in range(2000)]\nkept = blocks[::10]\ndel blocks\n"
            "before = anon()\nhand_back_freed_memory()\nprint(before - anon())")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert int(result.stdout) > 100_000  # kB: about 180 MB of holes freed, at least 100 MB of them handed back


BLAS_THREADS = ("import json; from threadpoolctl import threadpool_info; "
                "print(json.dumps([i['num_threads'] for i in threadpool_info() if i['user_api'] == 'blas']))")


def test_a_lungkd_command_keeps_numpy_blas_to_one_thread_in_its_process_and_those_it_starts():
    """OpenBLAS's idle workers spin after every matrix product: through `lungkd predict` of an hour its one worker took
    three quarters of a core from torch and the fbank threads. A command leaves numpy's BLAS one thread, loaded
    before it started or after, and in the processes it starts. The interpreter starts with OPENBLAS_NUM_THREADS=2,
    so that the check can fail on any machine."""
    script = ("import json, subprocess, sys\n"
              "import numpy\n"
              f"exec({BLAS_THREADS!r})\n"
              "from lungkd.core.cli import main\n"
              "try:\n    main(['--version'])\nexcept SystemExit:\n    pass\n"
              f"exec({BLAS_THREADS!r})\n"
              f"subprocess.run([sys.executable, '-c', 'import numpy; ' + {BLAS_THREADS!r}])\n")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "OPENBLAS_NUM_THREADS": "2"})
    assert run.returncode == 0, run.stderr
    counts = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("[")]
    assert counts == [[2], [1], [1]]  # before the command; after it; a process it starts
