"""The workspace's SQLite catalog: experiments (with their status and headline Scores), their runs and each
run's per-epoch metrics — what `lungkd runs` (`lungkd runs NAME --epochs`) and the Studio's Experiments page
read.

The experiment folders (recipe, event log, checkpoints, reports) stay the source of truth; the catalog is the
index the application and the command line query. It is shared by processes and threads:
- WAL journal, so readers (the GUI thread) never wait for a writer (the engine thread or a second process);
- every write is one short `BEGIN IMMEDIATE` transaction that waits up to BUSY_TIMEOUT_S for the lock and
  is committed (synchronous=FULL) before the method returns, so a killed process loses at most the write
  in flight and never leaves a half-written file;
- one connection per thread (sqlite3 connections must not be shared between threads). Open one Catalog
  per process; a Catalog does not survive a fork.

The schema carries its version in `PRAGMA user_version`. MIGRATIONS[i] turns version i into i + 1, each in
one transaction, so opening an older catalog brings it forward, and a catalog written by a newer LungKD is
refused untouched.

Paths under the catalog's folder are stored relative to it, so a moved or copied workspace still works.
"""
from __future__ import annotations

import json
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from lungkd.core.errors import LungKDError
from lungkd.core.workspace.layout import CATALOG_FILE
from lungkd.core.workspace.paths import resolve_workspace

BUSY_TIMEOUT_S = 30.0
STATUSES = ("pending", "running", "finished", "failed", "cancelled")
ROLES = ("teacher", "student", "baseline", "ensemble")

_JSON_COLUMNS = {"recipe", "summary", "test", "val"}
_PATH_COLUMNS = {"folder", "checkpoint"}


class CatalogError(LungKDError):
    """A catalog file that cannot be opened, read or written."""


# ---------------------------------------------------------------- rows

@dataclass(frozen=True)
class ExperimentRow:
    id: int
    name: str
    recipe: dict
    recipe_hash: str
    dataset_fingerprint: str
    folder: Path
    status: str
    summary: dict  # headline Scores when finished (core.workspace.status.RunSummary); {} before
    created: str
    updated: str


@dataclass(frozen=True)
class RunRow:
    id: int
    experiment_id: int
    role: str
    arch: str
    seed: int
    labels: str  # "hard" or the soft-label mode, e.g. "mean_5"
    status: str
    selected_epoch: int | None
    selection: str | None
    test: dict | None
    val: dict | None
    checkpoint: Path | None
    created: str
    updated: str


@dataclass(frozen=True)
class EpochRow:
    run_id: int
    epoch: int
    loss: float | None  # NaN is stored as NULL by SQLite
    lr: float | None
    test: dict | None
    val: dict | None


# ---------------------------------------------------------------- schema and migrations

_V1_SCHEMA = (
    """CREATE TABLE datasets (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, root TEXT NOT NULL, fingerprint TEXT NOT NULL UNIQUE,
        stats TEXT NOT NULL, created TEXT NOT NULL)""",
    """CREATE TABLE experiments (
        id INTEGER PRIMARY KEY, name TEXT NOT NULL, recipe TEXT NOT NULL, recipe_hash TEXT NOT NULL,
        dataset_fingerprint TEXT NOT NULL, folder TEXT NOT NULL UNIQUE, status TEXT NOT NULL,
        summary TEXT NOT NULL, created TEXT NOT NULL, updated TEXT NOT NULL)""",
    """CREATE TABLE runs (
        id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
        role TEXT NOT NULL, arch TEXT NOT NULL, seed INTEGER NOT NULL, labels TEXT NOT NULL,
        status TEXT NOT NULL, selected_epoch INTEGER, selection TEXT, test TEXT, val TEXT, checkpoint TEXT,
        created TEXT NOT NULL, updated TEXT NOT NULL, UNIQUE (experiment_id, role, arch, seed, labels))""",
    """CREATE TABLE epoch_metrics (
        run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE, epoch INTEGER NOT NULL,
        loss REAL, lr REAL, test TEXT, val TEXT, PRIMARY KEY (run_id, epoch))""",
    """CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY, experiment_id INTEGER NOT NULL REFERENCES experiments(id) ON DELETE CASCADE,
        kind TEXT NOT NULL, path TEXT NOT NULL, metadata TEXT NOT NULL, created TEXT NOT NULL,
        UNIQUE (experiment_id, path))""",
)


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in _V1_SCHEMA:
        conn.execute(statement)


