"""The method as one resumable experiment (docs/method.md section 9), a pipeline of stages over the experiment's
store: data -> teachers -> teacher logits -> ensembles -> students -> second generation -> report.

Every stage leaves a finished artifact on disk (a model folder, an .npz written atomically); a stage whose
artifact is there is not run again, so the same call after a kill continues where it stopped. Training
runs are handed to an executor as plain-data jobs; everything else runs here, in the driver, which alone
writes the workspace catalog (from the events).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.data.dataset import DatasetIndex
from lungkd.core.data.sources import check_trainable, data_specs, dataset_label, resolve_dataset
from lungkd.core.events import Event, EventCallback, broadcast
from lungkd.core.kd.across_datasets import cross_dataset_table, per_dataset_table
from lungkd.core.kd.executors import Executor, create_executor
from lungkd.core.kd.jobs import FinishedRun, RunJob, RunSpec, TogetherJob, load_teacher_logits, together_name
from lungkd.core.kd.progress import ExperimentClock, PlannedRun
from lungkd.core.kd.recorder import CatalogRecorder
from lungkd.core.kd.report import DatasetTable, ExperimentReport, Interval, build_report
from lungkd.core.kd.report_pages import write_reports
from lungkd.core.kd.soft_labels import curated_members, ensemble_logits
from lungkd.core.kd.store import ExperimentStore
from lungkd.core.metrics import patient_bootstrap_ci, scores_from_logits
from lungkd.core.recipes import ExperimentRecipe, ModelSpec, StudentSpec
from lungkd.core.storage import write_npz_atomic
from lungkd.core.models.inference import resolve_device
from lungkd.core.workspace.catalog import Catalog
from lungkd.core.workspace.layout import together_folder


@dataclass
class TeacherLogits:
    """(N, k, 4) raw logits of the k teachers on each split, in dataset order, with labels, cycle ids and
    patients per split (what the students, the ensembles and the bootstrap intervals need)."""

    arrays: dict[str, np.ndarray]

    def __getitem__(self, key: str) -> np.ndarray:
        return self.arrays[key]


def _scores_row(logits: np.ndarray, labels: np.ndarray) -> dict:
    d = scores_from_logits(logits, labels).to_dict()
    return {"sp": d["sp"], "se": d["se"], "score": d["score"]}


def teacher_specs(recipe: ExperimentRecipe) -> list[RunSpec]:
    t = recipe.teachers
    model = ModelSpec(arch=t.arch, size=t.size, pretrained=t.pretrained)
    return [RunSpec(role="teacher", model=model, labels="hard", seed=seed, train=t.train) for seed in range(1, t.k + 1)]


def student_specs(student: StudentSpec) -> list[RunSpec]:
    model = ModelSpec(arch=student.arch, size=student.size, pretrained=student.pretrained)
    roles = [("student", student.labels)] + ([("baseline", "hard")] if student.baseline else [])
    return [RunSpec(role=role, model=model, labels=labels, seed=seed, train=student.train)
            for role, labels in roles for seed in student.seeds]


def identical_teacher(spec: RunSpec, recipe: ExperimentRecipe) -> RunSpec | None:
    """The teacher a hard-label baseline would duplicate: the same architecture, size, weights, training and
    seed on the same data and run-wide settings give the same model, so the baseline reuses it."""
    if spec.role != "baseline":
        return None
    return next((t for t in teacher_specs(recipe) if t.model_copy(update={"role": "baseline"}) == spec), None)


def teachers_train_together(recipe: ExperimentRecipe) -> bool:
    """As one batched model: where the recipe says so, else where the architecture can and on a GPU."""
    on_gpu = resolve_device(recipe.device).type == "cuda"
    return recipe.teachers.trains_together(on_gpu) and recipe.teachers.k > 1


def planned_runs(recipe: ExperimentRecipe) -> list[PlannedRun]:
    """Every model the experiment trains (reused baselines train nothing), for the time-left estimate; teachers
    trained together as one group."""
    teachers = teacher_specs(recipe)
    group = together_name([s.seed for s in teachers]) if teachers_train_together(recipe) else None
    students = [spec for student in recipe.students for spec in student_specs(student)
                if identical_teacher(spec, recipe) is None]
    return [PlannedRun(spec.name, spec.arch, spec.model.size, spec.train.batch_size, spec.train.epochs,
                       group if spec.role == "teacher" else None) for spec in teachers + students]


class Experiment:
    """`executor`: who trains the runs; None builds the recipe's (`executor`, `workers`; LungKD's default executor
    when it names none) and closes it at the end, while one passed in stays the caller's."""

    def __init__(self, recipe: ExperimentRecipe, workspace: Path, on_event: EventCallback | None = None,
                 cancel: CancelToken | None = None, executor: Executor | None = None):
        self.recipe = recipe
        # absolute: jobs carry it to other processes and machines, whose working folder may differ
        self.store = ExperimentStore(Path(workspace).absolute(), recipe)
        self.folder = self.store.folder
        self.cancel = cancel or CancelToken()
        self.executor = executor
        self.on_event = on_event

    def run(self) -> ExperimentReport:
        with self.store.open() as store, Catalog.for_workspace(store.workspace) as catalog:
            emit = ExperimentClock(planned_runs(self.recipe),
                                   broadcast(store.log, CatalogRecorder(catalog, self.recipe, store.folder),
                                             self.on_event))
            started = time.time()
            emit(Event("experiment", "started", self.recipe.name, data={"folder": str(store.folder)}))
            executor = self.executor
            try:
                executor = executor or create_executor(self.recipe.executor_name, workers=self.recipe.workers)
                report = self._stages(store, executor, emit)
            except BaseException as exc:
                cancelled = isinstance(exc, (Cancelled, KeyboardInterrupt))
                emit(Event("experiment", "cancelled" if cancelled else "failed", str(exc),
                           data={"type": type(exc).__name__}))
                raise
            finally:
                if self.executor is None and executor is not None:
                    executor.close()
            emit(Event("experiment", "finished", data={"seconds": round(time.time() - started, 1),
                                                       "summary": report.summary().model_dump(mode="json")}))
        return report

    def _stages(self, store: ExperimentStore, executor: Executor, emit: EventCallback) -> ExperimentReport:
        index = load_data(self.recipe, store, emit)
        teachers = train_teachers(self.recipe, store, executor, emit, self.cancel)
        teacher_scores = [float("nan") if t.score is None else t.score for t in teachers]
        logits = gather_teacher_logits(teachers, store, emit)
        ensembles = evaluate_ensembles(self.recipe, logits, teacher_scores, emit)
        groups = train_students(self.recipe, store, executor, teacher_scores, emit, self.cancel)
        second = second_generation(self.recipe, groups, logits, emit)
        students = [run for group in groups for run in group]
        report = build_report(self.recipe, index.fingerprint(), teachers, ensembles, groups, second,
                              train_cycles=len(logits["train_labels"]), test_cycles=len(logits["test_labels"]),
                              intervals=bootstrap_intervals(teachers + students, logits),
                              per_dataset=dataset_scores(self.recipe, teachers, students, logits),
                              cross_dataset=cross_dataset_table(self.recipe.evaluate, teachers, students,
                                                                store.workspace, emit, self.cancel)
                              if self.recipe.evaluate else None)
        for path in write_reports(report, store.folder):
            emit(Event("report", "artifact", data={"kind": "report", "path": str(path)}))
        return report


