"""The method as one resumable experiment (SPEC section 9): teachers -> logits -> ensembles -> soft labels
-> students -> second generation -> report, in one folder of the workspace.

Every stage leaves a finished artifact on disk (a model card, an .npz written atomically); a stage
whose artifact is there is not run again, so the same call after a kill continues where it stopped.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable, Protocol, Sequence, TypeVar

import numpy as np
import torch

from lungkd.core.features.cache import FeatureCache
from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.workspace.catalog import Catalog
from lungkd.core.data.dataset import DatasetIndex
from lungkd.core.errors import LungKDError
from lungkd.core.events import Event, EventCallback, EventLog
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.metrics import Scores, patient_bootstrap_ci, scores_from_logits
from lungkd.core.models.card import read_model_card, save_trained_model, write_atomic_text
from lungkd.core.models.registry import create_model
from lungkd.core.recipes import ExperimentRecipe, StudentSpec
from lungkd.core.training.single_run import resolve_dataset
from lungkd.core.kd.soft_labels import build_targets, curated_members, ensemble_logits
from lungkd.core.data.splits import validation_split
from lungkd.core.training.trainer import CycleSet, Progress, TrainConfig, Trainer, predict_logits

T = TypeVar("T")
R = TypeVar("R")
RECIPE_FILE = "recipe.json"
EVENTS_FILE = "events.jsonl"
LOGITS_FILE = "teacher_logits.npz"


class ExperimentError(LungKDError):
    """An experiment folder that does not fit the recipe or data it is asked to continue with."""


class Executor(Protocol):
    """Runs independent jobs (teachers, student seeds). A parallel or cluster executor implements `map`."""

    def map(self, fn: Callable[[T], R], jobs: Sequence[T]) -> list[R]: ...


class InProcessExecutor:
    """One job after another in this process: the default, and the one that is cancelled within a step."""

    def map(self, fn: Callable[[T], R], jobs: Sequence[T]) -> list[R]:
        return [fn(job) for job in jobs]


@dataclass(frozen=True)
class RunSpec:
    """One model to train: a teacher, a distilled student or a hard-label baseline."""

    role: str  # teacher | student | baseline
    arch: str
    size: str
    pretrained: str | None
    labels: str  # "hard" or a soft-label mode
    seed: int
    train: TrainConfig

    @property
    def name(self) -> str:
        return f"teacher seed {self.seed}" if self.role == "teacher" else f"{self.role} {self.arch} {self.labels} seed {self.seed}"



def _recipe_differences(old: dict, new: dict, prefix: str = "") -> list[str]:
    keys = sorted(set(old) | set(new))
    out = []
    for key in keys:
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            out += _recipe_differences(a, b, f"{prefix}{key}.")
        elif a != b:
            out.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return out


def _save_npz_atomic(path: Path, **arrays) -> None:
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _scores_row(scores: Scores) -> dict:
    d = scores.to_dict()
    return {"sp": d["sp"], "se": d["se"], "score": d["score"]}


def teacher_root(workspace: Path, teachers: dict, teacher_train: dict, data_fingerprint: str) -> Path:
    """Where the teachers of this recipe and data live: `workspace/teachers/<arch>-<digest>`, shared by every
    experiment with the same teachers, teacher training and data (the recipe's sections as in recipe.json)."""
    key = {"teachers": teachers, "train": teacher_train, "data": data_fingerprint}
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
    return Path(workspace) / "teachers" / f"{teachers['arch']}-{digest}"


def experiment_teacher_models(experiment_folder: Path) -> list[Path]:
    """The finished teacher model folders of an experiment, by seed (none before its data was indexed)."""
    stored = json.loads((Path(experiment_folder) / RECIPE_FILE).read_text(encoding="utf-8"))
    if stored.get("data_fingerprint") is None:
        return []
    recipe = stored["recipe"]
    root = teacher_root(Path(experiment_folder).parent.parent, recipe["teachers"], recipe["teacher_train"],
                        stored["data_fingerprint"])
    models = [root / f"seed-{seed}" / "model" for seed in range(1, recipe["teachers"]["k"] + 1)]
    return [m for m in models if read_model_card(m) is not None]


class Experiment:
    def __init__(self, recipe: ExperimentRecipe, workspace: Path, on_event: EventCallback | None = None,
                 cancel: CancelToken | None = None, executor: Executor | None = None):
        self.recipe = recipe
        self.workspace = Path(workspace)
        self.folder = self.workspace / "experiments" / recipe.name
        self.cancel = cancel or CancelToken()
        self.executor = executor or InProcessExecutor()
        self._on_event = on_event or (lambda e: None)
        self._log: EventLog | None = None
        self._sets: dict[str, dict[str, CycleSet]] = {}
        self.index: DatasetIndex | None = None
        self.teacher_root: Path | None = None  # known once the data is loaded
        self.catalog: Catalog | None = None
        self.experiment_id: int | None = None

    def run_folder(self, spec: RunSpec) -> Path:
        """Teachers live in the workspace, shared by every experiment with the same teachers and data;
        students and baselines in the experiment's folder."""
        if spec.role == "teacher":
            return self.teacher_root / f"seed-{spec.seed}"
        return self.folder / f"{spec.role}s" / f"{spec.arch}-{spec.labels}-seed-{spec.seed}"

    # ------------------------------------------------------------ events

    def emit(self, event: Event) -> None:
        if self._log is not None:
            self._log.write(event)
        self._on_event(event)

    def _progress_adapter(self, stage: str, run: str, run_id: int) -> Callable[[Progress], None]:
        def forward(p: Progress) -> None:
            if p.stage == "train":
                self.emit(Event(stage, "progress", run=run, step=(p.epoch - 1) * p.steps + p.step,
                                total=p.epochs * p.steps, eta_s=p.eta_s, data={"epoch": p.epoch, "loss": p.loss}))
            elif p.stage == "epoch":
                metrics = p.metrics or {}
                self.catalog.record_epoch(run_id, p.epoch, p.loss, p.lr, metrics.get("test"), metrics.get("val"))
                self.emit(Event(stage, "metrics", run=run, step=p.epoch, total=p.epochs,
                                data={"epoch": p.epoch, "loss": p.loss, **metrics}))
            else:
                self.emit(Event(stage, "notice", p.message, run=run))
        return forward

    # ------------------------------------------------------------ set-up and checks

    def _open_folder(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        recipe_path = self.folder / RECIPE_FILE
        current = self.recipe.to_dict()
        if recipe_path.exists():
            stored = json.loads(recipe_path.read_text(encoding="utf-8"))
            differences = _recipe_differences(stored["recipe"], current)
            if differences:
                raise ExperimentError(
                    f"experiment '{self.recipe.name}' was started with another recipe ({'; '.join(differences)}).",
                    path=self.folder, fix="give the recipe a new name to start a new experiment, or restore the "
                                          "recipe it was started with to continue it.")
        else:
            write_atomic_text(recipe_path, json.dumps({"recipe": current, "data_fingerprint": None}, indent=2))
        self._log = EventLog(self.folder / EVENTS_FILE)

    def _check_data(self) -> None:
        recipe_path = self.folder / RECIPE_FILE
        stored = json.loads(recipe_path.read_text(encoding="utf-8"))
        fingerprint = self.index.fingerprint()
        if stored["data_fingerprint"] is None:
            stored["data_fingerprint"] = fingerprint
            write_atomic_text(recipe_path, json.dumps(stored, indent=2))
        elif stored["data_fingerprint"] != fingerprint:
            raise ExperimentError(
                "the dataset changed since this experiment started (its recordings, cycles, labels or split differ).",
                path=self.folder, fix="restore the dataset, or start a new experiment (a new name) on the new data.")

    def _load_data(self) -> None:
        self.emit(Event("data", "started", "Indexing the dataset"))
        self.index = resolve_dataset(self.recipe.data, self.workspace)
        if self.recipe.selection == "best_val":
            self.index.apply_split(validation_split(self.index, self.recipe.data.val_fraction,
                                                    self.recipe.data.split_seed))
        self._check_data()
        self._register()
        self.teacher_root = teacher_root(self.workspace, asdict(self.recipe.teachers),
                                         asdict(self.recipe.teacher_train), self.index.fingerprint())
        for problem in self.index.warnings:
            self.emit(Event("data", "notice", str(problem)))
        self.emit(Event("data", "finished", data={"fingerprint": self.index.fingerprint()}))

    def _register(self) -> None:
        """The experiment and its dataset in the workspace catalog (the same rows when resumed)."""
        self.catalog = Catalog.for_workspace(self.workspace)
        fingerprint = self.index.fingerprint()
        self.catalog.upsert_dataset(self.index.root.name, self.index.root, fingerprint, self.index.stats())
        recipe = self.recipe.to_dict()
        recipe_hash = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()
        row = self.catalog.upsert_experiment(self.recipe.name, recipe, recipe_hash, fingerprint, self.folder)
        self.experiment_id = row.id
        self.catalog.set_experiment_status(row.id, "running")

    def cycle_sets(self, arch: str) -> dict[str, CycleSet]:
        """Prepared inputs per split for an architecture, computed once per experiment (and cached on disk)."""
        if arch not in self._sets:
            self.emit(Event("data", "started", f"Preparing {arch} inputs", run=arch))

            def progress(done: int, total: int) -> None:
                self.emit(Event("data", "progress", run=arch, step=done, total=total))

            self._sets[arch] = build_cycle_sets(self.index, arch, cache=FeatureCache(self.workspace / "cache"),
                                                location_source=self.recipe.data.location_source,
                                                missing=self.recipe.data.missing, progress=progress,
                                                cancel=self.cancel)
            self.emit(Event("data", "finished", run=arch,
                            data={split: len(s) for split, s in self._sets[arch].items()}))
        return self._sets[arch]

    # ------------------------------------------------------------ one model

    def train_run(self, spec: RunSpec, stage: str, targets=None) -> dict:
        """Train (or resume, or skip when finished) one model; returns its card."""
        folder = self.run_folder(spec)
        run_id = self.catalog.upsert_run(self.experiment_id, spec.role, spec.arch, spec.seed, spec.labels).id
        card = read_model_card(folder / "model")
        if card is not None:
            self._finish_in_catalog(run_id, card, folder)
            self.emit(Event(stage, "finished", "already trained", run=spec.name, data={"test": card["test"]}))
            return {**card, "run_folder": str(folder)}
        sets = self.cycle_sets(spec.arch)
        self.catalog.set_run_status(run_id, "running")
        self.emit(Event(stage, "started", run=spec.name, data={"role": spec.role, "arch": spec.arch,
                                                               "seed": spec.seed, "labels": spec.labels}))
        torch.manual_seed(spec.seed)  # the initial weights of randomly initialised parts
        model = create_model(spec.arch, pretrained=spec.pretrained, size=spec.size)
        trainer = Trainer(replace(spec.train, seed=spec.seed), folder,
                          self._progress_adapter(stage, spec.name, run_id), self.cancel)
        try:
            result = trainer.fit(model, sets["train"], sets.get("test"), sets.get("val"), targets)
        except BaseException as exc:
            self.catalog.set_run_status(run_id, "cancelled" if isinstance(exc, (Cancelled, KeyboardInterrupt))
                                        else "failed")
            raise
        test_logits = predict_logits(result.model, sets["test"], cancel=self.cancel) if "test" in sets else None
        if test_logits is not None:
            np.save(folder / "test_logits.npy", test_logits.numpy())
        card = save_trained_model(result.model, folder / "model", size=spec.size, pretrained=spec.pretrained,
                                  selection=result.selection, selected_epoch=result.selected_epoch,
                                  test=result.scores.to_dict() if result.scores else None,
                                  data_fingerprint=self.index.fingerprint(), seed=spec.seed,
                                  extra={"role": spec.role, "labels": spec.labels,
                                         "history": [asdict(r) for r in result.history]})
        self._finish_in_catalog(run_id, card, folder)
        self.emit(Event(stage, "artifact", "model saved", run=spec.name, data={"path": str(folder / "model")}))
        self.emit(Event(stage, "finished", run=spec.name, data={"test": card["test"]}))
        return {**card, "run_folder": str(folder)}

    def _finish_in_catalog(self, run_id: int, card: dict, folder: Path) -> None:
        self.catalog.finish_run(run_id, selected_epoch=card["selected_epoch"], selection=card["selection"],
                                test=card["test"], val=None, checkpoint=folder / "model")

    # ------------------------------------------------------------ stages

    def _teacher_specs(self) -> list[RunSpec]:
        t = self.recipe.teachers
        return [RunSpec("teacher", t.arch, t.size, t.pretrained, "hard", seed, self.recipe.teacher_train)
                for seed in range(1, t.k + 1)]

    def train_teachers(self) -> list[dict]:
        specs = self._teacher_specs()
        self.emit(Event("teachers", "started", f"{len(specs)} {self.recipe.teachers.arch} teachers",
                        total=len(specs)))
        cards = self.executor.map(lambda spec: self.train_run(spec, "teachers"), specs)
        self.emit(Event("teachers", "finished", data={"scores": [c["test"]["score"] for c in cards]}))
        return cards

    def _teacher_logits(self, spec: RunSpec, sets: dict[str, CycleSet]) -> tuple[dict[str, np.ndarray], bool]:
        """One teacher's raw logits per split, computed once and kept beside its checkpoint (and whether
        they were reused)."""
        path = self.run_folder(spec) / "logits.npz"
        fingerprint = self.index.fingerprint()
        if path.exists():
            stored = dict(np.load(path))
            if str(stored.pop("data_fingerprint")) == fingerprint:
                return stored, True
        model = create_model(spec.arch, pretrained=self.run_folder(spec) / "model")
        device = torch.device("cuda" if torch.cuda.is_available() and spec.train.device != "cpu" else "cpu")
        model.to(device)
        logits = {split: predict_logits(model, data, device=device, cancel=self.cancel).numpy()
                  for split, data in sets.items()}
        _save_npz_atomic(path, data_fingerprint=np.array(fingerprint), **logits)
        return logits, False

    def teacher_logits(self) -> dict[str, np.ndarray]:
        """(N, k, 4) raw logits of every teacher on each split's cycles, in dataset order, with the teacher
        ids, the cycle ids and the data fingerprint."""
        specs = self._teacher_specs()
        sets = self.cycle_sets(self.recipe.teachers.arch)
        self.emit(Event("logits", "started", total=len(specs)))
        per_teacher = []
        for number, spec in enumerate(specs, start=1):
            logits, reused = self._teacher_logits(spec, sets)
            per_teacher.append(logits)
            self.emit(Event("logits", "progress", "reused" if reused else "computed", run=spec.name, step=number,
                            total=len(specs)))
        arrays = {f"{split}_logits": np.stack([t[split] for t in per_teacher], axis=1) for split in sets}
        arrays.update({f"{split}_labels": data.labels.numpy() for split, data in sets.items()})
        arrays.update({f"{split}_cycle_ids": np.array(data.cycle_ids) for split, data in sets.items()})
        arrays.update({f"{split}_patients": np.array(data.patients) for split, data in sets.items()})
        path = self.folder / LOGITS_FILE
        _save_npz_atomic(path, teacher_ids=np.array([s.name for s in specs]),
                         teacher_folders=np.array([str(self.run_folder(s)) for s in specs]),
                         data_fingerprint=np.array(self.index.fingerprint()), **arrays)
        self.catalog.add_artifact(self.experiment_id, "logits", path,
                                  metadata={"shape": list(arrays["train_logits"].shape)})
        self.emit(Event("logits", "artifact", data={"path": str(path), "shape": list(arrays["train_logits"].shape)}))
        self.emit(Event("logits", "finished"))
        return dict(np.load(path))

    def evaluate_ensembles(self, logits: dict[str, np.ndarray], teacher_scores: list[float]) -> dict:
        """The BTS++ curve (first k' teachers for every k') and the curated ensemble."""
        self.emit(Event("ensembles", "started"))
        test_logits, labels = logits["test_logits"], logits["test_labels"]
        curve = []
        for k in range(1, test_logits.shape[1] + 1):
            scores = scores_from_logits(ensemble_logits(test_logits, list(range(k))), labels)
            curve.append({"k": k, **_scores_row(scores)})
            self.emit(Event("ensembles", "metrics", run=f"first {k}", data=curve[-1]))
        curated = None
        if self.recipe.curated_k:
            members = curated_members(teacher_scores, self.recipe.curated_k)
            scores = scores_from_logits(ensemble_logits(test_logits, members), labels)
            curated = {"k": self.recipe.curated_k, "seeds": [m + 1 for m in members], **_scores_row(scores)}
        self.emit(Event("ensembles", "finished"))
        return {"first_k": curve, "curated": curated}

    def _student_specs(self, student: StudentSpec) -> list[RunSpec]:
        specs = [RunSpec("student", student.arch, student.size, student.pretrained, student.labels, seed, student.train)
                 for seed in student.seeds]
        if student.baseline:
            specs += [RunSpec("baseline", student.arch, student.size, student.pretrained, "hard", seed, student.train)
                      for seed in student.seeds]
        return specs

    def train_students(self, logits: dict[str, np.ndarray], teacher_scores: list[float]) -> list[list[dict]]:
        groups = []
        for student in self.recipe.students:
            sets = self.cycle_sets(student.arch)
            if list(sets["train"].cycle_ids) != list(logits["train_cycle_ids"]):
                raise ExperimentError(f"the {student.arch} student sees other training cycles than the teachers "
                                      "(a recording was readable for one architecture and not the other).",
                                      path=self.folder, fix="check the dataset warnings and restart the experiment.")

            def run(spec: RunSpec) -> dict:
                targets = None
                if spec.role == "student":
                    soft = student.soft_labels
                    targets = build_targets(replace(soft, seed=spec.seed), logits["train_logits"],
                                            logits["train_labels"], teacher_scores)
                return {**self.train_run(spec, "students", targets), "role": spec.role}

            groups.append(self.executor.map(run, self._student_specs(student)))
        return groups

    def second_generation(self, groups: list[list[dict]]) -> dict | None:
        if not self.recipe.second_generation:
            return None
        student = self.recipe.students[self.recipe.second_generation - 1]
        self.emit(Event("second_generation", "started"))
        stacked = np.stack([np.load(self.run_folder(spec) / "test_logits.npy")
                            for spec in self._student_specs(student) if spec.role == "student"], axis=1)
        labels = self.cycle_sets(student.arch)["test"].labels.numpy()
        scores = scores_from_logits(ensemble_logits(stacked, list(range(stacked.shape[1]))), labels)
        row = {"arch": student.arch, "labels": student.labels, "k": stacked.shape[1], **_scores_row(scores)}
        self.emit(Event("second_generation", "metrics", data=row))
        self.emit(Event("second_generation", "finished"))
        return row

    # ------------------------------------------------------------ the whole experiment

    def run(self) -> dict:
        self._open_folder()
        started = time.time()
        self.emit(Event("experiment", "started", self.recipe.name, data={"folder": str(self.folder)}))
        try:
            self._load_data()
            teacher_cards = self.train_teachers()
            teacher_scores = [c["test"]["score"] if c["test"] else float("nan") for c in teacher_cards]
            logits = self.teacher_logits()
            ensembles = self.evaluate_ensembles(logits, teacher_scores)
            groups = self.train_students(logits, teacher_scores)
            second = self.second_generation(groups)
            from lungkd.core.kd.report import build_report, write_reports

            report = build_report(self, teacher_cards, ensembles, groups, second, logits)
            paths = write_reports(report, self.folder)
            for path in paths:
                self.catalog.add_artifact(self.experiment_id, "report", path)
                self.emit(Event("report", "artifact", data={"path": str(path)}))
        except BaseException as exc:
            if self.catalog is not None and self.experiment_id is not None:
                cancelled = isinstance(exc, (Cancelled, KeyboardInterrupt))
                self.catalog.set_experiment_status(self.experiment_id, "cancelled" if cancelled else "failed")
            self.emit(Event("experiment", "failed", str(exc), data={"type": type(exc).__name__}))
            raise
        self.catalog.set_experiment_status(self.experiment_id, "finished", headline_scores(report))
        self.emit(Event("experiment", "finished", data={"seconds": round(time.time() - started, 1)}))
        return report

    # ------------------------------------------------------------ used by the report

    def bootstrap(self, run_folder: str, arch: str) -> dict | None:
        path = Path(run_folder) / "test_logits.npy"
        test = self.cycle_sets(arch).get("test")
        if not path.exists() or test is None:
            return None
        predictions = np.load(path).argmax(axis=1)
        return patient_bootstrap_ci(test.labels.numpy(), predictions, np.array(test.patients), n_boot=1000).to_dict()


def headline_scores(report: dict) -> dict:
    """What `lungkd runs` and the Runs view show beside an experiment."""
    best_ensemble = max((e for e in report["ensembles"] if e["score"] is not None), key=lambda e: e["score"],
                        default=None)
    return {
        "teachers": report["teacher_summary"]["mean"],
        "ensemble": {"k": best_ensemble["k"], "score": best_ensemble["score"]} if best_ensemble else None,
        "students": [{"arch": g["arch"], "labels": g["labels"], "score": g["distilled"]["mean"],
                      "hard": g["baseline"]["mean"], "gain": g["gain"]} for g in report["student_groups"]],
        "second_generation": (report["second_generation"] or {}).get("score"),
    }
