"""One model to train, as plain data any process can receive, and the function that trains it.

A `RunJob` names everything a worker needs — the run (role, architecture, seed, labels, hyperparameters),
the data recipe and its fingerprint, the run-wide settings, the workspace and the run's folder, and for a
student the teacher logits file its soft labels come from. No closure, model or array travels: a worker
rebuilds the dataset index and reads the prepared inputs from the workspace's content-addressed cache,
so `run_job` gives the same result in this process, a child process or on another machine that sees the
same workspace.

A run whose model folder exists is finished and is not trained again; a run with a `train_state.pt`
resumes from its last finished epoch. A finished model whose files no longer match the checksums of its card
is finished again (from the saved state, so it comes back the same), and a teacher's damaged logits are
computed again. One process at a time works in a run folder (teachers are shared by experiments).
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Annotated, Callable, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

import numpy as np
import torch

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.data.dataset import DatasetIndex
from lungkd.core.data.sources import Data, dataset_label, describe_training_data, prompt_policy, resolve_dataset
from lungkd.core.errors import LungKDError
from lungkd.core.events import Event
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import CycleSet, build_cycle_sets
from lungkd.core.kd.soft_labels import build_targets
from lungkd.core.models.card import DamagedModelError, ModelCard, Role, read_model_card
from lungkd.core.models.registry import check_saved_files, create_model, model_info, save_model
from lungkd.core.recipes import ModelSpec, RunSettings, SoftLabelSpec, TrainConfig
from lungkd.core.storage import file_sha256, write_npy_atomic, write_npz_atomic
from lungkd.core.training.calibration import fit_limits
from lungkd.core.models.inference import predict_logits, resolve_device
from lungkd.core.training.trainer import Progress, Trainer, TrainResult
from lungkd.core.workspace.layout import MODEL_FOLDER, TEACHER_LOGITS_FILE, TEST_LOGITS_FILE, cache_folder
from lungkd.core.workspace.locks import FolderLock

EventSink = Callable[[Event], None]


class ExperimentError(LungKDError):
    """An experiment folder or job that does not fit the recipe or data it is asked to continue with."""


class _Plain(BaseModel):
    """Plain data that travels between processes as JSON (NaN Scores included)."""

    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_inf_nan="constants")


def run_name(role: str, arch: str, labels: str, seed: int) -> str:
    """How events, reports and tables name a run: "teacher seed 2", "student cnn6 mean_5 seed 1"."""
    return f"teacher seed {seed}" if role == "teacher" else f"{role} {arch} {labels} seed {seed}"


class RunSpec(_Plain):
    """One model to train: a teacher, a distilled student or a hard-label baseline."""

    role: Role
    model: ModelSpec
    labels: str  # "hard" or a soft-label mode
    seed: int
    train: TrainConfig

    @property
    def arch(self) -> str:
        return self.model.arch

    @property
    def name(self) -> str:
        return run_name(self.role, self.arch, self.labels, self.seed)

    def describe(self) -> dict:
        """What the catalog and the event log keep of the run."""
        return {"role": self.role, "arch": self.arch, "seed": self.seed, "labels": self.labels}


class RunJob(_Plain):
    kind: Literal["run"] = "run"
    spec: RunSpec
    stage: str  # the event stage: "teachers" or "students"
    workspace: str
    folder: str  # the run folder; the model goes in folder/model
    data: Data
    settings: RunSettings
    data_fingerprint: str
    teacher_logits: str | None = None  # a student's soft labels come from this experiment file
    teacher_scores: tuple[float, ...] = ()  # for curated soft labels
    experiment: str = ""  # the name of the experiment that planned the job (kept in the model's card)

    @property
    def name(self) -> str:
        return self.spec.name

    def describe(self) -> dict:
        return self.spec.describe()


class FinishedRun(_Plain):
    """A trained model as its job finished it: the run it was planned as (a hard-label baseline that reuses an
    identical teacher's folder is still the baseline), its folder and the model's card."""

    role: Role
    arch: str
    seed: int
    labels: str
    folder: str
    card: ModelCard

    @property
    def model_folder(self) -> Path:
        return Path(self.folder) / MODEL_FOLDER

    @property
    def test_logits_path(self) -> Path:
        return Path(self.folder) / TEST_LOGITS_FILE

    @property
    def name(self) -> str:
        return run_name(self.role, self.arch, self.labels, self.seed)

    @property
    def score(self) -> float | None:
        return self.card.score


class RunContext:
    """What the jobs of one process share: the dataset index and prepared inputs, computed once per data
    recipe and architecture inputs instead of once per job."""

    def __init__(self) -> None:
        self._indexes: dict[str, DatasetIndex] = {}
        self._sets: dict[tuple[str, str], dict[str, CycleSet]] = {}

    def index(self, job: RunJob) -> DatasetIndex:
        key = json.dumps([job.model_dump(mode="json")["data"], job.settings.selection, job.workspace])
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
        key = (json.dumps([job.model_dump(mode="json")["data"], job.settings.selection]), repr(inputs))
        if key not in self._sets:
            emit(Event("data", "started", f"Preparing {job.spec.arch} inputs", run=job.spec.arch))
            missing, location_source = prompt_policy(job.data)
            self._sets[key] = build_cycle_sets(
                index, inputs, cache=FeatureCache(cache_folder(Path(job.workspace))),
                location_source=location_source, missing=missing, cancel=cancel,
                progress=lambda done, total: emit(Event("data", "progress", run=job.spec.arch, step=done,
                                                        total=total)))
            emit(Event("data", "finished", run=job.spec.arch,
                       data={split: len(s) for split, s in self._sets[key].items()}))
        return self._sets[key]


def _progress_events(job: RunJob, emit: EventSink, run: str | None = None) -> Callable[[Progress], None]:
    """Trainer progress as events of the job's stage, for `run` (the job's own run by default)."""
    run = run or job.spec.name

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


def _finished_run(folder: Path, spec: RunSpec) -> FinishedRun | None:
    """The finished model in `folder` as the job's run; None when the run is not finished. Raises
    DamagedModelError when a file of the model, or its test logits, differs from what the card recorded."""
    card = read_model_card(folder / MODEL_FOLDER)
    if card is None:
        return None
    check_saved_files(folder / MODEL_FOLDER)
    if card.test_logits_sha256 is not None:
        path = folder / TEST_LOGITS_FILE
        if not path.is_file() or file_sha256(path) != card.test_logits_sha256:
            raise DamagedModelError("the run's test logits are missing or differ from the ones it was saved with.",
                                    path=path, fix="run the recipe again: the run is finished again.")
    return FinishedRun(role=spec.role, arch=spec.arch, seed=spec.seed, labels=spec.labels, folder=str(folder),
                       card=card)


def _usable_run(job: RunJob, emit: EventSink) -> FinishedRun | None:
    """The finished run, or None to (re)train it: a damaged model is said so, and training it again resumes
    from the run's last saved state."""
    try:
        return _finished_run(Path(job.folder), job.spec)
    except DamagedModelError as exc:
        emit(Event(job.stage, "notice", f"{exc.problem.path}: {exc.problem.message} Training the run again from its "
                   "last saved state.", run=job.spec.name))
        return None


