"""The workspace catalog: rows, resumable upserts, UI queries, migrations, damaged files, concurrent writers."""
import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lungkd.core.workspace.catalog import SCHEMA_VERSION, Catalog, CatalogError
from lungkd.core.workspace.layout import CATALOG_FILE

SCORES = {"sp": 80.0, "se": 40.0, "score": 60.0}

# Writes into the catalog from another process once the file `go` exists.
# argv: catalog, worker number, epochs (-1: until killed), go.
WORKER = """
import os, sys, time
from lungkd.core.workspace.catalog import Catalog

path, worker, epochs, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
catalog = Catalog(path)
experiment = catalog.upsert_experiment("shared", {"k": 3}, "hash", "data", "experiments/shared")
run = catalog.upsert_run(experiment.id, "teacher", "cnn6", worker, "hard")
print("ready", time.time(), flush=True)
while not os.path.exists(go):
    time.sleep(0.005)
print("start", time.time(), flush=True)
epoch = 0
while epoch != epochs:
    catalog.record_epoch(run.id, epoch, loss=1.0 / (epoch + 1), lr=1e-3, test={"score": epoch})
    if epoch % 4 == 0:
        catalog.upsert_run(experiment.id, "student", "cnn6", 1000 * worker + epoch, "mean_3")
    epoch += 1
print("end", time.time(), flush=True)
"""


# Opens the catalog once the file `go` exists. argv: catalog, go.
OPENER = """
import os, sys, time
from lungkd.core.workspace.catalog import Catalog

path, go = sys.argv[1], sys.argv[2]
while not os.path.exists(go):
    time.sleep(0.001)
Catalog(path).close()
"""


