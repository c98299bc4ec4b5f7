"""The Studio's analyses in their helper process (app/recordings/analysis_process.py): the same analysis and
segmentation as in the calling thread, a recording's samples sent once, cancel heard mid-analysis, a killed
helper replaced, a helper that cannot start leaving the analyses to the calling thread, models loaded again
when their folder's files change, and the helper's module free of Qt. Each test starts its own real helper (a
spawned interpreter)."""
import multiprocessing
import os
import signal
import subprocess
import sys
import threading
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest

from lungkd.app.recordings import analysis_process
from lungkd.app.recordings.analysis_process import AnalysisProcess, loaded_model
from lungkd.core.analysis.batch import analyse_folder
from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.analysis.groundwork import segment_recording
from lungkd.core.analysis.predict import analyse_samples
from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.data.audio import DecodedAudio, load_audio
from lungkd.core.errors import LungKDError


@pytest.fixture
def analyses():
    helper = AnalysisProcess()
    yield helper
    helper.close()


@pytest.fixture
def sends(monkeypatch):
    """The recordings whose samples went to a helper through shared memory, in order."""
    sent, share = [], analysis_process._shared

    def counting(samples):
        sent.append(len(samples))
        return share(samples)
    monkeypatch.setattr(analysis_process, "_shared", counting)
    return sent


def _long(recording, tmp_path, minutes: float) -> tuple:
    """The recording's audio repeated to `minutes`, under a name with no annotation: its cycles are found by
    the automatic segmentation."""
    audio = load_audio(recording)
    repeats = int(np.ceil(minutes * 60 * audio.sample_rate / len(audio.samples)))
    return tmp_path / "long.wav", DecodedAudio(np.tile(audio.samples, repeats), audio.sample_rate, [])


def _helper_pids(before: set[int]) -> set[int]:
    return {child.pid for child in multiprocessing.active_children()} - before


def test_the_helper_gives_the_analysis_the_calling_thread_gives(analyses, model_folder, recording, tmp_path):
    audio = load_audio(recording)
    model = load_model_with_limits(model_folder)
    assert analyses.analyse(recording, audio, model_folder) == analyse_samples(recording, audio, model)
    path, long = _long(recording, tmp_path, 2)
    found = analyses.analyse(path, long, model_folder)
    assert found.cycle_source == "automatic" and len(found.cycles) > 10
    assert found == analyse_samples(path, long, model)
    spans = [(c.start, c.end) for c in found.cycles[:5]] + [(1.0, 3.5)]
    assert analyses.analyse(path, long, model_folder, spans=spans) == analyse_samples(path, long, model, spans=spans)
    assert not analyses.in_thread


def test_the_helper_starts_and_loads_the_model_before_the_first_recording(analyses, model_folder, recording):
    before = {child.pid for child in multiprocessing.active_children()}
    analyses.start()  # as the Studio does first thing: returns at once, the helper starts meanwhile
    (helper,) = _helper_pids(before)
    analyses.prepare(model_folder)  # a model chosen: the same helper loads it meanwhile
    assert _helper_pids(before) == {helper}
    audio = load_audio(recording)
    assert analyses.analyse(recording, audio, model_folder) == analyse_samples(
        recording, audio, load_model_with_limits(model_folder))
    assert _helper_pids(before) == {helper}


def test_a_recording_segmented_again_in_the_helper_is_segmented_as_in_the_calling_thread(analyses, sends,
                                                                                          recording, tmp_path):
    path, long = _long(recording, tmp_path, 3)
    for period in (2.5, 4.0):
        assert analyses.segment(path, long, period) == segment_recording(path, long.samples, long.sample_rate, period)
    assert sends == [len(long.samples)]


def test_a_folder_analysed_in_the_helper_reports_progress_and_each_outcome_as_the_calling_thread_does(
        analyses, model_folder, synthetic_dir, tmp_path):
    progress, outcomes = [], []
    batch = analyses.analyse_folder(synthetic_dir, None, model_folder, tmp_path / "ws", None, progress.append,
                                    outcomes.append)
    here = analyse_folder([synthetic_dir], load_model_with_limits(model_folder), None)
    assert [r.json for r in batch.results] == [r.json for r in here.results] and len(here.results) == 14
    assert outcomes == batch.results  # each as it came, every one before the batch returned
    assert [p.done for p in progress] == sorted(p.done for p in progress) and progress[-1].done == 14
    again = analyses.analyse_folder(synthetic_dir, None, model_folder, tmp_path / "ws", None, progress.append,
                                    outcomes.append)  # the workspace's results cache, read in the helper
    assert all(r.reused for r in again.results) and [r.json for r in again.results] == [r.json for r in here.results]


