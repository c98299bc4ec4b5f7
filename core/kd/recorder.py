"""The workspace catalog, written from an experiment's events.

The experiment's driver hands every event (its own and those its executor relays from workers) to a
`CatalogRecorder`, so the driver alone writes the catalog, whichever process trained a model.
"""
from __future__ import annotations

from pathlib import Path

from lungkd.core.events import Event
from lungkd.core.kd.jobs import FinishedRun
from lungkd.core.recipes import ExperimentRecipe
from lungkd.core.storage import json_sha256
from lungkd.core.workspace.catalog import Catalog

RUN_STAGES = ("teachers", "students")


class CatalogRecorder:
    def __init__(self, catalog: Catalog, recipe: ExperimentRecipe, folder: Path):
        self.catalog = catalog
        self.recipe = recipe
        self.folder = folder
        self.experiment_id: int | None = None
        self._runs: dict[str, int] = {}

    def __call__(self, event: Event) -> None:
        if event.stage == "data" and event.kind == "finished" and event.run is None:
            self._register(event.data)
        elif self.experiment_id is None:
            return  # nothing to file before the data, and so the experiment, is known
        elif event.stage in RUN_STAGES and event.run is not None:
            self._run_event(event)
        elif event.stage == "experiment" and event.kind in ("finished", "failed", "cancelled"):
            self.catalog.set_experiment_status(self.experiment_id, event.kind, event.data.get("summary"))

    def _register(self, data: dict) -> None:
        fingerprint = data["fingerprint"]
        recipe = self.recipe.to_dict()
        row = self.catalog.upsert_experiment(self.recipe.name, recipe, json_sha256(recipe), fingerprint, self.folder)
        self.experiment_id = row.id
        self.catalog.set_experiment_status(row.id, "running")

    def _run_id(self, event: Event) -> int:
        if event.run not in self._runs:
            d = event.data
            role = d["role"]
            self._runs[event.run] = self.catalog.upsert_run(self.experiment_id, role, d["arch"], d["seed"],
                                                            d["labels"]).id
        return self._runs[event.run]

    def _run_event(self, event: Event) -> None:
        if event.kind == "started":
            self.catalog.set_run_status(self._run_id(event), "running")
        elif event.kind == "metrics" and event.run in self._runs:
            d = event.data
            self.catalog.record_epoch(self._runs[event.run], d["epoch"], d["loss"], d.get("lr"), d.get("test"),
                                      d.get("val"))
        elif event.kind == "finished":
            run = FinishedRun.model_validate(event.data["run"])
            self.catalog.finish_run(self._run_id(event), selected_epoch=run.card.selected_epoch,
                                    selection=run.card.selection,
                                    test=run.card.test.model_dump(mode="json") if run.card.test else None, val=None,
                                    checkpoint=run.model_folder)
        elif event.kind in ("failed", "cancelled"):
            self.catalog.set_run_status(self._run_id(event), event.kind)
