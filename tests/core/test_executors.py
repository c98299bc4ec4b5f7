"""The executors on a small real experiment (two tiny CNN6 teachers, one distilled student, synthetic data):
child processes and a real local Ray (2 CPUs, started once for this module) against the in-process run.
For each: two teachers train at once in separate worker processes, the report equals the in-process one, a
worker killed with SIGKILL mid-teacher is started again and the experiment still ends with the same report,
and a cancel mid-run stops every run and leaves a workspace the next run resumes from."""
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import torch

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import DataSpec
from lungkd.core.errors import LungKDError
from lungkd.core.events import read_events
from lungkd.core.kd.executors import InProcessExecutor, ProcessExecutor, create_executor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.kd.jobs import ExperimentError, RunJob, RunSpec, job_to_json
from lungkd.core.kd.ray_executor import (FLUSH_INTERVAL_S, EventRelay, RayExecutor, WorkspaceNotShared, gpu_request,
                                         require_shared_workspace, train_run)
from lungkd.core.kd.worker import WorkerError, runs_from_outcome
from lungkd.core.recipes import ModelSpec, RunSettings, TrainConfig, parse_experiment, recipe_to_toml
from lungkd.core.workspace.catalog import Catalog
from lungkd.core.workspace.layout import MODEL_FOLDER

SMALL = {
    "name": "small", "selection": "best_test", "deterministic": True,
    "data": {"synthetic": {"recordings": 12, "seed": 3, "label_noise": 0.1}},
    # one after another (not one batched model), so that two teachers can train at once in two workers
    "teachers": {"arch": "cnn6", "size": "tiny", "k": 2, "together": False, "train": {"epochs": 2, "batch_size": 16}},
    "students": [{"arch": "cnn6", "size": "tiny", "labels": "mean_2", "seeds": [1],
                  "train": {"epochs": 1, "batch_size": 16}}],
}
RECIPE = parse_experiment(SMALL)
TEACHERS = {"teacher seed 1", "teacher seed 2"}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The small experiment run in this process, one teacher after another: what every executor must give."""
    return Experiment(RECIPE, tmp_path_factory.mktemp("inprocess") / "ws", executor=InProcessExecutor()).run()


@pytest.fixture(scope="module")
def local_ray():
    """A real local Ray with 2 CPUs, started once for the module's Ray tests."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=128 * 2**20, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(params=["process", "ray"])
def executor(request):
    if request.param == "ray":
        request.getfixturevalue("local_ray")
        executor = RayExecutor()  # joins the module's Ray rather than starting one
        assert not executor.started_here
    else:
        executor = ProcessExecutor(workers=2)
    yield executor
    executor.close()


def _worker_pids(events, runs=TEACHERS) -> dict[str, int]:
    """The worker process each run trained in (the last one, after a restart)."""
    return {e.run: e.data["pid"] for e in events if e.kind == "notice" and "pid" in e.data and e.run in runs}


def _span(events, run) -> tuple[float, float]:
    times = [e.time for e in events if e.run == run and e.kind in ("started", "finished")]
    return min(times), max(times)


@pytest.mark.slow
def test_two_teachers_train_at_once_in_worker_processes_and_the_report_is_the_in_process_one(
        executor, reference, tmp_path):
    events = []
    report = Experiment(RECIPE, tmp_path / "ws", on_event=events.append, executor=executor).run()
    pids = _worker_pids(events)
    assert set(pids) == TEACHERS and len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    (start1, end1), (start2, end2) = _span(events, "teacher seed 1"), _span(events, "teacher seed 2")
    assert start1 < end2 and start2 < end1  # they trained at the same time
    assert report == reference  # the report has no times; every score, epoch and interval is the same
    written = json.loads((tmp_path / "ws" / "experiments" / "small" / "report.json").read_text())
    assert written == reference.to_json()


