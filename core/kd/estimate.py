"""How long an experiment will take, before it starts: on the recipe's own data (its cycles after the split), on
the device that will run it, for the whole experiment — preparing the inputs, starting the workers, the
teachers, their logits, the soft labels, the students beside their hard-label baselines, and every evaluation.

Each part is measured here (core.training.estimates: timed training and prediction steps of each model, one
recording prepared and read back, one worker process started) and multiplied out by the plan of
core.kd.experiment. Teachers trained together as one batched model are counted one after another, which is
what they cost on a CPU and more than they cost on a GPU; soft labels, ensembles and the report are numpy work
of seconds and are left out. `python -m bench.estimate_check` sets the estimate against measured runs.
"""
from __future__ import annotations

import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from lungkd.core.data.sources import resolve_dataset
from lungkd.core.features.cache import FeatureCache
from lungkd.core.kd.executors import visible_gpus
from lungkd.core.kd.experiment import identical_teacher, student_specs, teacher_specs
from lungkd.core.kd.jobs import RunSpec
from lungkd.core.kd.launch import worker_command
from lungkd.core.kd.progress import duration
from lungkd.core.models.inference import resolve_device
from lungkd.core.models.registry import model_info
from lungkd.core.recipes import ExperimentRecipe
from lungkd.core.training.estimates import (ModelSpeed, device_name, measure_preparation, measure_speed,
                                            run_seconds)
from lungkd.core.workspace.layout import cache_folder


@dataclass(frozen=True)
class EstimatePart:
    what: str  # e.g. "teachers' training", "evaluation"
    seconds: float


@dataclass(frozen=True)
class ExperimentEstimate:
    """The time an experiment will take here, by part, and what it was worked out from."""

    name: str
    device: str  # the device that will run, resolved: "cpu", "cuda:0 (NVIDIA ...)"
    cycles: dict[str, int]  # per split after the recipe's split, cycles with audio
    teachers: int
    students: int  # distilled students
    baselines: int  # hard-label baselines that train (one identical to a teacher reuses it)
    epochs: tuple[int, ...]  # the epochs of the teachers and of each [[students]] entry
    lanes: int  # runs training at once
    parts: tuple[EstimatePart, ...]

    @property
    def seconds(self) -> float:
        return sum(part.seconds for part in self.parts)

    def sentence(self) -> str:
        """What the estimate says, for a person."""
        models = [f"{self.teachers} teacher{'s' * (self.teachers != 1)}",
                  f"{self.students} distilled student{'s' * (self.students != 1)}"]
        if self.baselines:
            models.append(f"{self.baselines} hard-label baseline{'s' * (self.baselines != 1)}")
        epochs = sorted(set(self.epochs))
        at_once = "one model at a time" if self.lanes == 1 else f"{self.lanes} models at a time"
        parts = ", ".join(f"{part.what} {duration(part.seconds)}" for part in self.parts if part.seconds >= 0.5)
        return (f"About {duration(self.seconds)} for {self.name} on {self.device}: {', '.join(models)}, "
                f"{'/'.join(map(str, epochs))} epochs each on {self.cycles.get('train', 0)} training cycles, "
                f"evaluated on {self.cycles.get('test', 0)} test cycles, {at_once} ({parts}).")


def worker_start_seconds() -> float:
    """How long a training worker process takes to start (its interpreter, torch and LungKD): one started with
    no job, which it ends at once."""
    start = time.perf_counter()
    subprocess.run(worker_command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=600, check=False)
    return time.perf_counter() - start


def _speed_key(spec: RunSpec) -> tuple:
    return spec.model.arch, spec.model.size, spec.train.batch_size, spec.train.mixed_precision


def _runs_at_once(recipe: ExperimentRecipe) -> int:
    """Models that train at the same time: one per GPU for the process and Ray executors, else one."""
    if recipe.executor_name == "inprocess" or resolve_device(recipe.device).type != "cuda":
        return 1
    return max(1, min(recipe.workers or len(visible_gpus()), len(visible_gpus())))


def estimate_experiment(recipe: ExperimentRecipe, workspace: Path) -> ExperimentEstimate:
    """The estimate of `recipe` in `workspace`. Generates a synthetic dataset the recipe names (training would),
    and prepares one recording of its data into the workspace's cache."""
    device = resolve_device(recipe.device)
    index = resolve_dataset(recipe.data, workspace, selection=recipe.selection)
    start = time.perf_counter()
    resolve_dataset(recipe.data, workspace, selection=recipe.selection)  # what each worker does again
    index_s = time.perf_counter() - start
    cycles = {split: n for split, n in index.stats()["cycles_with_audio"].items() if split != "all" and n}
    total_cycles = sum(cycles.values())
    teachers = teacher_specs(recipe)
    students = [spec for student in recipe.students for spec in student_specs(student)
                if identical_teacher(spec, recipe) is None]
    runs = teachers + students
    speeds: dict[tuple, ModelSpeed] = {}
    for spec in runs:  # one measurement per model and training setting
        key = _speed_key(spec)
        if key not in speeds:
            speeds[key] = measure_speed(spec.model, spec.train, device)
    timed = {id(spec): run_seconds(cycles, spec.train, speeds[_speed_key(spec)], teacher=spec.role == "teacher")
             for spec in runs}
    needs = {repr(model_info(spec.arch).inputs): model_info(spec.arch).inputs for spec in runs}
    cache = FeatureCache(cache_folder(workspace))
    preparations = [measure_preparation(index, inputs, cache) for inputs in needs.values()]
    lanes = _runs_at_once(recipe)
    per_worker = index_s + sum(p.load_seconds(total_cycles) for p in preparations)
    workers = len(runs) if recipe.executor_name == "process" else 1
    start_s = worker_start_seconds() if recipe.executor_name == "process" and runs else 0.0

    def stage(specs, field: str) -> float:
        return sum(getattr(timed[id(s)], field) for s in specs) / lanes

    parts = (EstimatePart("preparing the inputs", sum(p.prepare_seconds(total_cycles) for p in preparations)),
             EstimatePart("starting the workers", workers * (start_s + per_worker) / lanes),
             EstimatePart("teachers' training", stage(teachers, "training")),
             EstimatePart("teacher logits", stage(teachers, "teacher_logits")),
             EstimatePart("students' training", stage(students, "training")),
             EstimatePart("evaluation", stage(runs, "evaluation")))
    return ExperimentEstimate(
        name=recipe.name, device=device_name(device), cycles=cycles, teachers=len(teachers),
        students=sum(1 for s in students if s.role == "student"),
        baselines=sum(1 for s in students if s.role == "baseline"),
        epochs=(recipe.teachers.train.epochs, *(s.train.epochs for s in recipe.students)), lanes=lanes, parts=parts)
