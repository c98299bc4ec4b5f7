"""A damaged workspace (issue 10): a file cut short or a byte changed on disk is detected — by checksums where
the file would otherwise still load — and either computed again, to the same report, or refused with the
file and the fix. Never a traceback, never a silently changed score. And one process at a time in an
experiment: a second run is refused with the name of the first; a killed first leaves no lock behind."""
import json
import os
import shutil
import signal
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest

from lungkd.core.kd.executors import InProcessExecutor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.kd.jobs import ExperimentError
from lungkd.core.kd.report import ExperimentReport
from lungkd.core.models.card import DamagedModelError, read_model_card
from lungkd.core.models.inference import load_saved_model
from lungkd.core.recipes import load_experiment
from lungkd.core.storage import file_sha256
from lungkd.core.workspace.layout import TEACHER_LOGITS_FILE, TEST_LOGITS_FILE
from lungkd.core.workspace.locks import FolderBusy

pytestmark = pytest.mark.slow  # trains a small experiment once, then runs it again on damaged copies

RECIPE = """
name = "damage"
selection = "best_test"
deterministic = true
device = "cpu"

[data]
synthetic = { recordings = 10, seed = 5 }

[teachers]
arch = "cnn6"
size = "tiny"
k = 2
train = { epochs = 2, batch_size = 16 }

[[students]]
arch = "cnn6"
size = "tiny"
labels = "mean_2"
seeds = [1]
train = { epochs = 1, batch_size = 16 }

[second_generation]
student = 1
"""

HOLDER = """
import sys, time
from pathlib import Path
from lungkd.core.kd.store import ExperimentStore
from lungkd.core.recipes import load_experiment
from lungkd.core.workspace.locks import FolderLock
if len(sys.argv) == 3:
    held = ExperimentStore(Path(sys.argv[2]), load_experiment(sys.argv[1])).open()
else:
    held = FolderLock(sys.argv[1], "a run").acquire()
print("holding", flush=True)
time.sleep(600)
"""


@contextmanager
def _held(*args):
    """Another process holding an experiment (recipe, workspace) or a folder, until the block ends with its kill."""
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, *map(str, args)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "holding\n"
        yield holder
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """The experiment run once to its end: (recipe file, workspace, report)."""
    root = tmp_path_factory.mktemp("damage")
    (root / "damage.toml").write_text(RECIPE)
    report = Experiment(load_experiment(root / "damage.toml"), root / "ws", executor=InProcessExecutor()).run()
    return root / "damage.toml", root / "ws", report


@pytest.fixture
def copy(finished, tmp_path):
    """A copy of the finished workspace to damage: (recipe, workspace, report)."""
    recipe, workspace, report = finished
    shutil.copytree(workspace, tmp_path / "ws")
    return recipe, tmp_path / "ws", report


def _teacher(workspace: Path, seed: int) -> Path:
    (teachers,) = (workspace / "teachers").iterdir()
    return teachers / f"seed-{seed}"


def _student(workspace: Path) -> Path:
    return workspace / "experiments" / "damage" / "students" / "cnn6-mean_2-seed-1"


def _run_again(recipe: Path, workspace: Path) -> tuple[ExperimentReport, list]:
    events = []
    report = Experiment(load_experiment(recipe), workspace, on_event=events.append, executor=InProcessExecutor()).run()
    return report, events


def _cut(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def _flip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] ^= 0x10  # inside the weights, far from any header
    path.write_bytes(bytes(data))


def _trained(events: list) -> set[str]:
    return {e.run for e in events if e.kind == "started" and e.stage in ("teachers", "students") and e.run}


def _notices(events: list) -> list[str]:
    """What the runs said besides resuming from their last epoch."""
    return [e.message for e in events if e.kind == "notice" and e.stage in ("teachers", "students")
            and not e.message.startswith("Resuming from epoch")]


@pytest.mark.parametrize("damage", [_cut, _flip], ids=["cut short", "byte flipped"])
def test_damaged_teacher_weights_are_trained_again_to_the_same_report(copy, damage):
    """A flipped byte in safetensors weights loads without complaint: the sha256 in the card catches it. The
    run is finished again from its saved state, so the teacher and every score come back the same."""
    recipe, workspace, reference = copy
    weights = _teacher(workspace, 1) / "model" / "model.safetensors"
    damage(weights)
    with pytest.raises(DamagedModelError) as caught:  # anyone loading it meanwhile is told, not misled
        load_saved_model(weights.parent)
    assert str(caught.value).startswith(f"{weights}: ") and "lungkd run" in caught.value.problem.fix
    report, events = _run_again(recipe, workspace)
    assert _trained(events) == {"teacher seed 1"}
    (notice,) = _notices(events)
    assert notice.startswith(f"{weights}: ") and "Training the run again from its last saved state." in notice
    assert report == reference
    assert file_sha256(weights) == read_model_card(weights.parent).checksums["model.safetensors"]