def _add_models_and_artifact_hashes(conn: sqlite3.Connection) -> None:
    """v2: a models table for the model picker, filled from v1's finished runs; artifacts gain a sha256."""
    conn.execute("ALTER TABLE artifacts ADD COLUMN sha256 TEXT")
    conn.execute("""CREATE TABLE models (
        id INTEGER PRIMARY KEY, run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL, arch TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE, score REAL, created TEXT NOT NULL)""")
    conn.execute("CREATE INDEX models_run ON models(run_id)")
    finished = conn.execute("SELECT id, arch, checkpoint, test, updated FROM runs "
                            "WHERE status = 'finished' AND checkpoint IS NOT NULL").fetchall()
    conn.executemany("INSERT OR IGNORE INTO models (run_id, arch, path, score, created) VALUES (?, ?, ?, ?, ?)",
                     [(run_id, arch, path, (json.loads(test) if test else {}).get("score"), updated)
                      for run_id, arch, path, test, updated in finished])


def _drop_models(conn: sqlite3.Connection) -> None:
    """v3: the model list is the scan of model folders (core.models.inventory), one inventory for the model
    picker and the command line; the table that mirrored it is dropped (the model folders keep their cards)."""
    conn.execute("DROP INDEX IF EXISTS models_run")
    conn.execute("DROP TABLE models")


def _drop_unread_tables(conn: sqlite3.Connection) -> None:
    """v4: the datasets and artifacts tables were written and never read (the experiment's row keeps its data
    fingerprint; its folder and event log name every artifact), so they are dropped."""
    conn.execute("DROP TABLE datasets")
    conn.execute("DROP TABLE artifacts")


Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: tuple[Migration, ...] = (_create_v1, _add_models_and_artifact_hashes, _drop_models,
                                     _drop_unread_tables)  # [i]: i -> i + 1
SCHEMA_VERSION = len(MIGRATIONS)


# ---------------------------------------------------------------- errors a user can meet

_DAMAGED_FIX = ("move the file aside (e.g. rename it to catalog.sqlite.broken) and start LungKD again: a new "
                "catalog is created, and the experiment folders with their recipes and event logs are kept "
                "and can be imported again")
_PROBLEMS = {  # sqlite primary result code -> (what is wrong with the catalog, the fix)
    sqlite3.SQLITE_NOTADB: ("is not a LungKD catalog (not an SQLite database)", _DAMAGED_FIX),
    sqlite3.SQLITE_CORRUPT: ("is damaged", _DAMAGED_FIX),
    sqlite3.SQLITE_CANTOPEN: ("cannot be opened", "check that its folder exists and is writable"),
    sqlite3.SQLITE_READONLY: ("is read-only", "make the file and its folder writable, or use another workspace"),
    sqlite3.SQLITE_FULL: ("could not be written: the disk is full", "free disk space and run the command again"),
    sqlite3.SQLITE_BUSY: (f"stayed locked by another process for over {BUSY_TIMEOUT_S:.0f} s",
                          "wait for the other LungKD process to finish, or stop it, and try again"),
}


@contextmanager
def _translated(path: Path) -> Iterator[None]:
    """Turns the sqlite errors a user can cause into a CatalogError that names the file and the fix."""
    try:
        yield
    except sqlite3.DatabaseError as e:
        problem = _PROBLEMS.get(getattr(e, "sqlite_errorcode", -1) & 0xFF)
        if problem is None:
            raise
        raise CatalogError(f"the catalog {problem[0]} ({e}).", path=path, fix=problem[1]) from e