@pytest.mark.slow
def test_a_worker_killed_mid_teacher_is_started_again_and_the_report_is_the_same(executor, reference, tmp_path):
    events, killed = [], []

    def on_event(event):
        events.append(event)
        if event.run == "teacher seed 2" and event.kind == "metrics" and event.data["epoch"] == 1 and not killed:
            killed.append(_worker_pids(events)["teacher seed 2"])
            os.kill(killed[0], signal.SIGKILL)  # mid-teacher: epoch 1 is checkpointed, epoch 2 is training

    report = Experiment(RECIPE, tmp_path / "ws", on_event=on_event, executor=executor).run()
    assert killed and report == reference
    second = [e for e in events if e.run == "teacher seed 2"]
    if isinstance(executor, RayExecutor) and not any("died" in e.message for e in second if e.kind == "notice"):
        # a Ray task's events come in batches: its epoch-1 event reached the driver after the task had finished,
        # so the kill found an idle worker; the teacher trained once, through, and the report is the same
        assert [e.kind for e in second if e.kind in ("started", "finished")] == ["started", "finished"]
        return
    died = [i for i, e in enumerate(second) if e.kind == "notice" and "died" in e.message]
    assert len(died) == 1
    # The kill lands after epoch 1's checkpoint; on a loaded machine the worker may have finished epoch 2 before
    # the batched events reach the driver, so the restart resumes from the last checkpoint, whichever it was.
    resumes = [i for i, e in enumerate(second) if re.fullmatch(r"Resuming from epoch \d+\.", e.message)]
    if not resumes:
        # ... or it had finished training and saved the teacher before the kill reached it (its logits or its
        # finished event not yet out): the restart reuses the saved teacher and trains nothing again
        again = second[died[0]:]
        assert not any(e.kind in ("started", "metrics") for e in again)
        assert again[-1].kind == "finished"
        return
    assert len(resumes) == 1
    resumed_from = int(second[resumes[0]].message.split()[-1].rstrip("."))
    assert resumed_from >= 1  # epoch 1 was not trained again
    trained_after = [e.data["epoch"] for e in second[resumes[0]:] if e.kind == "metrics"]
    assert trained_after == list(range(resumed_from + 1, RECIPE.teachers.train.epochs + 1))
    assert _worker_pids(events)["teacher seed 2"] != killed[0]


@pytest.mark.slow
def test_a_cancel_mid_run_stops_every_run_and_leaves_a_resumable_workspace(executor, reference, tmp_path):
    cancel, events, cancelled_at = CancelToken(), [], []

    def on_event(event):
        events.append(event)
        if event.run == "teacher seed 1" and event.kind == "metrics" and event.data["epoch"] == 1:
            cancelled_at.append(time.time())  # when the driver cancels (the event itself may arrive late)
            cancel.cancel()

    with pytest.raises(Cancelled):
        Experiment(RECIPE, tmp_path / "ws", on_event=on_event, cancel=cancel, executor=executor).run()
    # A Ray task hears of the cancel in the answer to its next push of events (one flush interval, then the round
    # trip); a child process at once. A teacher that finished before it heard (a Ray worker that was warm from an
    # earlier test can finish its two small epochs before the other's first) was not running to be stopped.
    heard = cancelled_at[0] + (2 * FLUSH_INTERVAL_S if isinstance(executor, RayExecutor) else 0.0)
    started = {e.run for e in events if e.stage == "teachers" and e.kind == "started" and e.run}
    done_before = {e.run for e in events if e.kind == "finished" and e.run in TEACHERS and e.time <= heard}
    running = started - done_before
    timeline = [(e.run, e.kind, round(e.time - cancelled_at[0], 2)) for e in events
                if e.run in TEACHERS and e.kind in ("started", "metrics", "finished", "cancelled")]
    if not running:
        # a loaded machine can hold a Ray task's batched epoch-1 event back until both teachers have finished:
        # no teacher was under way to be stopped, and the cancel stops the stage after them
        assert isinstance(executor, RayExecutor) and done_before == TEACHERS, timeline
        assert not [e for e in events if e.stage == "students" and e.kind == "finished"], timeline
    assert running <= {e.run for e in events if e.kind == "cancelled" and e.run}, timeline  # every one stopped
    assert not [e for e in events if e.kind == "finished" and e.run in running], timeline
    for run in running:  # from when it heard, within a step: the step under way, and at most the next
        assert len([e for e in events if e.run == run and e.kind == "progress" and e.time > heard]) <= 2, timeline
    if isinstance(executor, ProcessExecutor):
        for pid in _worker_pids(events).values():
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)  # no child left behind
    folder = tmp_path / "ws" / "experiments" / "small"
    assert read_events(folder / "events.jsonl")[-1].kind == "cancelled"
    with Catalog.for_workspace(tmp_path / "ws") as catalog:
        assert [e.status for e in catalog.experiments()] == ["cancelled"]
    (teacher_one,) = (tmp_path / "ws" / "teachers").glob("cnn6-*/seed-1")
    stopped_mid_teacher = not (teacher_one / MODEL_FOLDER).exists()
    if stopped_mid_teacher:
        # the cancel came at its first epoch's end; a loaded machine may let it finish the next before it arrives
        finished = max(e.data["epoch"] for e in events if e.run == "teacher seed 1" and e.kind == "metrics")
        assert torch.load(teacher_one / "train_state.pt", weights_only=True)["epoch"] == finished
    else:  # a Ray task's events come in batches: it had saved its model, whole, before it could hear of the cancel
        assert isinstance(executor, RayExecutor), timeline

    again = []
    report = Experiment(RECIPE, tmp_path / "ws", on_event=again.append, executor=executor).run()
    assert report == reference
    trained_again = [e.data["epoch"] for e in again if e.run == "teacher seed 1" and e.kind == "metrics"]
    if stopped_mid_teacher:
        assert any(e.run == "teacher seed 1" and e.message == f"Resuming from epoch {finished}." for e in again)
        assert trained_again == list(range(finished + 1, RECIPE.teachers.train.epochs + 1))
    else:
        assert trained_again == []  # kept whole: not trained again