def test_a_damaged_model_card_or_a_missing_one_means_the_run_is_finished_again(copy):
    recipe, workspace, reference = copy
    card = _teacher(workspace, 2) / "model" / "lungkd.json"
    _cut(card)
    (_student(workspace) / "model" / "lungkd.json").unlink()  # the completion marker of the student is gone
    report, events = _run_again(recipe, workspace)
    assert _trained(events) == {"teacher seed 2", "student cnn6 mean_2 seed 1"}
    (notice,) = _notices(events)
    assert notice.startswith(f"{card}: the model card is not JSON")
    assert report == reference


def test_a_truncated_training_state_starts_that_run_again_from_epoch_one(copy):
    recipe, workspace, reference = copy
    run = _teacher(workspace, 2)
    _cut(run / "train_state.pt")
    shutil.rmtree(run / "model")  # unfinished: it has to resume from the state, which is damaged
    report, events = _run_again(recipe, workspace)
    assert _trained(events) == {"teacher seed 2"}
    (notice,) = _notices(events)
    assert notice.startswith(f"{run / 'train_state.pt'} is damaged") and "starts again from epoch 1" in notice
    epochs = [e.data["epoch"] for e in events if e.kind == "metrics" and e.run == "teacher seed 2"]
    assert epochs == [1, 2]
    assert report == reference  # deterministic: the same teacher again


@pytest.fixture(scope="module")
def finished_together(tmp_path_factory):
    """The experiment with its teachers trained together as one batched model (the default on a GPU, forced
    here), run once to its end: (recipe file, workspace, report)."""
    root = tmp_path_factory.mktemp("together")
    (root / "damage.toml").write_text(RECIPE.replace("k = 2\n", "k = 2\ntogether = true\n"))
    report = Experiment(load_experiment(root / "damage.toml"), root / "ws", executor=InProcessExecutor()).run()
    return root / "damage.toml", root / "ws", report


def test_teachers_trained_together_finish_again_only_the_damaged_one(finished_together, tmp_path):
    """A flipped byte in one teacher's weights is said so, and only that teacher is saved again, from the
    group's state; a truncated group state starts the group again from epoch 1, to the same teachers."""
    recipe, original, reference = finished_together
    workspace = tmp_path / "ws"
    shutil.copytree(original, workspace)
    weights = _teacher(workspace, 1) / "model" / "model.safetensors"
    _flip(weights)
    other = _teacher(workspace, 2) / "model" / "lungkd.json"
    untouched = other.stat().st_mtime_ns
    report, events = _run_again(recipe, workspace)
    assert _trained(events) == {"teacher seed 1"} and other.stat().st_mtime_ns == untouched
    (notice,) = _notices(events)
    assert notice.startswith(f"{weights}: ") and "Training the run again from its last saved state." in notice
    assert report == reference
    (group,) = _teacher(workspace, 1).parent.glob("together-seeds-*")
    _cut(group / "train_state.pt")
    shutil.rmtree(_teacher(workspace, 2) / "model")  # unfinished: the group resumes from its state, damaged
    report, events = _run_again(recipe, workspace)
    assert _trained(events) == {"teacher seed 2"}  # teacher 1 trains beside it, and keeps its folder
    (notice,) = _notices(events)
    assert notice.startswith(f"{group / 'train_state.pt'} is damaged") and "starts again from epoch 1" in notice
    assert report == reference  # deterministic: the same teachers again


@pytest.mark.parametrize("damage", [_cut, _flip], ids=["cut short", "byte flipped"])
def test_damaged_teacher_logits_and_test_logits_are_computed_again(copy, damage):
    recipe, workspace, reference = copy
    damage(_teacher(workspace, 1) / TEACHER_LOGITS_FILE)  # a zip: its CRC catches a flipped byte
    damage(_student(workspace) / TEST_LOGITS_FILE)  # plain .npy: the sha256 in the card catches it
    _cut(workspace / "experiments" / "damage" / "teacher_logits.npz")  # rewritten by every run
    report, events = _run_again(recipe, workspace)
    assert _trained(events) == {"student cnn6 mean_2 seed 1"}  # finished again from its state
    assert [n.split(": ")[0] for n in _notices(events)] == [str(_student(workspace) / TEST_LOGITS_FILE)]
    assert report == reference


