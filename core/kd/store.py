"""An experiment's folder: its recipe lock, event log, run folders and artifacts.

The folder keeps the recipe it was started with (`recipe.json`) and the fingerprint of its data; the
same recipe continues it, a changed one is refused with the differences. Teachers live outside it, in the
workspace's teachers folder keyed by what decides them, so experiments with the same teachers and data
share them. An open store holds the folder's lock: a second run of the same experiment (another `lungkd
run`, or the Studio) is refused with the name of the process that has it.
"""
from __future__ import annotations

import json
from pathlib import Path

from lungkd.core.events import EventLog
from lungkd.core.kd.jobs import ExperimentError, RunSpec
from lungkd.core.recipes import ExperimentRecipe
from lungkd.core.storage import json_sha256, write_json_atomic
from lungkd.core.workspace.layout import (experiment_folder, student_run_folder, teacher_run_folder,
                                         teachers_folder)
from lungkd.core.workspace.locks import FolderLock

RECIPE_FILE = "recipe.json"
EVENTS_FILE = "events.jsonl"
LOGITS_FILE = "teacher_logits.npz"
REPORT_FILES = ("report.json", "report.md", "report.html")


def recipe_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    out = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += recipe_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


class ExperimentStore:
    def __init__(self, workspace: Path, recipe: ExperimentRecipe):
        self.workspace = Path(workspace)
        self.recipe = recipe
        self.folder = experiment_folder(self.workspace, recipe.name)
        self.log = EventLog(self.folder / EVENTS_FILE)
        self.data_fingerprint: str | None = None
        self._lock = FolderLock(self.folder, f"experiment '{recipe.name}'")

    def open(self) -> "ExperimentStore":
        """Take the folder's lock, then create the folder or check that the recipe it holds is this one.
        `close` (or the end of a `with` block) lets the folder go."""
        self._lock.acquire()
        try:
            self._check_recipe()
        except BaseException:
            self.close()
            raise
        return self

    def close(self) -> None:
        self._lock.release()

    def __enter__(self) -> "ExperimentStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_recipe(self) -> None:
        current = self.recipe.to_dict()
        stored = self._stored()
        if stored is None:
            write_json_atomic(self.folder / RECIPE_FILE, {"recipe": current, "data_fingerprint": None})
        elif differences := recipe_differences(stored["recipe"], current):
            raise ExperimentError(
                f"experiment '{self.recipe.name}' was started with another recipe ({'; '.join(differences)}).",
                path=self.folder, fix="give the recipe a new name to start a new experiment, or restore the recipe "
                                      "it was started with to continue it.")

    def _stored(self) -> dict | None:
        path = self.folder / RECIPE_FILE
        if not path.is_file():
            return None
        try:
            stored = json.loads(path.read_text(encoding="utf-8"))
            if isinstance(stored, dict) and isinstance(stored.get("recipe"), dict) and "data_fingerprint" in stored:
                return stored
        except (OSError, ValueError):
            pass
        raise ExperimentError(  # what this folder's runs were made with can no longer be checked
            "the experiment's copy of its recipe is damaged, so LungKD cannot tell whether this recipe is the one "
            "it was started with.", path=path,
            fix="if this recipe is the one the experiment was started with, delete this file and run again (finished "
                "runs are kept and checked against the data); otherwise give the recipe a new name.")

    def bind_data(self, fingerprint: str) -> None:
        """Tie the experiment to its data the first time; refuse other data afterwards."""
        stored = self._stored()
        if stored["data_fingerprint"] is None:
            write_json_atomic(self.folder / RECIPE_FILE, {**stored, "data_fingerprint": fingerprint})
        elif stored["data_fingerprint"] != fingerprint:
            raise ExperimentError(
                "the dataset changed since this experiment started (its recordings, cycles, labels or split differ).",
                path=self.folder, fix="restore the dataset, or start a new experiment (a new name) on the new data.")
        self.data_fingerprint = fingerprint

    @property
    def teachers_root(self) -> Path:
        """Keyed by everything that decides a teacher: its spec and hyperparameters, the selection protocol and
        determinism, and the data (not whether the teachers trained together: that gives the same teachers)."""
        r = self.recipe
        key = {"teachers": r.teachers.model_dump(mode="json", exclude={"together"}), "selection": r.selection,
               "deterministic": r.deterministic, "data": self.data_fingerprint}
        return teachers_folder(self.workspace, r.teachers.arch, json_sha256(key, 12))

    def run_folder(self, spec: RunSpec) -> Path:
        """A teacher's folder in the shared teachers folder; a student's or baseline's in the experiment."""
        if spec.role == "teacher":
            return teacher_run_folder(self.teachers_root, spec.seed)
        return student_run_folder(self.folder, spec.role, spec.arch, spec.labels, spec.seed)

    @property
    def logits_file(self) -> Path:
        return self.folder / LOGITS_FILE

    def report_paths(self) -> list[Path]:
        return [self.folder / name for name in REPORT_FILES]