# ---------------------------------------------------------------- stages


def load_data(recipe: ExperimentRecipe, store: ExperimentStore, emit: EventCallback) -> DatasetIndex:
    emit(Event("data", "started", "Indexing the dataset"))
    index = resolve_dataset(recipe.data, store.workspace, selection=recipe.selection)
    for problem in index.warnings:
        emit(Event("data", "notice", str(problem)))
    check_trainable(index, recipe.selection)
    store.bind_data(index.fingerprint())
    emit(Event("data", "finished", data={"fingerprint": index.fingerprint(), "root": str(index.root),
                                         "stats": index.stats()}))
    return index


def plan_jobs(specs: list[RunSpec], stage: str, recipe: ExperimentRecipe, store: ExperimentStore,
              **student_inputs) -> list[RunJob]:
    """The training jobs of `specs`, each carrying the recipe's run-wide settings. A baseline identical to a
    teacher points at the teacher's folder, where it finds its model finished."""
    return [RunJob(spec=spec, stage=stage, workspace=str(store.workspace),
                   folder=str(store.run_folder(identical_teacher(spec, recipe) or spec)), data=recipe.data,
                   settings=recipe.run_settings(), data_fingerprint=store.data_fingerprint, experiment=recipe.name,
                   **student_inputs) for spec in specs]


def train_teachers(recipe: ExperimentRecipe, store: ExperimentStore, executor: Executor, emit: EventCallback,
                   cancel: CancelToken) -> list[FinishedRun]:
    specs = teacher_specs(recipe)
    together = teachers_train_together(recipe)
    emit(Event("teachers", "started", f"{len(specs)} {recipe.teachers.arch} teachers"
               + (", trained together as one batched model" if together else ""), total=len(specs)))
    jobs = plan_jobs(specs, "teachers", recipe, store)
    if together:
        jobs = [TogetherJob(members=tuple(jobs),
                            folder=str(together_folder(store.teachers_root, [s.seed for s in specs])))]
    teachers = executor.run(jobs, emit, cancel)
    emit(Event("teachers", "finished", data={"scores": [t.score for t in teachers]}))
    return teachers