def finished_event(job: RunJob, run: FinishedRun, message: str = "") -> Event:
    """The event of a finished run: what the catalog and the progress lines read of it."""
    return Event(job.stage, "finished", message, run=job.spec.name, data={**job.spec.describe(),
                                                                           "run": run.model_dump(mode="json")})


def _write_teacher_logits(model, sets: dict[str, CycleSet], folder: Path, fingerprint: str, device,
                          cancel: CancelToken | None) -> None:
    arrays = {}
    for split, data in sets.items():
        arrays[f"{split}_logits"] = predict_logits(model, data, device=device, cancel=cancel).numpy()
        arrays[f"{split}_labels"] = data.labels.numpy()
        arrays[f"{split}_cycle_ids"] = np.array(data.cycle_ids)
        arrays[f"{split}_patients"] = np.array(data.patients)
        if data.datasets:
            arrays[f"{split}_datasets"] = np.array(data.datasets)
    write_npz_atomic(folder / TEACHER_LOGITS_FILE, data_fingerprint=np.array(fingerprint), **arrays)


def load_teacher_logits(folder: Path, fingerprint: str) -> dict[str, np.ndarray] | None:
    """A teacher's stored logits, every array read (the zip's CRC checks each one), when they are whole and
    belong to this data; None: compute them."""
    path = folder / TEACHER_LOGITS_FILE
    if not path.is_file():
        return None
    try:
        with np.load(path) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        return None  # cut short or changed on disk: computed again from the teacher
    return arrays if str(arrays.get("data_fingerprint")) == fingerprint else None