def test_a_damaged_recipe_copy_is_refused_with_the_file_and_the_fix(copy):
    recipe, workspace, _ = copy
    stored = workspace / "experiments" / "damage" / "recipe.json"
    _cut(stored)
    before = {p: p.stat().st_mtime_ns for p in workspace.rglob("*") if p.is_file()}
    with pytest.raises(ExperimentError) as caught:
        Experiment(load_experiment(recipe), workspace, executor=InProcessExecutor()).run()
    assert str(caught.value).startswith(f"{stored}: the experiment's copy of its recipe is damaged")
    assert "delete this file and run again" in caught.value.problem.fix
    assert {p: p.stat().st_mtime_ns for p in workspace.rglob("*") if p.is_file() and ".lock" not in p.name} == \
        {p: t for p, t in before.items() if ".lock" not in p.name}  # nothing already done is touched


def test_a_damaged_model_given_to_predict_is_a_message_not_a_traceback(copy, synthetic_dir):
    _, workspace, _ = copy
    model = _teacher(workspace, 1) / "model"
    _flip(model / "head.safetensors")
    result = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "predict", str(model),
                             str(sorted(synthetic_dir.glob("*.wav"))[0])], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # after the notes on what the model was trained on, said before the model loads
    assert f"\nlungkd: error: {model / 'head.safetensors'}: the file's bytes changed" in result.stderr


def test_a_second_run_of_the_same_experiment_is_refused_naming_the_first(copy):
    """Two `lungkd run`s (or the Studio and one) never train into the same folders. The first one's lock goes
    with it when it is killed, and the next run takes the experiment over."""
    recipe, workspace, reference = copy
    with _held(recipe, workspace) as holder:
        with pytest.raises(FolderBusy) as caught:
            Experiment(load_experiment(recipe), workspace, executor=InProcessExecutor()).run()
        message = str(caught.value)
        assert f"experiment 'damage' is being written by process {holder.pid} on {os.uname().nodename}" in message
        cli = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "run", str(recipe), "--workspace",
                              str(workspace)], capture_output=True, text=True)
        assert cli.returncode == 2 and f"being written by process {holder.pid}" in cli.stderr
        assert "wait for that run to finish" in cli.stderr
    report, _ = _run_again(recipe, workspace)  # the killed holder's lock is gone with it
    assert report == reference
    holder_file = json.loads((workspace / "experiments" / "damage" / ".lock-holder.json").read_text())
    assert holder_file["pid"] == os.getpid()


def test_a_teacher_being_trained_for_one_experiment_is_not_trained_for_another_at_once(finished, tmp_path):
    """Teachers are shared by experiments with the same teachers and data: their run folders are locked too."""
    from lungkd.core.kd.experiment import plan_jobs, teacher_specs
    from lungkd.core.kd.jobs import run_job
    from lungkd.core.kd.store import ExperimentStore

    recipe = load_experiment(finished[0])
    store = ExperimentStore(tmp_path / "ws", recipe)
    store.data_fingerprint = "f"
    job = plan_jobs(teacher_specs(recipe), "teachers", recipe, store)[0]
    with _held(job.folder) as holder:
        with pytest.raises(FolderBusy, match=f"the run 'teacher seed 1' is being written by process {holder.pid}"):
            run_job(job, lambda event: None)
    assert not (Path(job.folder) / "model").exists()  # nothing was trained beside the holder


def test_two_lungkd_train_of_one_recipe_do_not_train_into_one_folder(tmp_path):
    from lungkd.core.recipes import load_recipe
    from lungkd.core.training.single_run import run_dir_for

    recipe = tmp_path / "one.toml"
    recipe.write_text('name = "one"\nselection = "last"\n[data]\nsynthetic = { recordings = 8 }\n'
                      '[model]\narch = "cnn6"\nsize = "tiny"\n[train]\nepochs = 1\n')
    folder = run_dir_for(load_recipe(recipe), tmp_path / "ws")
    with _held(folder) as holder:
        second = subprocess.run([sys.executable, "-m", "lungkd.core.cli", "train", str(recipe), "--workspace",
                                 str(tmp_path / "ws")], capture_output=True, text=True)
    assert second.returncode == 2
    assert f"the training run 'one' is being written by process {holder.pid}" in second.stderr
    assert not (folder / "model").exists() and not (tmp_path / "ws" / "datasets").exists()  # refused before work