def gather_teacher_logits(teachers: list[FinishedRun], store: ExperimentStore, emit: EventCallback) -> TeacherLogits:
    """Each teacher's stored logits stacked into the experiment's (N, k, 4) arrays (kept in its folder)."""
    emit(Event("logits", "started", total=len(teachers)))
    per_teacher = [load_teacher_logits(Path(t.folder), store.data_fingerprint) for t in teachers]
    first = per_teacher[0]
    splits = [key.removesuffix("_logits") for key in first if key.endswith("_logits")]
    arrays = {f"{split}_logits": np.stack([t[f"{split}_logits"] for t in per_teacher], axis=1) for split in splits}
    arrays.update({key: value for key, value in first.items() if not key.endswith("_logits")})
    arrays["teacher_ids"] = np.array([f"teacher seed {t.seed}" for t in teachers])
    arrays["teacher_folders"] = np.array([t.folder for t in teachers])
    write_npz_atomic(store.logits_file, **arrays)
    shape = list(arrays["train_logits"].shape)
    emit(Event("logits", "artifact", data={"kind": "logits", "path": str(store.logits_file),
                                           "metadata": {"shape": shape}}))
    emit(Event("logits", "finished", data={"shape": shape}))
    return TeacherLogits(arrays)


def evaluate_ensembles(recipe: ExperimentRecipe, logits: TeacherLogits, teacher_scores: list[float],
                       emit: EventCallback) -> dict:
    """The BTS++ curve (the first k' teachers for every k') and the curated ensemble."""
    emit(Event("ensembles", "started"))
    test_logits, labels = logits["test_logits"], logits["test_labels"]
    curve = []
    for k in range(1, test_logits.shape[1] + 1):
        curve.append({"k": k, **_scores_row(ensemble_logits(test_logits, list(range(k))), labels)})
        emit(Event("ensembles", "metrics", run=f"first {k}", data=curve[-1]))
    curated = None
    if recipe.ensembles.curated_k:
        members = curated_members(teacher_scores, recipe.ensembles.curated_k)
        curated = {"k": recipe.ensembles.curated_k, "seeds": [m + 1 for m in members],
                   **_scores_row(ensemble_logits(test_logits, members), labels)}
    emit(Event("ensembles", "finished"))
    return {"first_k": curve, "curated": curated}


def train_students(recipe: ExperimentRecipe, store: ExperimentStore, executor: Executor,
                   teacher_scores: list[float], emit: EventCallback,
                   cancel: CancelToken) -> list[list[FinishedRun]]:
    """Every [[students]] entry's runs, handed over at once (they are independent); the finished runs per entry."""
    plans = [plan_jobs(student_specs(student), "students", recipe, store, teacher_logits=str(store.logits_file),
                       teacher_scores=tuple(teacher_scores)) for student in recipe.students]
    finished = executor.run([job for jobs in plans for job in jobs], emit, cancel)
    groups, start = [], 0
    for jobs in plans:
        groups.append(finished[start:start + len(jobs)])
        start += len(jobs)
    return groups


def second_generation(recipe: ExperimentRecipe, groups: list[list[FinishedRun]], logits: TeacherLogits,
                      emit: EventCallback) -> dict | None:
    """BTS-d++: the logit-mean ensemble of the chosen student entry's distilled seeds."""
    number = recipe.second_generation.student
    if not number:
        return None
    student = recipe.students[number - 1]
    emit(Event("second_generation", "started"))
    members = [run for run in groups[number - 1] if run.role == "student"]
    stacked = np.stack([np.load(run.test_logits_path) for run in members], axis=1)
    row = {"arch": student.arch, "labels": student.labels, "k": stacked.shape[1],
           **_scores_row(ensemble_logits(stacked, list(range(stacked.shape[1]))), logits["test_labels"])}
    emit(Event("second_generation", "metrics", data=row))
    emit(Event("second_generation", "finished"))
    return row


def dataset_scores(recipe: ExperimentRecipe, teachers: list[FinishedRun], students: list[FinishedRun],
                   logits: TeacherLogits) -> DatasetTable | None:
    """The Scores on each dataset trained on together; None for a recipe of one dataset."""
    if "test_datasets" not in logits.arrays:
        return None
    return per_dataset_table([dataset_label(spec) for spec in data_specs(recipe.data)], teachers, students,
                             logits["test_logits"], logits["test_labels"], logits["test_datasets"])


def bootstrap_intervals(runs: list[FinishedRun], logits: TeacherLogits) -> dict[str, Interval]:
    """Each run's 95 % patient-level bootstrap interval of its test Score, by run folder."""
    labels, patients = logits["test_labels"], logits["test_patients"]
    out = {}
    for run in runs:
        if run.test_logits_path.is_file():
            predictions = np.load(run.test_logits_path).argmax(axis=1)
            if len(predictions) == len(labels):
                interval = patient_bootstrap_ci(labels, predictions, patients, n_boot=1000)
                out[run.folder] = Interval.model_validate(interval.to_dict())
    return out
