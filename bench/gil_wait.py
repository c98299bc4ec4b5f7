"""How long the GUI thread waits for the interpreter while the engine works beside it: why the Studio's window
can stall during an hour's analysis although every drawing turn is short.

    python -m bench.gil_wait [--minutes 60] [--seconds 3]

A main thread that wakes every 2 ms (as Qt's event loop wakes to deliver a timer, and then needs the interpreter
to run the Python slot) records how late each wake-up comes back, while beside it

  1. a thread runs plain Python (the interpreter's switch interval hands the GIL over every 5 ms),
  2. a thread runs many small numpy calls (np.percentile of ten numbers, as the quality checks make per cycle):
     each releases and retakes the GIL, and CPython asks the holder to hand it over only when nobody else took it
     during the wait, so the waiting thread can starve,
  3. a thread analyses a generated 4 kHz recording as the Studio's engine does (analyse_samples, demo model),
  4. a helper process does the same analysis (the main thread only waits for its result).

Prints the median, 99th percentile and longest wait of each, in ms. No assertion: the machine is shared.
"""
from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from bench.machine import describe
from bench.predict_cost import DEMO, long_recording


def plain_python(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        total = 0
        for i in range(1000):
            total += i * 2


def small_numpy_calls(seconds: float) -> None:
    ten = np.arange(10.0)
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        for _ in range(100):
            np.percentile(ten, 50)


def analyse(path: str) -> int:
    """The Studio's analysis of the recording (decoded here); returns its cycle count."""
    from lungkd.core.analysis.limits import load_model_with_limits
    from lungkd.core.analysis.predict import analyse_samples
    from lungkd.core.data.audio import load_audio

    return len(analyse_samples(path, load_audio(path), load_model_with_limits(DEMO)).cycles)


def waits_beside(work) -> np.ndarray:
    """The main thread's wake-ups (ms late against 2 ms) while `work()` runs in a thread."""
    waits = []
    worker = threading.Thread(target=work)
    worker.start()
    last = time.perf_counter()
    while worker.is_alive():
        time.sleep(0.002)
        now = time.perf_counter()
        waits.append(now - last)
        last = now
    worker.join()
    return np.array(waits) * 1000


def in_helper_process(path: str):
    """`analyse(path)` in a fresh interpreter, the main thread waiting beside it; the helper's start-up (imports)
    happens before the measurement."""
    from lungkd.core.pool import spawn_pool

    pool = spawn_pool(1)
    pool.submit(int, 0).result()  # started and ready
    return pool, lambda: pool.submit(analyse, path).result()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=60.0, help="length of the generated recording")
    parser.add_argument("--seconds", type=float, default=3.0, help="how long 1 and 2 run")
    args = parser.parse_args()
    print(describe())
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "long.wav")
        long_recording(Path(path), args.minutes)
        analyse(path)  # imports and first-call costs out of the way
        pool, helper = in_helper_process(path)
        rows = [("plain Python in a thread", lambda: plain_python(args.seconds)),
                ("small numpy calls in a thread", lambda: small_numpy_calls(args.seconds)),
                (f"the {args.minutes:g}-minute analysis in a thread", lambda: analyse(path)),
                (f"the {args.minutes:g}-minute analysis in a helper process", helper)]
        print(f"{'beside the GUI thread':<48}{'median':>8}{'99th':>8}{'longest':>9}   (ms the 2 ms wake-up came late)")
        for name, work in rows:
            late = waits_beside(work) - 2.0
            print(f"{name:<48}{np.median(late):>8.1f}{np.percentile(late, 99):>8.1f}{late.max():>9.1f}", flush=True)
        pool.shutdown()


if __name__ == "__main__":
    main()