def run_job(job: RunJob, emit: EventSink, cancel: CancelToken | None = None,
            context: RunContext | None = None) -> FinishedRun:
    """Train (or resume, or skip when finished) one model. A teacher also leaves its raw logits on every split
    beside its checkpoint."""
    with FolderLock(job.folder, f"the run '{job.spec.name}'"):
        return _run_locked(job, emit, cancel, context or RunContext())


def _run_locked(job: RunJob, emit: EventSink, cancel: CancelToken | None, context: RunContext) -> FinishedRun:
    spec, folder = job.spec, Path(job.folder)
    finished = _usable_run(job, emit)
    needs_logits = spec.role == "teacher" and load_teacher_logits(folder, job.data_fingerprint) is None
    if finished is not None and not needs_logits:
        emit(finished_event(job, finished, "already trained"))
        return finished
    sets = context.cycle_sets(job, emit, cancel)
    device = resolve_device(job.settings.device)
    try:
        if finished is None:
            emit(Event(job.stage, "started", run=spec.name, data=spec.describe()))
            finished = _train(job, sets, describe_training_data(job.data, context.index(job)), emit, cancel)
        if needs_logits:
            model = create_model(spec.arch, pretrained=folder / MODEL_FOLDER).to(device)
            _write_teacher_logits(model, sets, folder, job.data_fingerprint, device, cancel)
    except BaseException as exc:  # the logits too: a run stopped there says so, as one stopped while training
        cancelled = isinstance(exc, (Cancelled, KeyboardInterrupt))
        emit(Event(job.stage, "cancelled" if cancelled else "failed", str(exc), run=spec.name, data=spec.describe()))
        raise
    emit(finished_event(job, finished))
    return finished


def _train(job: RunJob, sets: dict[str, CycleSet], training_data: dict, emit: EventSink,
           cancel: CancelToken | None) -> FinishedRun:
    spec, folder = job.spec, Path(job.folder)
    torch.manual_seed(spec.seed)  # the initial weights of randomly initialised parts
    model = create_model(spec.arch, pretrained=spec.model.pretrained, size=spec.model.size)
    trainer = Trainer(spec.train, seed=spec.seed, settings=job.settings, run_dir=folder,
                      on_progress=_progress_events(job, emit), cancel=cancel)
    result = trainer.fit(model, sets["train"], sets.get("test"), sets.get("val"), _targets(job, sets["train"]))
    return _save_result(job, result, sets, training_data, emit, cancel)


def _save_result(job: RunJob, result: TrainResult, sets: dict[str, CycleSet], training_data: dict,
                 emit: EventSink, cancel: CancelToken | None, **made) -> FinishedRun:
    """The trained model's folder: test logits, then the model with its card (written last: the folder is
    finished when the card is there); the card says what the model learnt from, the input it was trained on
    and the limits of the data it knows (core.training.calibration)."""
    spec, folder = job.spec, Path(job.folder)
    test_logits = None
    if "test" in sets:
        test_logits = predict_logits(result.model, sets["test"], cancel=cancel).numpy()
        write_npy_atomic(folder / TEST_LOGITS_FILE, test_logits)
        made["test_logits_sha256"] = file_sha256(folder / TEST_LOGITS_FILE)  # .npy has no checksum of its own
        made["test_data"] = {"dataset": dataset_label(job.data), "split": "test", "cycles": len(sets["test"])}
    card = result.model_card(size=spec.model.size, pretrained=spec.model.pretrained, seed=spec.seed,
                             inputs=spec.model.input_contract(job.data), role=spec.role,
                             training_labels=spec.labels, experiment=job.experiment or None,
                             data_fingerprint=job.data_fingerprint, training_data=training_data,
                             **fit_limits(result.model, sets, test_logits=test_logits, cancel=cancel), **made)
    save_model(result.model, folder / MODEL_FOLDER, card)
    emit(Event(job.stage, "artifact", "model saved", run=spec.name,
               data={"kind": "model", "path": str(folder / MODEL_FOLDER)}))
    return _finished_run(folder, spec)


# ---------------------------------------------------------------- teachers trained together


