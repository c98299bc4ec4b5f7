"""An experiment's folder: its recipe lock, event log, run folders and artifacts.

The folder keeps the recipe it was started with (`recipe.json`, and `recipe.toml` to run it again) and the
fingerprint of its data; the same recipe continues it, a changed one is refused with the differences (until
its data is bound nothing has been trained, so a changed recipe simply replaces it). Teachers live outside
it, in the workspace's teachers folder keyed by what decides them, so experiments with the same teachers and
data share them.

An open store holds the folder's lock (core.workspace.locks), an operating-system lock that dies with its
process: a second run of the same experiment (another `lungkd run`, or the Studio) is refused with the name
of the process that has it, and a killed run is told apart from a running one.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from lungkd.core.data.sources import dataset_label
from lungkd.core.events import EventLog
from lungkd.core.kd.jobs import ExperimentError, RunSpec
from lungkd.core.kd.report import ExperimentReport
from lungkd.core.kd.report_pages import write_reports
from lungkd.core.models.card import read_model_card, write_model_card
from lungkd.core.recipes import ExperimentRecipe, parse_experiment, recipe_to_toml
from lungkd.core.storage import json_sha256, write_json_atomic, write_text_atomic
from lungkd.core.workspace.catalog import Catalog
from lungkd.core.errors import LungKDError
from lungkd.core.workspace.layout import (CARD_FILE, EVENTS_FILE, EXPERIMENT_LOGITS_FILE, MODEL_FOLDER, RECIPE_FILE,
                                         RECIPE_TOML, REPORT_FILES, REPORT_JSON, experiment_folder, is_experiment_folder,
                                         student_run_folder, teacher_run_folder, teachers_folder, teachers_root,
                                         valid_name)
from lungkd.core.workspace.locks import FolderLock
from lungkd.core.workspace.status import is_running



class RecipeChangedError(ExperimentError):
    """The experiment's folder holds another recipe or other data: continuing it cannot work, a new name starts a
    new experiment."""


SOURCE_KEYS = ("path", "synthetic")  # where a [data] table's recordings come from


def _words(value) -> str:
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict):
        return ", ".join(f"{key.replace('_', ' ')} {_words(item)}" for key, item in value.items())
    if isinstance(value, list):
        return ", ".join(map(_words, value))
    return str(value)


def _source_words(data) -> str:
    """A [data] table's (or several pooled tables') recordings, as a person says them."""
    if isinstance(data, list):
        return " + ".join(map(_source_words, data))
    if not isinstance(data, dict):
        return _words(data)
    if data.get("synthetic"):
        generated = data["synthetic"]
        return f"{generated.get('recordings')} generated recordings (seed {generated.get('seed', 0)})"
    return f"the folder {data.get('path')}"


def _changes(old, new, path: tuple[str, ...]) -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        if path == ("data",) and any(old.get(key) != new.get(key) for key in SOURCE_KEYS):
            out.append(f"the data was {_source_words(old)}, now {_source_words(new)}")
            old, new = ({k: v for k, v in d.items() if k not in SOURCE_KEYS} for d in (old, new))
        for key in sorted(set(old) | set(new)):
            out += _changes(old.get(key), new.get(key), path + (key,))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new) and path != ("data",):
        return [change for i, (a, b) in enumerate(zip(old, new))
                for change in _changes(a, b, path[:-1] + (f"{path[-1].rstrip('s')} {i + 1}",))]
    if old == new:
        return []
    if path == ("data",):  # one dataset against several pooled
        return [f"the data was {_source_words(old)}, now {_source_words(new)}"]
    return [f"{' '.join(path).replace('_', ' ')} was {_words(old)}, now {_words(new)}"]


def recipe_differences(old: dict, new: dict) -> list[str]:
    """What differs between the recipe an experiment was started with (`old`, a `to_dict()`) and `new`, one phrase
    each in words, e.g. "the data was 240 generated recordings (seed 0), now the folder /data/mine" or "teachers
    train epochs was 10, now 5": said to a person, never as Python literals."""
    return _changes(old, new, ())


