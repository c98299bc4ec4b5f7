"""Disks that fail (issue 22): a full file system, a file-size limit, a read-only or unwritable folder, a workspace
that is a file or a looping link, `--out` into any of these or onto a device, and a standard output that is full or
closed each end with a message naming the path and the cause and a non-zero exit, never a traceback; what was
finished is kept, and the same command finishes once the disk is fixed.

How the failures are made here: a full disk is a small tmpfs (mounting needs root) or /dev/full; the file-size
limit is RLIMIT_FSIZE; a read-only folder is a read-only mount for root (chmod does not stop root) and chmod for
everyone else."""
import os
import resource
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lungkd.core.cli import main
from lungkd.core.errors import LungKDError
from lungkd.core.models.inventory import shipped_models_folder
from lungkd.core.storage import output_file, write_text_atomic

DEMO = shipped_models_folder() / "demo-cnn6"
ROOT = os.geteuid() == 0
RECIPE = """
name = "disks"
selection = "best_test"
deterministic = true
[data]
synthetic = {{ recordings = 12, seed = 3 }}
[teachers]
arch = "cnn6"
size = "tiny"
k = 1
[teachers.train]
epochs = 1
batch_size = 16
[[students]]
arch = "cnn6"
size = "tiny"
labels = "mean_1"
seeds = [1]
[students.train]
epochs = 1
batch_size = 16
"""

TRAIN_RECIPE = """
name = "disks-train"
[data]
synthetic = { recordings = 12, seed = 3 }
[model]
arch = "cnn6"
size = "tiny"
"""