def _integrity(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        return conn.execute("PRAGMA integrity_check").fetchone()[0]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _start_worker(tmp_path: Path, catalog: Path, worker: int, epochs: int) -> subprocess.Popen:
    script = tmp_path / "catalog_worker.py"
    script.write_text(WORKER)
    go = tmp_path / "go"
    return subprocess.Popen([sys.executable, str(script), str(catalog), str(worker), str(epochs), str(go)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.fixture
def catalog(tmp_path):
    with Catalog.for_workspace(tmp_path) as opened:
        yield opened


@pytest.fixture
def experiment(catalog, tmp_path):
    return catalog.upsert_experiment("demo", {"teachers": {"k": 3}}, "h1", "fp1", tmp_path / "experiments" / "demo")


# ---------------------------------------------------------------- rows and queries

def test_new_catalog_is_created_in_the_workspace_at_the_current_version(catalog, tmp_path):
    assert catalog.path == tmp_path / CATALOG_FILE and catalog.path.exists()
    with sqlite3.connect(catalog.path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_upserts_return_the_same_rows_on_resume(catalog, experiment, tmp_path):
    again = catalog.upsert_experiment("demo", {"teachers": {"k": 3}}, "h1", "fp1", tmp_path / "experiments" / "demo")
    assert again == experiment and experiment.status == "pending" and experiment.recipe == {"teachers": {"k": 3}}
    run = catalog.upsert_run(experiment.id, "teacher", "cnn6", 1, "hard")
    catalog.set_run_status(run.id, "running")
    resumed = catalog.upsert_run(experiment.id, "teacher", "cnn6", 1, "hard")
    assert resumed.id == run.id and resumed.status == "running"
    assert catalog.upsert_run(experiment.id, "teacher", "cnn6", 2, "hard").id != run.id


def test_a_changed_recipe_for_the_same_folder_is_refused(catalog, experiment):
    with pytest.raises(CatalogError, match="another recipe or dataset"):
        catalog.upsert_experiment("demo", {"teachers": {"k": 5}}, "h2", "fp1", experiment.folder)
    assert catalog.experiment(experiment.id).recipe_hash == "h1"


def test_record_epoch_is_idempotent_per_run_and_epoch(catalog, experiment):
    run = catalog.upsert_run(experiment.id, "student", "cnn6", 1, "mean_3")
    for epoch in (1, 0, 1):  # epoch 1 recorded again after a resume
        catalog.record_epoch(run.id, epoch, loss=0.5 + epoch, lr=1e-3, test=SCORES, val={"score": epoch})
    catalog.record_epoch(run.id, 1, loss=float("nan"), lr=1e-4, test=SCORES)
    history = catalog.epochs(run.id)
    assert [e.epoch for e in history] == [0, 1]
    assert history[0].loss == 0.5 and history[0].val == {"score": 0}
    assert history[1].loss is None and history[1].lr == 1e-4 and history[1].val is None


def test_queries_for_the_ui_and_cli(catalog, experiment, tmp_path):
    run = catalog.upsert_run(experiment.id, "teacher", "cnn6", 1, "hard")
    model_dir = experiment.folder / "teachers" / "seed1"
    catalog.finish_run(run.id, selected_epoch=7, selection="best-test", test=SCORES, val=None, checkpoint=model_dir)
    catalog.set_experiment_status(experiment.id, "finished", summary={"ensemble": SCORES})
    later = catalog.upsert_experiment("second", {}, "h2", "fp1", tmp_path / "experiments" / "second")

    assert [(e.id, e.status) for e in catalog.experiments()] == [(later.id, "pending"), (experiment.id, "finished")]
    assert catalog.experiment(experiment.id).summary == {"ensemble": SCORES}
    finished = catalog.runs(experiment.id)[0]
    assert (finished.status, finished.selected_epoch, finished.selection, finished.test, finished.checkpoint) == \
        ("finished", 7, "best-test", SCORES, model_dir)



def test_bad_ids_statuses_and_roles_are_refused(catalog, experiment):
    with pytest.raises(CatalogError, match="no run 99"):
        catalog.set_run_status(99, "finished")
    with pytest.raises(CatalogError, match="no experiment 99"):
        catalog.experiment(99)
    with pytest.raises(ValueError, match="status"):
        catalog.set_experiment_status(experiment.id, "done")
    with pytest.raises(ValueError, match="role"):
        catalog.upsert_run(experiment.id, "oracle", "cnn6", 1, "hard")


def test_paths_inside_the_workspace_survive_moving_it(tmp_path):
    workspace = tmp_path / "ws"
    with Catalog.for_workspace(workspace) as catalog:
        experiment = catalog.upsert_experiment("demo", {}, "h", "fp", workspace / "experiments" / "demo")
        run = catalog.upsert_run(experiment.id, "teacher", "cnn6", 1, "hard")
        catalog.finish_run(run.id, selected_epoch=1, selection="last", test=None, val=None,
                           checkpoint=tmp_path / "elsewhere" / "model")
    workspace.rename(tmp_path / "moved")
    with Catalog.for_workspace(tmp_path / "moved") as catalog:
        assert catalog.experiments()[0].folder == (tmp_path / "moved" / "experiments" / "demo").resolve()
        assert catalog.runs(experiment.id)[0].checkpoint == (tmp_path / "elsewhere" / "model").resolve()


# ---------------------------------------------------------------- schema versions

V1_SCHEMA = """
CREATE TABLE datasets (id INTEGER PRIMARY KEY, name TEXT NOT NULL, root TEXT NOT NULL,
    fingerprint TEXT NOT NULL UNIQUE, stats TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE experiments (id INTEGER PRIMARY KEY, name TEXT NOT NULL, recipe TEXT NOT NULL,
    recipe_hash TEXT NOT NULL, dataset_fingerprint TEXT NOT NULL, folder TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL, summary TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL);
CREATE TABLE runs (id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL REFERENCES experiments(id)
    ON DELETE CASCADE, role TEXT NOT NULL, arch TEXT NOT NULL, seed INTEGER NOT NULL, labels TEXT NOT NULL,
    status TEXT NOT NULL, selected_epoch INTEGER, selection TEXT, test TEXT, val TEXT, checkpoint TEXT,
    created TEXT NOT NULL, updated TEXT NOT NULL, UNIQUE (experiment_id, role, arch, seed, labels));
CREATE TABLE epoch_metrics (run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    epoch INTEGER NOT NULL, loss REAL, lr REAL, test TEXT, val TEXT, PRIMARY KEY (run_id, epoch));
CREATE TABLE artifacts (id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL REFERENCES experiments(id)
    ON DELETE CASCADE, kind TEXT NOT NULL, path TEXT NOT NULL, metadata TEXT NOT NULL, created TEXT NOT NULL,
    UNIQUE (experiment_id, path));
INSERT INTO experiments VALUES (1, 'old', '{"k": 3}', 'h', 'fp', 'experiments/old', 'finished',
    '{"ensemble": {"score": 61.0}}', '2024-01-01', '2024-01-02');
INSERT INTO runs VALUES (1, 1, 'teacher', 'cnn6', 1, 'hard', 'finished', 4, 'best-test', '{"score": 58.5}', NULL,
    'experiments/old/teachers/seed1', '2024-01-01', '2024-01-02');
INSERT INTO runs VALUES (2, 1, 'teacher', 'cnn6', 2, 'hard', 'failed', NULL, NULL, NULL, NULL, NULL,
    '2024-01-01', '2024-01-02');
INSERT INTO epoch_metrics VALUES (1, 0, 1.2, 0.001, '{"score": 50.0}', NULL);
INSERT INTO artifacts VALUES (1, 1, 'logits', 'experiments/old/teacher_logits.npz', '{}', '2024-01-02');
PRAGMA user_version = 1;
"""


def test_a_version_1_catalog_is_migrated_forward_keeping_its_rows(tmp_path):
    path = tmp_path / CATALOG_FILE
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_SCHEMA)
    with Catalog(path) as catalog:
        assert [r.status for r in catalog.runs(1)] == ["finished", "failed"]
        assert catalog.epochs(1)[0].test == {"score": 50.0}
        assert catalog.experiments()[0].summary == {"ensemble": {"score": 61.0}}
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 4
        tables = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        # v2 added a models table, which v3 drops (the model folders are the one inventory,
        # core.models.inventory); v4 drops the datasets and artifacts tables nothing read
        assert tables == {"experiments", "runs", "epoch_metrics"}
    assert _integrity(path) == "ok"


def test_a_catalog_from_a_newer_lungkd_is_refused_untouched(tmp_path):
    path = tmp_path / CATALOG_FILE
    Catalog(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    before = _sha256(path)
    with pytest.raises(CatalogError) as error:
        Catalog(path)
    message = str(error.value)
    assert f"schema version {SCHEMA_VERSION + 1}" in message and "upgrade LungKD" in message and str(path) in message
    assert _sha256(path) == before


# ---------------------------------------------------------------- damaged files

def _not_sqlite(path: Path) -> None:
    path.write_text("these are my notes, not a database\n" * 100)


def _damaged_pages(path: Path) -> None:
    with Catalog(path) as catalog:
        experiment = catalog.upsert_experiment("demo", {}, "h", "fp", path.parent / "experiments" / "demo")
        run = catalog.upsert_run(experiment.id, "teacher", "cnn6", 1, "hard")
        for epoch in range(300):
            catalog.record_epoch(run.id, epoch, 1.0, 1e-3, test={"padding": "x" * 200})
    data = bytearray(path.read_bytes())
    page = 4096
    data[2 * page:len(data) - page] = os.urandom(len(data) - 3 * page)  # keep the header and schema page
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_not_sqlite, _damaged_pages])
def test_a_damaged_catalog_names_the_file_and_the_fix(tmp_path, damage):
    path = tmp_path / CATALOG_FILE
    damage(path)
    with pytest.raises(CatalogError) as error:
        Catalog(path)
    message = str(error.value)
    assert str(path) in message and "move the file aside" in message and "event logs" in message


# ---------------------------------------------------------------- concurrency and durability

def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / CATALOG_FILE
    epochs = 300
    workers = [_start_worker(tmp_path, path, worker, epochs) for worker in (1, 2)]
    ready = [w.stdout.readline() for w in workers]  # both opened the catalog and wait
    (tmp_path / "go").touch()
    outputs = [w.communicate(timeout=120) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], [err for _, err in outputs]
    assert all(line.startswith("ready") for line in ready)
    times = [{line.split()[0]: float(line.split()[1]) for line in out.splitlines()} for out, _ in outputs]
    assert max(t["start"] for t in times) < min(t["end"] for t in times), "the writers did not overlap"

    with Catalog(path) as catalog:
        (experiment,) = catalog.experiments()
        runs = catalog.runs(experiment.id)
        teachers = [r for r in runs if r.role == "teacher"]
        assert sorted(r.seed for r in teachers) == [1, 2]
        assert len(runs) == 2 + 2 * len(range(0, epochs, 4))
        for teacher in teachers:
            assert [e.epoch for e in catalog.epochs(teacher.id)] == list(range(epochs))
    assert _integrity(path) == "ok"


def test_processes_creating_one_new_catalog_at_once_all_open_it(tmp_path):
    # Switching a new file to WAL gets BUSY at once, without SQLite's busy wait, while another process
    # has it open; with three openers per round that race came in about one round of three.
    script = tmp_path / "opener.py"
    script.write_text(OPENER)
    for round_ in range(8):
        folder = tmp_path / f"round{round_}"
        folder.mkdir()
        openers = [subprocess.Popen([sys.executable, str(script), str(folder / CATALOG_FILE), str(folder / "go")],
                                    stderr=subprocess.PIPE, text=True) for _ in range(3)]
        time.sleep(0.2)
        (folder / "go").touch()
        errors = [opener.communicate(timeout=120)[1] for opener in openers]
        assert [opener.returncode for opener in openers] == [0, 0, 0], errors
        assert _integrity(folder / CATALOG_FILE) == "ok"


def test_a_reader_thread_and_a_writer_thread_share_one_catalog(catalog, experiment):
    run = catalog.upsert_run(experiment.id, "teacher", "cnn6", 1, "hard")
    errors = []

    def write():
        try:
            for epoch in range(200):
                catalog.record_epoch(run.id, epoch, 1.0, 1e-3)
        except Exception as e:  # surfaced by the assertion below
            errors.append(e)

    writer = threading.Thread(target=write)
    writer.start()
    seen = []
    while writer.is_alive():
        seen.append(len(catalog.epochs(run.id)))
    writer.join()
    assert errors == [] and seen == sorted(seen) and len(catalog.epochs(run.id)) == 200


def test_a_writer_killed_mid_loop_leaves_a_sound_catalog(tmp_path):
    path = tmp_path / CATALOG_FILE
    (tmp_path / "go").touch()
    worker = _start_worker(tmp_path, path, 1, -1)
    try:
        assert worker.stdout.readline().startswith("ready")
        assert worker.stdout.readline().startswith("start")
        time.sleep(0.5)
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.communicate()
    assert _integrity(path) == "ok"
    with Catalog(path) as catalog:
        (teacher,) = [r for r in catalog.runs(1) if r.role == "teacher"]
        recorded = [e.epoch for e in catalog.epochs(teacher.id)]
        assert len(recorded) > 0 and recorded == list(range(len(recorded)))  # every committed epoch, in order
        catalog.record_epoch(teacher.id, len(recorded), 0.1, 1e-3)  # and it takes writes again