def together_name(seeds: list[int]) -> str:
    """The run name of teachers trained together, as their events carry it."""
    return f"teachers seeds {', '.join(map(str, seeds))} together"


class TogetherJob(_Plain):
    """Teachers of one architecture trained as one batched model (core.training.members.StackedMembers):
    each member is an ordinary teacher job and ends in an ordinary teacher folder; the shared training
    state lives in `folder`."""

    kind: Literal["together"] = "together"
    members: tuple[RunJob, ...]
    folder: str

    @property
    def seeds(self) -> list[int]:
        return [m.spec.seed for m in self.members]

    @property
    def name(self) -> str:
        return together_name(self.seeds)

    # what executors read of any job: the same for every member
    @property
    def spec(self) -> RunSpec:
        return self.members[0].spec

    @property
    def stage(self) -> str:
        return self.members[0].stage

    @property
    def settings(self) -> RunSettings:
        return self.members[0].settings

    @property
    def workspace(self) -> str:
        return self.members[0].workspace

    def describe(self) -> dict:
        return {**self.spec.describe(), "seeds": self.seeds}


Job = Annotated[RunJob | TogetherJob, Field(discriminator="kind")]
_JOB = TypeAdapter(Job)


def job_to_json(job: Job) -> str:
    return _JOB.dump_json(job).decode()


def job_from_json(text: str) -> Job:
    return _JOB.validate_json(text)


def execute(job: Job, emit: EventSink, cancel: CancelToken | None = None,
            context: RunContext | None = None) -> list[FinishedRun]:
    """Run one job of either kind; the models it trained, in member order."""
    if isinstance(job, TogetherJob):
        return run_together(job, emit, cancel, context)
    return [run_job(job, emit, cancel, context)]


def run_together(job: TogetherJob, emit: EventSink, cancel: CancelToken | None = None,
                 context: RunContext | None = None) -> list[FinishedRun]:
    """Train the members as one batched model unless every one is finished (resumable from the group's
    epoch checkpoint); each member's folder gets its model, card, test logits and teacher logits."""
    with FolderLock(job.folder, f"the teachers trained together in {Path(job.folder).name}"):
        return _run_together_locked(job, emit, cancel, context or RunContext())


def _run_together_locked(job: TogetherJob, emit: EventSink, cancel: CancelToken | None,
                         context: RunContext) -> list[FinishedRun]:
    members = job.members
    finished = [_usable_run(m, emit) for m in members]  # a damaged member is said so, and saved again below
    if all(run is not None for run in finished):
        return [run_job(m, emit, cancel, context) for m in members]  # at most the logits left to compute
    first = members[0]
    sets = context.cycle_sets(first, emit, cancel)
    for member, run in zip(members, finished):
        if run is None:
            emit(Event(member.stage, "started", "trained together with the other teachers", run=member.spec.name,
                       data=member.spec.describe()))
    models = []
    for member in members:
        torch.manual_seed(member.spec.seed)  # each member's own initial weights, as alone
        models.append(create_model(member.spec.arch, pretrained=member.spec.model.pretrained,
                                   size=member.spec.model.size))
    trainer = Trainer(first.spec.train, settings=first.settings, run_dir=job.folder,
                      on_progress=_together_progress(job, emit), cancel=cancel)
    try:
        results = trainer.fit_together(models, job.seeds, sets["train"], sets.get("test"), sets.get("val"))
    except BaseException as exc:
        kind = "cancelled" if isinstance(exc, (Cancelled, KeyboardInterrupt)) else "failed"
        for member in members:
            emit(Event(member.stage, kind, str(exc), run=member.spec.name, data=member.spec.describe()))
        raise
    training_data = describe_training_data(first.data, context.index(first))
    for member, result, run in zip(members, results, finished):
        if run is None:  # a finished member keeps its folder: the group's state gives it back the same
            _save_result(member, result, sets, training_data, emit, cancel, trained_together_with=job.seeds)
    return [run_job(m, emit, cancel, context) for m in members]  # each member's logits, and its finished event


def _together_progress(job: TogetherJob, emit: EventSink) -> Callable[[Progress], None]:
    """Each member's epochs as its own run's metrics; steps and notices once, for the group."""
    per_member = [_progress_events(m, emit) for m in job.members]
    group = _progress_events(job.members[0], emit, run=job.name)
    return lambda p: (per_member[p.member] if p.member is not None else group)(p)