def _mount(folder: Path, options: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB file system of its own (`_remount` grows it)."""
    if not ROOT:
        pytest.skip("mounting a small file system needs root")
    folder = tmp_path / "disk"
    _mount(folder, "size=1m,mode=0755")
    yield folder
    subprocess.run(["umount", "-l", str(folder)])


def _remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True)


@pytest.fixture
def read_only(tmp_path):
    """A folder nothing can be written into, holding a workspace made before: a read-only mount as root, whom
    chmod does not stop, else chmod 555."""
    folder = tmp_path / "read-only"
    if ROOT:
        _mount(folder, "size=4m,mode=0755")
    else:
        folder.mkdir()
    (folder / "ws").mkdir()
    (folder / "existing.csv").write_text("old\n")
    if ROOT:
        subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
    else:
        for path in (folder / "ws", folder):
            path.chmod(0o555)
    yield folder
    if ROOT:
        subprocess.run(["umount", "-l", str(folder)])
    else:
        for path in (folder, folder / "ws"):
            path.chmod(0o755)


def _lungkd(*args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "lungkd.core.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=900, **kwargs)


def _said_cleanly(result, *words: str) -> None:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "fault in LungKD" not in result.stderr, result.stderr
    for word in words:
        assert word in result.stderr, result.stderr


# ---------------------------------------------------------------- the workspace's disk


@pytest.mark.slow
def test_a_full_disk_ends_run_naming_the_file_and_the_space_and_the_same_command_finishes_after(small_disk,
                                                                                                 tmp_path):
    recipe = tmp_path / "disks.toml"
    recipe.write_text(RECIPE.format())
    full = _lungkd("run", recipe, "--workspace", small_disk / "ws")
    _said_cleanly(full, f"lungkd: error: {small_disk / 'ws'}", "cannot be written: no space is left on the device",
                  "run the same command again")
    assert "System error" not in full.stderr  # what libsndfile said before
    _remount(small_disk, "size=400m")
    again = _lungkd("run", recipe, "--workspace", small_disk / "ws")
    assert again.returncode == 0, again.stderr
    assert "report: " in again.stdout


@pytest.mark.slow
def test_a_file_size_limit_in_a_worker_is_said_as_such_not_as_a_fault_of_lungkd(tmp_path):
    from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset

    recipe = tmp_path / "disks.toml"
    recipe.write_text(RECIPE.format())
    workspace = tmp_path / "ws"  # the recordings first, so that the limit meets the worker's training state
    ensure_synthetic_dataset(workspace / "datasets" / "synthetic-12-seed3-noise0", SyntheticData(recordings=12, seed=3))
    limited = _lungkd("run", recipe, "--workspace", workspace, "--executor", "process",
                      preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (200 << 10, 200 << 10)))
    _said_cleanly(limited, f"lungkd: error: {workspace / 'teachers'}",
                  "the file grew beyond the largest file this process may write (the file-size limit, `ulimit -f`)")
    assert "training in worker process" in limited.stdout  # it was the worker that met the limit


def _a_file(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("not a folder")
    return path, "the workspace is a file, not a folder"


def _a_loop(tmp_path):
    os.symlink(tmp_path / "b", tmp_path / "a")
    os.symlink(tmp_path / "a", tmp_path / "b")
    return tmp_path / "a", "the workspace is a symbolic link that loops"


def _under_a_file(tmp_path):
    (tmp_path / "a-file").write_text("not a folder")
    return tmp_path / "a-file" / "ws", "the workspace cannot be written: a part of the path is a file, not a folder"


@pytest.mark.parametrize("where", [_a_file, _a_loop, _under_a_file], ids=["a file", "a symlink loop", "under a file"])
def test_a_workspace_that_is_not_a_folder_is_refused_before_any_work(tmp_path, capsys, where):
    workspace, words = where(tmp_path)
    experiment, training = tmp_path / "disks.toml", tmp_path / "train.toml"
    experiment.write_text(RECIPE.format())
    training.write_text(TRAIN_RECIPE)
    for command in (["run", str(experiment)], ["train", str(training)]):
        assert main([*command, "--workspace", str(workspace)]) == 2
        err = capsys.readouterr().err
        assert err.startswith(f"lungkd: error: {workspace}: {words}.") and "Traceback" not in err


@pytest.mark.parametrize("which", ["existing", "new"])
def test_a_read_only_workspace_is_refused_before_any_work_for_an_existing_and_a_new_one(read_only, tmp_path, capsys,
                                                                                        which):
    workspace = read_only / ("ws" if which == "existing" else "new-ws")
    recipe = tmp_path / "disks.toml"
    recipe.write_text(RECIPE.format())
    assert main(["run", str(recipe), "--workspace", str(workspace)]) == 2
    err = capsys.readouterr().err
    cause = "the file system is read-only" if ROOT else "permission is denied"
    assert err.startswith(f"lungkd: error: {workspace}: the workspace cannot be written: {cause}."), err


# ---------------------------------------------------------------- --out and standard output


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    from lungkd.core.data.sources import SyntheticData, ensure_synthetic_dataset

    folder = ensure_synthetic_dataset(tmp_path_factory.mktemp("data") / "synthetic", SyntheticData(recordings=2))
    return sorted(folder.glob("*.wav"))[0]


def _predict(recording, out, *extra) -> list[str]:
    return ["predict", str(DEMO), str(recording), "--csv", "--out", str(out), *extra]


def test_out_into_a_symlink_loop_is_refused_naming_it(recording, tmp_path, capsys):
    os.symlink(tmp_path / "b.csv", tmp_path / "a.csv")
    os.symlink(tmp_path / "a.csv", tmp_path / "b.csv")
    assert main(_predict(recording, tmp_path / "a.csv", "--force")) == 2
    assert f"{tmp_path / 'a.csv'}: the output is a symbolic link that loops." in capsys.readouterr().err
    assert os.readlink(tmp_path / "a.csv") == str(tmp_path / "b.csv")  # left as it was


@pytest.mark.parametrize("force", [False, True], ids=["without --force", "with --force"])
def test_out_onto_a_device_is_refused_even_with_force_and_the_device_is_left_alone(recording, capsys, force):
    before = os.stat("/dev/full")
    assert main(_predict(recording, "/dev/full", *(["--force"] if force else []))) == 2
    err = capsys.readouterr().err
    assert "/dev/full: the output is a device, a pipe or a socket, not a file; --force replaces regular files only" \
        in err
    after = os.stat("/dev/full")
    assert stat.S_ISCHR(after.st_mode) and after.st_rdev == before.st_rdev and after.st_ino == before.st_ino


def test_out_onto_a_fifo_is_refused_and_a_regular_file_is_replaced_with_force(recording, tmp_path, capsys):
    os.mkfifo(tmp_path / "pipe.csv")
    assert main(_predict(recording, tmp_path / "pipe.csv", "--force")) == 2
    assert "not a file; --force replaces regular files only" in capsys.readouterr().err
    assert stat.S_ISFIFO(os.stat(tmp_path / "pipe.csv").st_mode)
    (tmp_path / "old.csv").write_text("old\n")
    assert main(_predict(recording, tmp_path / "old.csv")) == 2
    assert "the output file exists already" in capsys.readouterr().err
    assert main(_predict(recording, tmp_path / "old.csv", "--force")) == 0
    assert (tmp_path / "old.csv").read_text().startswith("recording,")


def test_out_into_a_missing_read_only_or_unwritable_folder_is_refused_before_the_work(recording, read_only, tmp_path,
                                                                                      capsys):
    assert main(_predict(recording, tmp_path / "missing" / "p.csv")) == 2
    assert f"{tmp_path / 'missing'}: the folder of the output does not exist." in capsys.readouterr().err
    assert main(_predict(recording, read_only / "p.csv")) == 2
    cause = "the file system is read-only" if ROOT else "permission is denied"
    assert f"{read_only / 'p.csv'}: cannot be written: {cause}." in capsys.readouterr().err
    assert main(_predict(recording, read_only / "existing.csv", "--force")) == 2
    assert f"{read_only / 'existing.csv'}: cannot be written: {cause}." in capsys.readouterr().err
    assert (read_only / "existing.csv").read_text() == "old\n"


def test_out_onto_a_full_disk_is_said_and_leaves_nothing_behind(recording, small_disk, capsys):
    (small_disk / "filler").write_bytes(b"\0" * (1 << 20))  # as full as it gets: a few kB may be left
    assert main(_predict(recording, small_disk / "p.csv")) == 2
    assert f"{small_disk / 'p.csv'}: cannot be written: no space is left on the device." in capsys.readouterr().err
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]  # no half-written or temporary file


@pytest.mark.parametrize("redirect", ["full", "closed"])
def test_standard_output_that_is_full_or_closed_is_said_with_a_non_zero_exit(recording, redirect):
    command = [sys.executable, "-m", "lungkd.core.cli", "predict", str(DEMO), str(recording), "--json"]
    with open("/dev/full", "w") as full:
        result = subprocess.run(command, stdout=full if redirect == "full" else None, stderr=subprocess.PIPE,
                                text=True, timeout=300,
                                **({"preexec_fn": lambda: os.close(1)} if redirect == "closed" else {}))
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    said = "no space is left on the device" if redirect == "full" else "is closed: nothing can be printed"
    assert f"lungkd: error: standard output {'cannot be written: ' if redirect == 'full' else ''}{said}" \
        in result.stderr


# ---------------------------------------------------------------- any output path


TARGETS = ["absent", "file", "folder", "fifo", "link to a file", "link to nothing", "link loop", "link to a device"]
PARENTS = ["folder", "missing", "a file"]


def _make(folder: Path, parent: str, target: str, name: str) -> Path:
    base = folder / "parent"
    if parent == "folder":
        base.mkdir()
    elif parent == "a file":
        base.write_text("x")
    out = base / name
    if parent != "folder":
        return out
    real = folder / "real.csv"
    real.write_text("old")
    {"absent": lambda: None, "file": lambda: out.write_text("old"), "folder": lambda: out.mkdir(),
     "fifo": lambda: os.mkfifo(out), "link to a file": lambda: os.symlink(real, out),
     "link to nothing": lambda: os.symlink(folder / "nothing", out),
     "link loop": lambda: (os.symlink(out, folder / "loop"), os.symlink(folder / "loop", out)),
     "link to a device": lambda: os.symlink("/dev/null", out)}[target]()
    return out


NAMES = st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1,
                max_size=60).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(parent=st.sampled_from(PARENTS), target=st.sampled_from(TARGETS), name=NAMES, force=st.booleans())
def test_any_output_path_is_written_whole_or_refused_and_only_regular_files_are_replaced(tmp_path_factory, parent,
                                                                                         target, name, force):
    folder = tmp_path_factory.mktemp("out")
    out = _make(folder, parent, target, name)
    before = os.lstat(out) if os.path.lexists(out) else None
    try:
        written = output_file(out, [folder / "input.wav"], force)
        write_text_atomic(written, "new")
    except LungKDError:  # refused, with a message: nothing that was there changed
        after = os.lstat(out) if os.path.lexists(out) else None
        assert (before is None) == (after is None)
        if before is not None:
            assert stat.S_IFMT(before.st_mode) == stat.S_IFMT(after.st_mode)
        return
    assert stat.S_ISREG(os.stat(written).st_mode) and Path(written).read_text() == "new"
    assert parent == "folder" and target in ("absent", "file", "link to a file")
    assert force or target == "absent"
    if target == "link to a file":  # written through the link; the link stays
        assert os.path.islink(out) and (folder / "real.csv").read_text() == "new"
    shutil.rmtree(folder, ignore_errors=True)


# ---------------------------------------------------------------- what is written is readable as the umask says

_WRITE_EVERY_KIND = """
import sys
from pathlib import Path
import numpy as np
from lungkd.core.errors import Problem
from lungkd.core.features.cache import CacheEntry, FeatureCache
from lungkd.core.models.registry import create_model, save_model
from lungkd.core.storage import save_torch_atomic, write_npz_atomic, write_text_atomic
out = Path(sys.argv[1])
save_model(create_model("resnet18", size="tiny"), out / "model")  # weights as safetensors (which writes 0600)
FeatureCache(out / "cache").put("k" * 64, CacheEntry(np.zeros((2, 8), np.float32), []), "a.wav")
save_torch_atomic(out / "train_state.pt", {"epoch": 1})
write_npz_atomic(out / "logits.npz", a=np.zeros(3))
write_text_atomic(out / "report.md", "# report")
"""


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o002])
def test_weights_and_cache_files_get_the_mode_the_umask_gives_every_file(tmp_path, umask):
    subprocess.run([sys.executable, "-c", _WRITE_EVERY_KIND, str(tmp_path)], check=True, capture_output=True,
                   preexec_fn=lambda: os.umask(umask))
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"model.safetensors", "head.safetensors", "train_state.pt", "report.md"}
    assert any(p.suffix == ".safetensors" and "cache" in p.parts for p in files)
    assert {p.relative_to(tmp_path).as_posix(): oct(stat.S_IMODE(p.stat().st_mode)) for p in files} == \
        {p.relative_to(tmp_path).as_posix(): oct(0o666 & ~umask) for p in files}