# ---------------------------------------------------------------- failures of the process executor


def _job(synthetic_dir, workspace, fingerprint=None, seed=1) -> RunJob:
    spec = RunSpec(role="teacher", model=ModelSpec(arch="cnn6", size="tiny"), labels="hard", seed=seed,
                   train=TrainConfig(epochs=1, batch_size=16))
    return RunJob(spec=spec, stage="teachers", workspace=str(workspace), folder=str(workspace / f"teacher-{seed}"),
                  data=DataSpec(path=str(synthetic_dir)), settings=RunSettings(selection="last"),
                  data_fingerprint=fingerprint or load_dataset(synthetic_dir).fingerprint())


def _with(job: RunJob, **changes) -> RunJob:
    return job.model_copy(update=changes)


def test_a_crashed_worker_comes_back_with_its_traceback_and_exit_code(synthetic_dir, tmp_path):
    # a run folder no file system can hold (a file in its way is a message since disks that fail are said):
    # the worker's first touch of it raises ValueError, an unexpected exception rather than bad input
    job = _with(_job(synthetic_dir, tmp_path), folder=str(tmp_path / "teacher\0one"))
    with pytest.raises(WorkerError) as caught:
        ProcessExecutor(workers=1).run([job], lambda e: None, CancelToken())
    error = caught.value
    assert error.exit_code == 1 and "teacher seed 1 crashed in its worker (process " in str(error)
    assert "ValueError" in str(error) and "embedded null byte" in error.worker_traceback
    assert "The worker's traceback:" in str(error) and "Traceback (most recent call last)" in str(error)


def test_bad_input_found_in_a_worker_keeps_its_class_message_and_fix(synthetic_dir, tmp_path):
    job = _job(synthetic_dir, tmp_path, fingerprint="0" * 64)
    with pytest.raises(ExperimentError) as caught:
        ProcessExecutor(workers=1).run([job], lambda e: None, CancelToken())
    assert "the dataset changed since this experiment started" in str(caught.value)
    assert caught.value.problem.path == str(synthetic_dir) and "new experiment" in caught.value.problem.fix


