"""An experiment as the engine leaves it on disk, assembled from real parts without training: its store
(recipe.json, recipe.toml), a teacher in the shared teachers folder and a student in the experiment (copies
of the session's tiny model with their cards), the catalog written by the real CatalogRecorder from the
events a run emits, and, when it finished, its reports. For tests of what happens to experiments
afterwards (listing, renaming, deleting) that need no training.

Shared by tests/core and tests/app (tests/ is on sys.path through its conftest.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

from lungkd.core.events import Event
from lungkd.core.kd.experiment import student_specs, teacher_specs
from lungkd.core.kd.jobs import FinishedRun
from lungkd.core.kd.recorder import CatalogRecorder
from lungkd.core.kd.report import build_report
from lungkd.core.kd.report_pages import write_reports
from lungkd.core.kd.store import ExperimentStore
from lungkd.core.models.card import CARD_FILE, read_model_card, write_model_card
from lungkd.core.recipes import parse_experiment
from lungkd.core.workspace.catalog import Catalog

FINGERPRINT = "0123456789abcdef"


def _recipe(name: str):
    return parse_experiment({
        "name": name, "selection": "last", "data": {"synthetic": {"recordings": 14, "seed": 1}},
        "teachers": {"arch": "cnn6", "size": "tiny", "k": 1, "train": {"epochs": 1}},
        "students": [{"arch": "cnn6", "size": "tiny", "labels": "mean_1", "seeds": [1], "train": {"epochs": 2}}]})


def _place_model(model_folder: Path, run_folder: Path, name: str, spec) -> FinishedRun:
    target = run_folder / "model"
    if not (target / CARD_FILE).is_file():  # else a teacher another experiment trained: shared, as the engine does
        shutil.copytree(model_folder, target)
        card = read_model_card(target).replace(
            experiment=name, role=spec.role, training_labels=spec.labels, seed=spec.seed,
            test_data={"dataset": "synthetic-14-seed1-noise0", "split": "test", "cycles": 25})
        write_model_card(target, card)
    return FinishedRun(role=spec.role, arch=spec.arch, seed=spec.seed, labels=spec.labels, folder=str(run_folder),
                       card=read_model_card(target))


def recorded_experiment(workspace: Path, model_folder: Path, name: str = "recorded", finished: bool = True) -> Path:
    """The experiment `name` in `workspace`: finished with its reports, or (finished=False) as a run killed after
    its models were trained, which the catalog still calls running. Returns its folder."""
    recipe = _recipe(name)
    with ExperimentStore(workspace, recipe).open() as store, Catalog.for_workspace(workspace) as catalog:
        store.bind_data(FINGERPRINT)
        record = CatalogRecorder(catalog, recipe, store.folder)
        record(Event("data", "finished", data={"fingerprint": FINGERPRINT, "root": str(workspace / "datasets"),
                                               "stats": {}}))
        runs = []
        for stage, spec in (("teachers", teacher_specs(recipe)[0]), ("students", student_specs(recipe.students[0])[0])):
            run = _place_model(model_folder, store.run_folder(spec), name, spec)
            record(Event(stage, "started", run=spec.name, data=spec.describe()))
            record(Event(stage, "finished", run=spec.name,
                         data={**spec.describe(), "run": run.model_dump(mode="json")}))
            runs.append(run)
        if finished:
            test = runs[0].card.test
            ensembles = {"first_k": [{"k": 1, "sp": test.sp, "se": test.se, "score": test.score}], "curated": None}
            report = build_report(recipe, FINGERPRINT, [runs[0]], ensembles, [[runs[1]]], None, train_cycles=45,
                                  test_cycles=25)
            write_reports(report, store.folder)
            record(Event("experiment", "finished", data={"summary": report.summary().model_dump(mode="json")}))
    return store.folder
