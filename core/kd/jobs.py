"""One model to train, as plain data any process can receive, and the function that trains it.

A `RunJob` names everything a worker needs — the run (role, architecture, seed, labels, hyperparameters),
the data recipe and its fingerprint, the run-wide settings, the workspace and the run's folder, and for a
student the teacher logits file its soft labels come from. No closure, model or array travels: a worker
rebuilds the dataset index and reads the prepared inputs from the workspace's content-addressed cache,
so `run_job` gives the same result in this process, a child process or on another machine that sees the
same workspace.

A run whose model folder exists is finished and is not trained again; a run with a `train_state.pt`
resumes from its last finished epoch.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.data.dataset import DatasetIndex
from lungkd.core.data.sources import DataSpec, describe_training_data, resolve_dataset
from lungkd.core.errors import LungKDError
from lungkd.core.events import Event
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import CycleSet, build_cycle_sets
from lungkd.core.kd.soft_labels import build_targets
from lungkd.core.models.card import read_model_card, save_trained_model
from lungkd.core.models.registry import create_model, model_info
from lungkd.core.recipes import ModelSpec, RunSettings, SoftLabelSpec, TrainConfig
from lungkd.core.storage import write_npy_atomic, write_npz_atomic
from lungkd.core.training.calibration import fit_limits
from lungkd.core.training.trainer import Progress, Trainer, predict_logits, resolve_device
from lungkd.core.workspace.layout import MODEL_FOLDER, cache_folder

TEST_LOGITS_FILE = "test_logits.npy"
TEACHER_LOGITS_FILE = "logits.npz"  # a teacher's raw logits on every split, beside its checkpoint
EventSink = Callable[[Event], None]


class ExperimentError(LungKDError):
    """An experiment folder or job that does not fit the recipe or data it is asked to continue with."""


@dataclass(frozen=True)
class RunSpec:
    """One model to train: a teacher, a distilled student or a hard-label baseline."""

    role: str  # teacher | student | baseline
    model: ModelSpec
    labels: str  # "hard" or a soft-label mode
    seed: int
    train: TrainConfig

    @property
    def arch(self) -> str:
        return self.model.arch

    @property
    def name(self) -> str:
        if self.role == "teacher":
            return f"teacher seed {self.seed}"
        return f"{self.role} {self.arch} {self.labels} seed {self.seed}"

    def describe(self) -> dict:
        """What the catalog and the event log keep of the run."""
        return {"role": self.role, "arch": self.arch, "seed": self.seed, "labels": self.labels}


@dataclass(frozen=True)
class RunJob:
    spec: RunSpec
    stage: str  # the event stage: "teachers" or "students"
    workspace: str
    folder: str  # the run folder; the model goes in folder/model
    data: DataSpec
    settings: RunSettings
    data_fingerprint: str
    teacher_logits: str | None = None  # a student's soft labels come from this experiment file
    teacher_scores: tuple[float, ...] = ()  # for curated soft labels

    def to_json(self) -> str:
        value = asdict(self)
        value["spec"] = {**value["spec"], "model": self.spec.model.model_dump(mode="json"),
                         "train": self.spec.train.model_dump(mode="json")}
        value["data"] = self.data.model_dump(mode="json")
        value["settings"] = self.settings.model_dump(mode="json")
        return json.dumps(value)

    @classmethod
    def from_json(cls, text: str) -> "RunJob":
        value = json.loads(text)
        spec = value.pop("spec")
        return cls(spec=RunSpec(spec["role"], ModelSpec.model_validate(spec["model"]), spec["labels"], spec["seed"],
                                TrainConfig.model_validate(spec["train"])),
                   data=DataSpec.model_validate(value.pop("data")),
                   settings=RunSettings.model_validate(value.pop("settings")),
                   teacher_scores=tuple(value.pop("teacher_scores")), **value)


class RunContext:
    """What the jobs of one process share: the dataset index and prepared inputs, computed once per data
    recipe and architecture inputs instead of once per job."""

    def __init__(self) -> None:
        self._indexes: dict[str, DatasetIndex] = {}
        self._sets: dict[tuple[str, str], dict[str, CycleSet]] = {}

    def index(self, job: RunJob) -> DatasetIndex:
        key = json.dumps([job.data.model_dump(mode="json"), job.settings.selection, job.workspace])
        if key not in self._indexes:
            index = resolve_dataset(job.data, Path(job.workspace), selection=job.settings.selection)
            if index.fingerprint() != job.data_fingerprint:
                raise ExperimentError("the dataset changed since this experiment started (its recordings, cycles, "
                                      "labels or split differ).", path=index.root,
                                      fix="restore the dataset, or start a new experiment (a new name) on the new "
                                          "data.")
            self._indexes[key] = index
        return self._indexes[key]

    def cycle_sets(self, job: RunJob, emit: EventSink, cancel: CancelToken | None) -> dict[str, CycleSet]:
        index = self.index(job)
        inputs = model_info(job.spec.arch).inputs
        key = (json.dumps([job.data.model_dump(mode="json"), job.settings.selection]), repr(inputs))
        if key not in self._sets:
            emit(Event("data", "started", f"Preparing {job.spec.arch} inputs", run=job.spec.arch))
            self._sets[key] = build_cycle_sets(
                index, inputs, cache=FeatureCache(cache_folder(Path(job.workspace))),
                location_source=job.data.location_source, missing=job.data.missing, cancel=cancel,
                progress=lambda done, total: emit(Event("data", "progress", run=job.spec.arch, step=done,
                                                        total=total)))
            emit(Event("data", "finished", run=job.spec.arch,
                       data={split: len(s) for split, s in self._sets[key].items()}))
        return self._sets[key]


def _progress_events(job: RunJob, emit: EventSink) -> Callable[[Progress], None]:
    run = job.spec.name

    def forward(p: Progress) -> None:
        if p.stage == "train":
            emit(Event(job.stage, "progress", run=run, step=(p.epoch - 1) * p.steps + p.step,
                       total=p.epochs * p.steps, eta_s=p.eta_s, data={"epoch": p.epoch, "loss": p.loss}))
        elif p.stage == "epoch":
            emit(Event(job.stage, "metrics", run=run, step=p.epoch, total=p.epochs,
                       data={"epoch": p.epoch, "loss": p.loss, "lr": p.lr, **(p.metrics or {})}))
        else:
            emit(Event(job.stage, "notice", p.message, run=run))
    return forward


def _targets(job: RunJob, train: CycleSet):
    if job.spec.role != "student":
        return None
    stored = np.load(job.teacher_logits)
    if list(stored["train_cycle_ids"]) != list(train.cycle_ids):
        raise ExperimentError(f"the {job.spec.arch} student sees other training cycles than the teachers (a "
                              "recording was readable for one architecture and not the other).",
                              path=job.teacher_logits, fix="check the dataset warnings and restart the experiment.")
    soft = SoftLabelSpec.parse(job.spec.labels, seed=job.spec.seed)
    return build_targets(soft, stored["train_logits"], stored["train_labels"], list(job.teacher_scores) or None)


def _finished_card(folder: Path) -> dict | None:
    card = read_model_card(folder / MODEL_FOLDER)
    return None if card is None else {**card, "run_folder": str(folder)}


def _write_teacher_logits(model, sets: dict[str, CycleSet], folder: Path, fingerprint: str, device,
                          cancel: CancelToken | None) -> None:
    arrays = {}
    for split, data in sets.items():
        arrays[f"{split}_logits"] = predict_logits(model, data, device=device, cancel=cancel).numpy()
        arrays[f"{split}_labels"] = data.labels.numpy()
        arrays[f"{split}_cycle_ids"] = np.array(data.cycle_ids)
        arrays[f"{split}_patients"] = np.array(data.patients)
    write_npz_atomic(folder / TEACHER_LOGITS_FILE, data_fingerprint=np.array(fingerprint), **arrays)


def teacher_logits_file(folder: Path, fingerprint: str) -> Path | None:
    """A teacher's stored logits when they belong to this data (None: compute them)."""
    path = folder / TEACHER_LOGITS_FILE
    if path.is_file():
        with np.load(path) as stored:
            if str(stored["data_fingerprint"]) == fingerprint:
                return path
    return None