# ---------------------------------------------------------------- helpers

def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _check(value: str, allowed: Sequence[str], what: str) -> str:
    if value not in allowed:
        raise ValueError(f"unknown {what} {value!r}; expected one of {', '.join(allowed)}")
    return value


def _to_json(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


def _use_wal(conn: sqlite3.Connection) -> None:
    """Puts the file in WAL mode (kept in the file, so done once). Switching needs the file to itself, and
    SQLite answers that switch with BUSY at once, without its busy wait, while another process has the new
    file open (two processes creating one workspace's catalog together), so the wait is done here."""
    deadline = time.monotonic() + BUSY_TIMEOUT_S
    while conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
        try:
            conn.execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as e:
            if getattr(e, "sqlite_errorcode", -1) & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _version(conn: sqlite3.Connection) -> int:
    return conn.execute("PRAGMA user_version").fetchone()[0]


def _columns(cls: type) -> list[str]:
    return [f.name for f in fields(cls)]


class Catalog:
    """The catalog file at `path` (normally `<workspace>/catalog.sqlite`), created or migrated on open."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._base = self.path.resolve().parent
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._migrate()

    @classmethod
    def for_workspace(cls, workspace: str | Path | None = None) -> Catalog:
        """The catalog of a workspace folder (the default workspace when None)."""
        return cls(resolve_workspace(workspace) / CATALOG_FILE)

    def close(self) -> None:
        """Closes every thread's connection; a later call opens new ones."""
        with self._lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()
            self._local = threading.local()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------ connections and transactions

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._open_connection()
            self._local.conn = conn
            with self._lock:
                self._connections.append(conn)
        return conn

    def _open_connection(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions, we issue BEGIN IMMEDIATE ourselves.
        # check_same_thread=False only so close() may close other threads' connections; each is used by one.
        with _translated(self.path):
            conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None,
                                   check_same_thread=False)
            try:
                self._refuse_newer_or_damaged(conn)
                _use_wal(conn)
                conn.execute("PRAGMA synchronous = FULL")
                conn.execute("PRAGMA foreign_keys = ON")
            except BaseException:
                conn.close()
                raise
        return conn

    def _refuse_newer_or_damaged(self, conn: sqlite3.Connection) -> None:
        """Only reads, so a catalog that is refused is left exactly as it was."""
        version = _version(conn)
        if version > SCHEMA_VERSION:
            raise CatalogError(
                f"the catalog has schema version {version}, newer than the version {SCHEMA_VERSION} this LungKD "
                "knows; it was written by a newer LungKD and is left untouched.", path=self.path,
                fix="upgrade LungKD (pip install --upgrade lungkd), or open another workspace with --workspace DIR")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise CatalogError(f"the catalog is damaged ({'; '.join(problems[:3])}).", path=self.path,
                               fix=_DAMAGED_FIX)

    def _migrate(self) -> None:
        """Applies the missing migrations, each in its own write transaction (none when up to date)."""
        while _version(self._conn()) < SCHEMA_VERSION:
            with self._write() as tx:
                version = _version(tx)  # re-read under the lock: another process may have migrated meanwhile
                if version < SCHEMA_VERSION:
                    MIGRATIONS[version](tx)
                    tx.execute(f"PRAGMA user_version = {version + 1}")

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, committed before the caller's method returns."""
        conn = self._conn()
        with _translated(self.path):
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:  # sqlite already rolled back after some errors (e.g. a full disk)
                    conn.execute("ROLLBACK")
                raise

    # ------------------------------------------------------------ generic reads and writes

    def _store_path(self, path: str | Path | None) -> str | None:
        if path is None:
            return None
        absolute = Path(path).resolve()
        return str(absolute.relative_to(self._base)) if absolute.is_relative_to(self._base) else str(absolute)

    def _decode(self, cls: type, row: sqlite3.Row):
        values = {}
        for name in _columns(cls):
            value = row[name]
            if value is not None and name in _JSON_COLUMNS:
                value = json.loads(value)
            elif value is not None and name in _PATH_COLUMNS:
                value = self._base / value  # an absolute stored path stays as it is
            values[name] = value
        return cls(**values)

    def _select(self, cls: type, table: str, where: str = "1", params: Sequence = (), order: str = "id",
                conn: sqlite3.Connection | None = None) -> list:
        conn = conn or self._conn()
        sql = f"SELECT {', '.join(_columns(cls))} FROM {table} WHERE {where} ORDER BY {order}"
        with _translated(self.path):
            cursor = conn.execute(sql, tuple(params))
            cursor.row_factory = sqlite3.Row
            return [self._decode(cls, row) for row in cursor.fetchall()]

    def _get(self, cls: type, table: str, row_id: int, what: str):
        rows = self._select(cls, table, "id = ?", (row_id,))
        if not rows:
            raise self._missing(what, row_id)
        return rows[0]

    def _missing(self, what: str, row_id: int) -> CatalogError:
        return CatalogError(f"there is no {what} {row_id} in the catalog.", path=self.path,
                            fix="list what the catalog holds with `lungkd runs`")

    def _upsert(self, cls: type, table: str, key: Sequence[str], values: dict, *, update: bool,
                check: Callable[[Any], None] | None = None):
        """Inserts `values`; on a row with the same `key` updates it (or, without `update`, keeps it).
        Returns the stored row, read in the same transaction; `check` may refuse it (rolling back)."""
        names = list(values)
        kept = {"created", *key}
        action = ("DO UPDATE SET " + ", ".join(f"{n} = excluded.{n}" for n in names if n not in kept)
                  if update else "DO NOTHING")
        sql = (f"INSERT INTO {table} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
               f"ON CONFLICT ({', '.join(key)}) {action}")
        with self._write() as tx:
            tx.execute(sql, tuple(values.values()))
            row = self._select(cls, table, " AND ".join(f"{k} = ?" for k in key),
                               [values[k] for k in key], order=", ".join(key), conn=tx)[0]
            if check:
                check(row)
        return row

    def _update(self, tx: sqlite3.Connection, table: str, row_id: int, what: str, **values) -> None:
        assignments = ", ".join(f"{name} = ?" for name in values)
        if tx.execute(f"UPDATE {table} SET {assignments} WHERE id = ?", (*values.values(), row_id)).rowcount == 0:
            raise self._missing(what, row_id)

    # ------------------------------------------------------------ experiments

    def upsert_experiment(self, name: str, recipe: dict, recipe_hash: str, dataset_fingerprint: str,
                          folder: str | Path) -> ExperimentRow:
        """The experiment kept in `folder`, created as pending the first time; the same row on resume.
        A different recipe hash or dataset for the same folder is refused rather than mixed."""
        def same_recipe_and_data(row: ExperimentRow) -> None:
            if (row.recipe_hash, row.dataset_fingerprint) != (recipe_hash, dataset_fingerprint):
                raise CatalogError(
                    f"experiment {row.id} in {row.folder} was recorded with another recipe or dataset.",
                    path=self.path, fix="run the changed recipe in a new experiment folder")

        now = _now()
        return self._upsert(ExperimentRow, "experiments", ("folder",), {
            "name": name, "recipe": _to_json(recipe), "recipe_hash": recipe_hash,
            "dataset_fingerprint": dataset_fingerprint, "folder": self._store_path(folder), "status": "pending",
            "summary": _to_json({}), "created": now, "updated": now}, update=False, check=same_recipe_and_data)

    def set_experiment_status(self, experiment_id: int, status: str, summary: dict | None = None) -> None:
        """Sets the status and, when given, the summary of headline Scores."""
        values = {"status": _check(status, STATUSES, "status"), "updated": _now()}
        if summary is not None:
            values["summary"] = _to_json(summary)
        with self._write() as tx:
            self._update(tx, "experiments", experiment_id, "experiment", **values)

    def delete_experiment(self, experiment_id: int) -> None:
        """Removes an experiment with its runs and their epochs (the folders on disk are the caller's)."""
        with self._write() as tx:
            if tx.execute("DELETE FROM experiments WHERE id = ?", (experiment_id,)).rowcount == 0:
                raise self._missing("experiment", experiment_id)

    def rename_experiment(self, experiment_id: int, name: str, folder: str | Path, recipe: dict,
                          recipe_hash: str) -> None:
        """Records an experiment's new name, folder and recipe; the checkpoints of its runs that lay in the old
        folder move with it."""
        old = self.experiment(experiment_id).folder
        new = Path(folder)

        def moved(path: Path | None) -> str | None:
            if path is None or not path.is_relative_to(old):
                return self._store_path(path)
            return self._store_path(new / path.relative_to(old))

        with self._write() as tx:
            self._update(tx, "experiments", experiment_id, "experiment", name=name, folder=self._store_path(new),
                         recipe=_to_json(recipe), recipe_hash=recipe_hash, updated=_now())
            for run in self._select(RunRow, "runs", "experiment_id = ?", (experiment_id,), conn=tx):
                self._update(tx, "runs", run.id, "run", checkpoint=moved(run.checkpoint))

    def experiment(self, experiment_id: int) -> ExperimentRow:
        return self._get(ExperimentRow, "experiments", experiment_id, "experiment")

    def experiments(self) -> list[ExperimentRow]:
        """Every experiment, newest first, with its status and headline Scores (`summary`)."""
        return self._select(ExperimentRow, "experiments", order="id DESC")

    # ------------------------------------------------------------ runs and epochs

    def upsert_run(self, experiment_id: int, role: str, arch: str, seed: int, labels: str) -> RunRow:
        """The run of this experiment, role, architecture, seed and labels: created pending, the same on resume."""
        now = _now()
        return self._upsert(RunRow, "runs", ("experiment_id", "role", "arch", "seed", "labels"), {
            "experiment_id": experiment_id, "role": _check(role, ROLES, "role"), "arch": arch, "seed": seed,
            "labels": labels, "status": "pending", "created": now, "updated": now}, update=False)

    def set_run_status(self, run_id: int, status: str) -> None:
        with self._write() as tx:
            self._update(tx, "runs", run_id, "run", status=_check(status, STATUSES, "status"), updated=_now())

    def finish_run(self, run_id: int, *, selected_epoch: int, selection: str, test: dict | None,
                   val: dict | None, checkpoint: str | Path | None) -> None:
        """Marks a run finished with the epoch its selection protocol chose, its metrics and checkpoint."""
        with self._write() as tx:
            self._update(tx, "runs", run_id, "run", status="finished", selected_epoch=selected_epoch,
                         selection=selection, test=_to_json(test), val=_to_json(val),
                         checkpoint=self._store_path(checkpoint), updated=_now())

    def run(self, run_id: int) -> RunRow:
        return self._get(RunRow, "runs", run_id, "run")

    def runs(self, experiment_id: int) -> list[RunRow]:
        """The runs of one experiment in the order they were created."""
        return self._select(RunRow, "runs", "experiment_id = ?", (experiment_id,))

    def record_epoch(self, run_id: int, epoch: int, loss: float | None, lr: float | None,
                     test: dict | None = None, val: dict | None = None) -> EpochRow:
        """Stores one epoch's metrics; recording the same epoch again (after a resume) replaces them."""
        return self._upsert(EpochRow, "epoch_metrics", ("run_id", "epoch"), {
            "run_id": run_id, "epoch": epoch, "loss": loss, "lr": lr, "test": _to_json(test),
            "val": _to_json(val)}, update=True)

    def epochs(self, run_id: int) -> list[EpochRow]:
        """The epoch history of a run, first epoch first."""
        return self._select(EpochRow, "epoch_metrics", "run_id = ?", (run_id,), order="epoch")
