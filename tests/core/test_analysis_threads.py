"""`lungkd predict` computes the features and the model on one torch thread or on more, whichever it finds
faster as it goes (FasterThreads), while everything else of an analysis stays on one torch thread; the answers do
not depend on the threads.
The shipped demo model on the session's synthetic recordings."""
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from lungkd.core.analysis import predict
from lungkd.core.analysis.batch import analyse_folder
from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.pool import FasterThreads, one_thread_here, torch_threads

DEMO_MODEL = Path(__file__).resolve().parents[2] / "resources" / "models" / "demo-cnn6"


def test_the_faster_thread_count_is_kept_and_the_other_tried_again_now_and_then():
    """Work that takes 50 ms an item on one thread and 10 ms on two, then 1 ms on one thread and 50 on two (as when
    other work comes to the machine): after trying both, the faster is chosen, and a change is noticed at the next
    recheck. Each count is tried twice in a row and timed the second time. The durations are far apart, so a sleep
    that overshoots on a busy machine cannot swap them."""
    chooser, chosen = FasterThreads(2, recheck=6), []
    fast = {2: 0.01}

    def run(items=2):
        with chooser.timed(items):
            threads = torch.get_num_threads()
            chosen.append(threads)
            time.sleep(items * fast.get(threads, 0.05))

    for _ in range(8):
        run()
    assert chosen == [1, 1, 2, 2, 2, 2, 1, 1]  # tried both; two threads kept; one tried again at the 6th run
    fast = {1: 0.001, 2: 0.1}  # other work took the second core
    for _ in range(8):
        run()
    # two threads timed slower than one was at its last check: one thread, tried twice; two again at the recheck
    assert chosen[8:] == [2, 2, 1, 1, 2, 2, 1, 1]


def test_the_first_run_after_a_change_of_thread_count_does_not_decide():
    """Two threads are faster (10 ms an item against 30), but the first run after each change to two threads takes
    100 ms an item, as a change can cost: the chooser still keeps two threads, instead of swapping to one thread for
    a whole recheck period each time it tries it again."""
    chooser, chosen = FasterThreads(2, recheck=8), []

    def run():
        with chooser.timed(1):
            threads = torch.get_num_threads()
            changed = bool(chosen) and chosen[-1] != threads
            chosen.append(threads)
            time.sleep(0.1 if changed and threads == 2 else {1: 0.03, 2: 0.01}[threads])

    for _ in range(16):
        run()
    assert chosen == [1, 1, 2, 2, 2, 2, 2, 2, 1, 1, 2, 2, 2, 2, 2, 2]  # one thread only at the recheck


def test_a_chooser_of_one_thread_has_nothing_to_choose():
    chooser = FasterThreads(1)
    for _ in range(3):
        with chooser.timed(1):
            assert torch.get_num_threads() == 1


def test_torch_threads_sets_the_count_for_the_block_only():
    before = torch.get_num_threads()
    with torch_threads(3):
        assert torch.get_num_threads() == 3
        with one_thread_here():
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 3
    assert torch.get_num_threads() == before


def test_the_model_computes_on_the_threads_given_and_answers_the_same(synthetic_dir, monkeypatch):
    recordings = sorted(synthetic_dir.glob("*.wav"))[:4]  # a batch or more each: both counts are tried twice
    model = load_model_with_limits(DEMO_MODEL)
    seen: list[tuple[str, int]] = []
    real_predict, real_find = predict.predict_logits, predict.find_cycles

    def predict_logits(*args, **kwargs):  # the real forward pass, noting torch's threads while it runs
        seen.append(("model", torch.get_num_threads()))
        return real_predict(*args, **kwargs)

    def find_cycles(*args, **kwargs):
        seen.append(("segmentation", torch.get_num_threads()))
        return real_find(*args, **kwargs)

    monkeypatch.setattr(predict, "predict_logits", predict_logits)
    monkeypatch.setattr(predict, "find_cycles", find_cycles)
    before = torch.get_num_threads()
    answers = {}
    for threads in (1, 2):
        seen.clear()
        batch = analyse_folder(recordings, model, None, threads=threads)
        assert not batch.failures and len(batch.results) == 4
        assert {n for what, n in seen if what == "model"} == {1, threads}  # with 2: both tried
        assert {n for what, n in seen if what == "segmentation"} == {1}
        answers[threads] = np.array([c.probabilities for r in batch.results for c in r.analysis.cycles])
    assert torch.get_num_threads() == before
    assert answers[1].shape[0] >= 10 and np.allclose(answers[1], answers[2], atol=1e-5)