def run_job(job: RunJob, emit: EventSink, cancel: CancelToken | None = None,
            context: RunContext | None = None) -> dict:
    """Train (or resume, or skip when finished) one model; returns its card with `run_folder`. A teacher
    also leaves its raw logits on every split beside its checkpoint."""
    context = context or RunContext()
    spec, folder = job.spec, Path(job.folder)
    card = _finished_card(folder)
    needs_logits = spec.role == "teacher" and teacher_logits_file(folder, job.data_fingerprint) is None
    if card is not None and not needs_logits:
        emit(Event(job.stage, "finished", "already trained", run=spec.name,
                   data={**spec.describe(), "card": card}))
        return card
    sets = context.cycle_sets(job, emit, cancel)
    device = resolve_device(job.settings.device)
    if card is None:
        emit(Event(job.stage, "started", run=spec.name, data=spec.describe()))
        try:
            card = _train(job, sets, describe_training_data(job.data, context.index(job)), emit, cancel)
        except BaseException as exc:
            cancelled = isinstance(exc, (Cancelled, KeyboardInterrupt))
            emit(Event(job.stage, "cancelled" if cancelled else "failed", str(exc), run=spec.name,
                       data=spec.describe()))
            raise
    if needs_logits:
        model = create_model(spec.arch, pretrained=folder / MODEL_FOLDER).to(device)
        _write_teacher_logits(model, sets, folder, job.data_fingerprint, device, cancel)
    emit(Event(job.stage, "finished", run=spec.name, data={**spec.describe(), "card": card}))
    return card


def _train(job: RunJob, sets: dict[str, CycleSet], training_data: dict, emit: EventSink,
           cancel: CancelToken | None) -> dict:
    spec, folder = job.spec, Path(job.folder)
    torch.manual_seed(spec.seed)  # the initial weights of randomly initialised parts
    model = create_model(spec.arch, pretrained=spec.model.pretrained, size=spec.model.size)
    trainer = Trainer(spec.train, seed=spec.seed, settings=job.settings, run_dir=folder,
                      on_progress=_progress_events(job, emit), cancel=cancel)
    result = trainer.fit(model, sets["train"], sets.get("test"), sets.get("val"), _targets(job, sets["train"]))
    test_logits = None
    if "test" in sets:
        test_logits = predict_logits(result.model, sets["test"], cancel=cancel).numpy()
        write_npy_atomic(folder / TEST_LOGITS_FILE, test_logits)
    save_trained_model(result.model, folder / MODEL_FOLDER, size=spec.model.size, pretrained=spec.model.pretrained,
                       selection=result.selection, selected_epoch=result.selected_epoch,
                       test=result.scores.to_dict() if result.scores else None,
                       data_fingerprint=job.data_fingerprint, seed=spec.seed, training_data=training_data,
                       limits=fit_limits(result.model, sets, test_logits=test_logits, cancel=cancel),
                       extra={"role": spec.role, "labels": spec.labels,
                              "history": [asdict(r) for r in result.history]})
    emit(Event(job.stage, "artifact", "model saved", run=spec.name,
               data={"kind": "model", "path": str(folder / MODEL_FOLDER)}))
    return _finished_card(folder)