def new_experiment_name(workspace: Path, recipe: ExperimentRecipe) -> str:
    """A name under which `recipe` starts a new experiment (or continues one of the very same recipe), for a recipe
    whose own name belongs to an experiment started with another: the data's name where the data changed, else the
    recipe's, with -2, -3, ... until one fits."""
    stored = ExperimentStore(workspace, recipe)._stored()
    changed_data = stored is not None and stored["recipe"].get("data") != recipe.to_dict()["data"]
    base = valid_name(dataset_label(recipe.data)) if changed_data else recipe.name
    for candidate in (base, *(valid_name(base, f"-{n}") for n in range(2, 1000))):
        if not ExperimentStore(workspace, recipe.replace(name=candidate)).changes():
            return candidate
    raise ExperimentError(f"no free name like '{base}-N' is left in this workspace.", fix="give the recipe a name.")


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

    def changes(self) -> list[str]:
        """How this recipe differs, in words, from the one the experiment of its name was started with; empty when
        the name is free, nothing has been trained under it yet, or the recipe is the same (it continues). Reads
        the folder without taking its lock, so a window can ask before it runs anything."""
        stored = self._stored()
        if stored is None or stored["data_fingerprint"] is None:
            return []
        return recipe_differences(stored["recipe"], self.recipe.to_dict())

    def _check_recipe(self) -> None:
        stored = self._stored()
        if stored is None or stored["data_fingerprint"] is None:  # nothing trained yet: nothing to keep
            write_json_atomic(self.folder / RECIPE_FILE, {"recipe": self.recipe.to_dict(), "data_fingerprint": None})
            write_text_atomic(self.folder / RECIPE_TOML, recipe_to_toml(self.recipe))
        elif differences := self.changes():
            raise RecipeChangedError(
                f"experiment '{self.recipe.name}' was started with another recipe: {'; '.join(differences)}.",
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
            raise RecipeChangedError(
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
        return self.folder / EXPERIMENT_LOGITS_FILE

    def report_paths(self) -> list[Path]:
        return [self.folder / name for name in REPORT_FILES]


# ---------------------------------------------------------------- a model's experiment and teachers


def experiment_teacher_models(folder: Path) -> list[Path]:
    """The finished teacher models of the experiment in `folder`, by seed: none before its data was bound (the
    teachers' folder depends on the data), nor when its recipe copy is damaged (the run itself says so)."""
    folder = Path(folder)
    try:
        stored = json.loads((folder / RECIPE_FILE).read_text(encoding="utf-8"))
        if stored.get("data_fingerprint") is None:
            return []
        store = ExperimentStore(folder.parent.parent, parse_experiment(stored["recipe"]))
        store.data_fingerprint = stored["data_fingerprint"]
        models = [teacher_run_folder(store.teachers_root, seed) / MODEL_FOLDER
                  for seed in range(1, store.recipe.teachers.k + 1)]
        return [model for model in models if read_model_card(model) is not None]
    except (OSError, ValueError, AttributeError, KeyError, TypeError, LungKDError):
        return []


def experiment_of_model(model_folder: str | Path) -> Path | None:
    """The experiment folder a model belongs to (a student or baseline of `workspace/experiments/NAME`), or
    None (a teacher, a `lungkd train` model, the demo model)."""
    for folder in Path(model_folder).parents:
        if is_experiment_folder(folder):
            return folder
    return None


def teachers_for_model(model_folder: str | Path) -> list[Path]:
    """The finished teachers of the experiment that trained this model; none for any other model."""
    experiment = experiment_of_model(model_folder)
    return experiment_teacher_models(experiment) if experiment is not None else []


# ---------------------------------------------------------------- deleting and renaming


def _catalog_row(catalog: Catalog, folder: Path):
    return next((row for row in catalog.experiments() if row.folder.resolve() == folder.resolve()), None)


def _idle_folder(workspace: Path, name: str) -> Path:
    folder = experiment_folder(workspace, name)
    if not folder.is_dir():
        raise ExperimentError(f"there is no experiment '{name}' in this workspace.", path=folder,
                              fix="`lungkd runs` lists the workspace's experiments.")
    if is_running(folder):
        raise ExperimentError(f"experiment '{name}' is running.", path=folder,
                              fix="stop it first (Cancel in the wizard, Ctrl+C on the command line).")
    return folder


def delete_experiment(workspace: Path, name: str) -> None:
    """Deletes an experiment's folder (its recipe, log, students, baselines, logits and reports) and its catalog
    entry. Teachers live in the workspace's teachers folder, shared with other experiments, and stay."""
    workspace = Path(workspace)
    folder = _idle_folder(workspace, name)
    shutil.rmtree(folder)  # first: a folder that could not be removed stays listed, to be deleted again
    with Catalog.for_workspace(workspace) as catalog:
        row = _catalog_row(catalog, folder)
        if row is not None:
            catalog.delete_experiment(row.id)


def rename_experiment(workspace: Path, name: str, new_name: str) -> Path:
    """Gives an experiment a new name: its folder, its stored recipe (so the renamed recipe continues it), its
    reports, the model cards that name it (its students', and its teachers' where they were trained for it) and
    its catalog entry. The teachers stay where they are. Returns the new folder."""
    workspace = Path(workspace)
    folder = _idle_folder(workspace, name)
    target = experiment_folder(workspace, new_name)  # refuses a name that cannot be a folder
    if target.exists():
        raise ExperimentError(f"an experiment named '{new_name}' exists already.", path=target,
                              fix="choose another name, or delete that experiment first.")
    stored = json.loads((folder / RECIPE_FILE).read_text(encoding="utf-8"))
    recipe = parse_experiment({**stored["recipe"], "name": new_name})
    os.replace(folder, target)
    write_json_atomic(target / RECIPE_FILE, {**stored, "recipe": recipe.to_dict()})
    write_text_atomic(target / RECIPE_TOML, recipe_to_toml(recipe))
    if (target / REPORT_JSON).is_file():
        report = ExperimentReport.read(target / REPORT_JSON)
        write_reports(report.model_copy(update={"name": new_name, "recipe": recipe.to_dict()}), target)
    for card_path in [*target.rglob(CARD_FILE), *teachers_root(workspace).rglob(CARD_FILE)]:
        card = read_model_card(card_path.parent)  # the students, and the teachers trained for this experiment
        if card.experiment == name:
            write_model_card(card_path.parent, card.replace(experiment=new_name))
    with Catalog.for_workspace(workspace) as catalog:
        row = _catalog_row(catalog, folder)
        if row is not None:
            recipe_dict = recipe.to_dict()
            catalog.rename_experiment(row.id, new_name, target, recipe_dict, json_sha256(recipe_dict))
    return target