def test_a_recordings_samples_go_to_the_helper_once(analyses, sends, model_folder, recording):
    audio = load_audio(recording)
    first = analyses.analyse(recording, audio, model_folder)
    spans = [(c.start, c.end) for c in first.cycles]
    analyses.analyse(recording, audio, model_folder, spans=spans[:3])  # edits: only the spans travel
    analyses.analyse(recording, audio, model_folder, spans=spans[1:])
    assert sends == [len(audio.samples)]
    again = load_audio(recording)  # decoded anew (the file reopened): other samples as far as the helper knows
    assert analyses.analyse(recording, again, model_folder) == first
    assert sends == [len(audio.samples)] * 2


def test_cancel_reaches_the_analysis_in_the_helper_and_the_next_one_runs(analyses, model_folder, recording, tmp_path):
    path, long = _long(recording, tmp_path, 20)
    cancel = CancelToken()
    threading.Timer(0.5, cancel.cancel).start()
    with pytest.raises(Cancelled):
        analyses.analyse(path, long, model_folder, cancel=cancel)
    audio = load_audio(recording)  # the helper's cancel is cleared for the next analysis
    assert analyses.analyse(recording, audio, model_folder, cancel=CancelToken()).cycles


def test_a_killed_helper_fails_that_analysis_with_a_clear_error_and_a_new_one_starts(analyses, model_folder,
                                                                                        recording, tmp_path):
    before = {child.pid for child in multiprocessing.active_children()}
    audio = load_audio(recording)
    expected = analyses.analyse(recording, audio, model_folder)
    (helper,) = _helper_pids(before)
    path, long = _long(recording, tmp_path, 20)
    threading.Timer(0.5, os.kill, (helper, signal.SIGKILL)).start()
    with pytest.raises(LungKDError, match="helper process analysing recordings stopped") as failed:
        analyses.analyse(path, long, model_folder)
    assert failed.value.problem.path == str(path) and "analyse it again" in failed.value.problem.fix
    assert analyses.analyse(recording, audio, model_folder) == expected  # a new helper, sent the samples again
    assert _helper_pids(before) - {helper} and analyses.helpers_start and not analyses.in_thread


def test_where_no_helper_can_start_the_analyses_run_in_the_calling_thread(model_folder, recording, caplog):
    def helper_that_exits(*shared) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"), initializer=os._exit,
                                   initargs=(3,))
    analyses = AnalysisProcess(start_pool=helper_that_exits)
    audio = load_audio(recording)
    try:
        assert analyses.analyse(recording, audio, model_folder) == analyse_samples(
            recording, audio, load_model_with_limits(model_folder))
        assert analyses.in_thread
        assert [r.getMessage() for r in caplog.records] == [analysis_process.NO_HELPER]  # said once, on stderr
        analyses.analyse(recording, audio, model_folder)
        assert len(caplog.records) == 1
    finally:
        analyses.close()


def test_a_model_is_loaded_again_when_its_folders_files_change(model_folder, tmp_path):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(model_folder, folder)
    first = loaded_model(folder)
    assert loaded_model(folder) is first
    card = next(p for p in folder.iterdir() if p.suffix == ".json")
    stat = card.stat()
    os.utime(card, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))  # written again, the same bytes
    assert loaded_model(folder) is not first


def test_the_helpers_module_loads_no_qt():
    code = ("import sys, lungkd.app.recordings.analysis_process\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6', "
            "'superqt')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_window_analyses_in_the_shared_helper(window, recording, wait_idle):
    helper = window.session.analysis_helper
    assert helper is analysis_process.shared_analyses()
    window.open_paths([recording])
    wait_idle(window)
    audio = window.session.current.audio
    assert helper.helpers_start and not helper.in_thread
    assert window.session.current.analysis == analyse_samples(recording, audio,
                                                              load_model_with_limits(window.session.model_folder))