def test_a_worker_that_keeps_dying_is_reported_with_its_exit_code(synthetic_dir, tmp_path):
    events = []

    def kill_on_start(event):
        events.append(event)
        if event.kind == "notice" and "pid" in event.data:
            os.kill(event.data["pid"], signal.SIGKILL)

    with pytest.raises(WorkerError) as caught:
        ProcessExecutor(workers=1, restarts=1).run([_job(synthetic_dir, tmp_path)], kill_on_start, CancelToken())
    assert caught.value.exit_code == -signal.SIGKILL
    assert "died without reporting 2 time(s)" in str(caught.value) and "killed by a signal" in str(caught.value)
    assert [e.kind for e in events] == ["notice", "notice", "notice", "failed"]  # start, restart, start, failed
    assert "starting it again" in events[1].message


def test_children_see_one_gpu_each_and_share_the_cpu_threads(synthetic_dir, tmp_path):
    executor = ProcessExecutor(workers=2)
    executor.gpus = ["0", "3"]  # what visible_gpus() finds on a machine with CUDA_VISIBLE_DEVICES=0,3
    job = _job(synthetic_dir, tmp_path)
    assert [executor.device_env(job, slot) for slot in (0, 1, 2)] == [
        {"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "3"}, {"CUDA_VISIBLE_DEVICES": "0"}]
    assert executor.device_env(_with(job, settings=RunSettings(device="cuda:1")), 1) == {}  # the recipe chose
    assert executor.device_env(_with(job, settings=RunSettings(device="cpu")), 1) == {}
    threads = torch.get_num_threads()
    assert executor.threads(job) == max(1, threads // 2)
    assert executor.threads(_with(job, settings=RunSettings(deterministic=True))) == threads  # the same bits


# ---------------------------------------------------------------- the Ray executor's requests and checks


def test_each_ray_task_asks_for_the_gpu_share_its_model_needs(synthetic_dir, tmp_path):
    job = _job(synthetic_dir, tmp_path)
    full_bts = _with(job, spec=RunSpec(role="teacher", model=ModelSpec(arch="bts"), labels="hard", seed=1,
                                       train=TrainConfig()))
    assert gpu_request(job, cluster_gpus=4) == 0.1  # a tiny model shares a GPU with nine others
    assert gpu_request(full_bts, cluster_gpus=4) == 1.0
    assert gpu_request(job, cluster_gpus=0) == 0.0  # device auto on a cluster without GPUs: CPUs
    assert gpu_request(_with(job, settings=RunSettings(device="cpu")), cluster_gpus=4) == 0.0
    with pytest.raises(LungKDError, match="the Ray cluster has none"):
        gpu_request(_with(job, settings=RunSettings(device="cuda")), cluster_gpus=0)


def test_a_node_that_cannot_see_the_workspace_is_told_where_and_how_to_fix_it(tmp_path):
    (tmp_path / ".lungkd-visible-abc").write_text("")
    require_shared_workspace(tmp_path, ".lungkd-visible-abc", "10.0.0.7")  # visible: nothing to say
    with pytest.raises(WorkspaceNotShared) as caught:
        require_shared_workspace(tmp_path, ".lungkd-visible-xyz", "10.0.0.7")
    assert "not visible from Ray node 10.0.0.7" in str(caught.value) and str(tmp_path) in str(caught.value)
    assert "storage every node mounts at the same path" in caught.value.problem.fix


@pytest.mark.slow
def test_a_ray_task_on_a_node_without_the_workspace_fails_with_the_check(local_ray, synthetic_dir, tmp_path):
    relay = local_ray.remote(num_cpus=0)(EventRelay).remote()
    task = local_ray.remote(train_run)
    outcome = local_ray.get(task.remote(job_to_json(_job(synthetic_dir, tmp_path)), relay, ".lungkd-visible-gone", 1))
    with pytest.raises(WorkspaceNotShared, match="is not visible from Ray node"):
        runs_from_outcome(outcome, "teacher seed 1", outcome["where"])
    notices = [json.loads(e) for e in local_ray.get(relay.drain.remote())]
    assert notices[0]["message"].startswith("training on Ray node")


# ---------------------------------------------------------------- choosing one


def test_the_executor_is_chosen_by_name_and_is_not_part_of_the_results():
    assert isinstance(create_executor("process", workers=3), ProcessExecutor)
    assert create_executor("process", workers=3).workers == 3
    with pytest.raises(LungKDError, match="unknown executor 'gpu'"):
        create_executor("gpu")
    with pytest.raises(LungKDError, match="only for the ray executor"):
        create_executor("process", address="auto")
    on_ray = parse_experiment({**SMALL, "executor": "ray", "workers": 4})
    assert (on_ray.executor, on_ray.workers) == ("ray", 4)
    assert on_ray.to_dict() == RECIPE.to_dict()  # an experiment started one way may be continued another
    with pytest.raises(LungKDError, match="executor"):
        parse_experiment({**SMALL, "executor": "gpu"})


def _lungkd(*args):
    return subprocess.run([sys.executable, "-m", "lungkd.core.cli", *map(str, args)], capture_output=True, text=True)


def test_lungkd_run_names_a_wrong_executor_or_address_before_anything_runs(tmp_path):
    recipe = tmp_path / "small.toml"
    recipe.write_text(recipe_to_toml(RECIPE))
    wrong = _lungkd("run", recipe, "--workspace", tmp_path / "ws", "--executor", "gpu")
    assert wrong.returncode == 2
    assert "unknown executor 'gpu'" in wrong.stderr and "inprocess, process, ray" in wrong.stderr
    address = _lungkd("run", recipe, "--workspace", tmp_path / "ws", "--executor", "process", "--address", "auto")
    assert address.returncode == 2 and "only for the ray executor" in address.stderr
    assert not (tmp_path / "ws" / "experiments").exists()


@pytest.mark.slow
def test_ctrl_c_stops_lungkd_run_and_its_workers_and_the_same_command_continues(reference, tmp_path):
    recipe = tmp_path / "small.toml"
    recipe.write_text(recipe_to_toml(RECIPE))
    command = [sys.executable, "-m", "lungkd.core.cli", "run", str(recipe), "--workspace", str(tmp_path / "ws"),
               "--executor", "process", "--workers", "2"]
    # Its own process group with Ctrl-C's default action, as a terminal's foreground job (a suite started in the
    # background of a shell without job control inherits SIGINT ignored, and Python then never raises it).
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Teacher seed 1, epoch 1 of 2:"):  # the command line prints sentences
            os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C sends
            break
    lines += process.stdout.readlines()
    assert process.wait(timeout=300) == 130, "".join(lines) + process.stderr.read()
    assert "run the same command again" in process.stderr.read()
    pids = [int(line.rsplit(" ", 1)[1]) for line in lines if ": training in worker process " in line]
    assert len(pids) == 2
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    again = subprocess.run(command, capture_output=True, text=True, timeout=900)
    assert again.returncode == 0, again.stderr
    finished = max(int(line.split(", epoch ")[1].split(" ")[0]) for line in lines
                   if line.startswith("Teacher seed 1, epoch "))  # 1, or 2 where the cancel came late
    assert f"Teacher seed 1: Resuming from epoch {finished}." in again.stdout
    assert "report: " in again.stdout
    written = json.loads((tmp_path / "ws" / "experiments" / "small" / "report.json").read_text())
    assert written == reference.to_json()


_FREED_MEMORY_PROBE = """
import sys
import numpy as np
from lungkd.core.kd.worker import keep_freed_memory

def resident_mb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20

kept = keep_freed_memory() if sys.argv[1] == "keep" else None
before = resident_mb()
block = np.ones(200 * 2**20 // 8)  # 200 MB, every page touched
del block
print(kept, resident_mb() - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_a_worker_keeps_freed_memory_for_its_next_batch():
    """Without it glibc returns a freed 200 MB block to the system at once (the next one faults its pages in
    again); a worker keeps it."""
    def run(mode: str) -> tuple[str, float]:
        out = subprocess.run([sys.executable, "-c", _FREED_MEMORY_PROBE, mode], capture_output=True, text=True,
                             check=True).stdout.split()
        return out[0], float(out[1])

    default_kept, default_growth = run("default")
    worker_kept, worker_growth = run("keep")
    assert default_kept == "None" and default_growth < 20
    assert worker_kept == "True" and worker_growth > 180
