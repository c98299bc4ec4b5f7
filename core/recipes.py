"""Recipes: TOML files that describe a run completely (DESIGN.md), validated on load with errors that
name the key and the allowed values.

A training recipe (`lungkd train`) trains one model with hard labels:

    name = "..."
    [data]   path = "ICBHI folder"  or  synthetic = { recordings = 120, seed = 0, label_noise = 0.0 }
             split = "official" | "patient"; test_fraction, split_seed, val_fraction, location_source, missing
    [model]  arch, size = "full" | "tiny", pretrained = "" (random init) | hub id | local folder
    [train]  epochs, batch_size, lr, weight_decay, weight_averaging, specaugment, mixed_precision,
             selection, seed, deterministic, device

An experiment recipe (`lungkd run`) is the method of SPEC section 9:

    name = "..."; selection = "best_test"; device = "auto"; deterministic = false
    [data]                 as above
    [teachers]             arch, size, pretrained, k (seeds 1..k)
    [teachers.train]       epochs, batch_size, lr, weight_decay, weight_averaging, specaugment, ...
    [ensembles]            curated_k (0: no curated ensemble)
    [[students]]           arch, size, pretrained, labels = "mean_5" | "random_15" | "curated_5" | "single" |
                           "onehot_noise" | "onehot_teacher_noise", seeds = [1, 2, 3], baseline = true
    [students.train]       as [teachers.train]
    [second_generation]    student = N (the N-th [[students]] entry's seeds form the BTS-d++ ensemble; 0: off)
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field, fields, replace
from importlib.resources import files
from pathlib import Path

from lungkd.core.errors import LungKDError
from lungkd.core.kd.soft_labels import SoftLabelSpec
from lungkd.core.training.trainer import SELECTIONS, TrainConfig

ARCHITECTURES = ("cnn6", "resnet18", "efficientnet_b0", "ast", "audio_clap", "bts")


class RecipeError(LungKDError):
    """A recipe key with a missing, unknown or out-of-range value."""


@dataclass(frozen=True)
class SyntheticData:
    recordings: int = 120
    seed: int = 0
    label_noise: float = 0.0


@dataclass(frozen=True)
class DataSpec:
    path: str | None = None
    synthetic: SyntheticData | None = None
    split: str = "official"  # official (the dataset's split file) | patient (random, patient-wise)
    test_fraction: float = 0.4
    split_seed: int = 0
    val_fraction: float = 0.2  # for selection = "best_val"
    location_source: str = "patient"
    missing: str = "reference"


@dataclass(frozen=True)
class ModelSpec:
    arch: str = "cnn6"
    size: str = "full"
    pretrained: str | None = None


@dataclass(frozen=True)
class TrainRecipe:
    name: str
    data: DataSpec
    model: ModelSpec
    train: TrainConfig
    source: str | None = None  # the file it was read from

    def to_dict(self) -> dict:
        return {"name": self.name, "data": asdict(self.data), "model": asdict(self.model), "train": asdict(self.train)}


# Set once per experiment, for teachers and students alike (seeds: teachers 1..k, students their list).
RUN_WIDE = ("seed", "selection", "device", "deterministic")


@dataclass(frozen=True)
class RunWide:
    selection: str = "best_test"
    device: str = "auto"
    deterministic: bool = False


@dataclass(frozen=True)
class TeacherSpec:
    arch: str = "bts"
    size: str = "full"
    pretrained: str | None = None
    k: int = 5


@dataclass(frozen=True)
class StudentSpec:
    arch: str = "bts"
    size: str = "full"
    pretrained: str | None = None
    labels: str = "mean_5"
    seeds: tuple[int, ...] = (1,)
    baseline: bool = False  # also train this student on hard labels, for the gain
    train: TrainConfig = field(default_factory=TrainConfig)

    @property
    def soft_labels(self) -> SoftLabelSpec:
        return SoftLabelSpec.parse(self.labels)


@dataclass(frozen=True)
class ExperimentRecipe:
    name: str
    data: DataSpec
    teachers: TeacherSpec
    teacher_train: TrainConfig
    students: tuple[StudentSpec, ...] = ()
    curated_k: int = 0
    second_generation: int = 0  # 1-based index into students; 0 = off
    selection: str = "best_test"
    device: str = "auto"
    deterministic: bool = False
    description: str = ""
    source: str | None = None

    def to_dict(self) -> dict:
        """Everything that decides the results (not the file it came from): compared on resume."""
        d = asdict(self)
        d.pop("source")
        d.pop("description")
        return json.loads(json.dumps(d))  # tuples become lists, as they come back from recipe.json


_CHOICES = {
    ("data", "split"): ("official", "patient"),
    ("data", "location_source"): ("patient", "filename"),
    ("data", "missing"): ("reference", "unknown"),
    ("model", "arch"): ARCHITECTURES,
    ("model", "size"): ("full", "tiny"),
    ("train", "selection"): SELECTIONS,
    ("teachers", "arch"): ARCHITECTURES,
    ("teachers", "size"): ("full", "tiny"),
    ("students", "arch"): ARCHITECTURES,
    ("students", "size"): ("full", "tiny"),
    ("experiment", "selection"): SELECTIONS,
}


def _build(cls, table: dict, section: str, path: str | None):
    """Dataclass `cls` from a TOML table, refusing unknown keys, wrong types and values outside the choices."""
    known = {f.name: f for f in fields(cls)}
    values = {}
    for key, value in table.items():
        if key not in known:
            raise RecipeError(f"unknown key [{section}] {key}.", path=path,
                              fix=f"use one of: {', '.join(sorted(known))}.")
        default = known[key].default
        if isinstance(default, bool) and not isinstance(value, bool):
            raise RecipeError(f"[{section}] {key} must be true or false, not {value!r}.", path=path,
                              fix=f"write {key} = true or {key} = false.")
        if isinstance(default, (int, float)) and not isinstance(default, bool) and (
                isinstance(value, bool) or not isinstance(value, (int, float))):
            raise RecipeError(f"[{section}] {key} must be a number, not {value!r}.", path=path,
                              fix=f"write e.g. {key} = {default}.")
        choices = _CHOICES.get((section, key))
        if choices and value not in choices:
            raise RecipeError(f"[{section}] {key} = {value!r} is not allowed.", path=path,
                              fix=f"use one of: {', '.join(choices)}.")
        values[key] = value
    return cls(**values)


def _check_sections(document: dict, allowed: set[str], what: str, path: str | None) -> None:
    unknown = set(document) - allowed
    if unknown:
        raise RecipeError(f"unknown key(s) {', '.join(sorted(unknown))}.", path=path,
                          fix=f"{what} has {', '.join(sorted(allowed))}.")


def _parse_data(document: dict, path: str | None) -> DataSpec:
    data_table = dict(document.get("data", {}))
    synthetic = data_table.pop("synthetic", None)
    data = _build(DataSpec, data_table, "data", path)
    if synthetic is not None:
        data = DataSpec(**{**asdict(data), "synthetic": _build(SyntheticData, synthetic, "data.synthetic", path)})
    if (data.path is None) == (data.synthetic is None):
        raise RecipeError("[data] needs exactly one of path or synthetic.", path=path,
                          fix='write path = "/folder/of/ICBHI" or synthetic = { recordings = 120, seed = 0 }.')
    return data


def _train_config(table: dict, section: str, path: str | None, **run_wide) -> TrainConfig:
    try:
        return _build(TrainConfig, {**table, **run_wide}, section, path)
    except RecipeError:
        raise
    except LungKDError as exc:
        raise RecipeError(exc.problem.message, path=path, fix=exc.problem.fix) from None


def parse_recipe(document: dict, path: str | None = None) -> TrainRecipe:
    _check_sections(document, {"name", "data", "model", "train"}, "a training recipe", path)
    data = _parse_data(document, path)
    model = _no_pretrained_blank(_build(ModelSpec, document.get("model", {}), "model", path))
    train = _train_config(document.get("train", {}), "train", path)
    return TrainRecipe(str(document.get("name", Path(path).stem if path else "recipe")), data, model, train, path)


def _no_pretrained_blank(spec):
    return replace(spec, pretrained=None) if spec.pretrained == "" else spec


def _run_wide_in(table: dict, section: str, path: str | None) -> None:
    clash = sorted(set(table) & set(RUN_WIDE))
    if clash:
        raise RecipeError(f"[{section}] sets {', '.join(clash)}, which an experiment sets once for every run.",
                          path=path, fix=f"move {', '.join(clash)} to the top of the recipe (seeds go in "
                                         "[[students]] seeds; teachers use seeds 1..k).")


def parse_experiment(document: dict, path: str | None = None) -> ExperimentRecipe:
    _check_sections(document, {"name", "description", "selection", "device", "deterministic", "data", "teachers",
                               "ensembles", "students", "second_generation"}, "an experiment recipe", path)
    top = _build(RunWide, {k: document[k] for k in asdict(RunWide()) if k in document}, "experiment", path)
    run_wide = asdict(top)
    teachers_table = dict(document.get("teachers", {}))
    teacher_train_table = teachers_table.pop("train", {})
    _run_wide_in(teacher_train_table, "teachers.train", path)
    teachers = _no_pretrained_blank(_build(TeacherSpec, teachers_table, "teachers", path))
    if teachers.k < 1:
        raise RecipeError("[teachers] k must be at least 1.", path=path, fix="write e.g. k = 5.")
    students = []
    for number, table in enumerate(document.get("students", []), start=1):
        table = dict(table)
        train_table = table.pop("train", {})
        _run_wide_in(train_table, f"students.train (student {number})", path)
        seeds = table.pop("seeds", [1])
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise RecipeError(f"[[students]] {number}: seeds must be a list of integers, not {seeds!r}.", path=path,
                              fix="write e.g. seeds = [1, 2, 3].")
        spec = _no_pretrained_blank(_build(StudentSpec, table, "students", path))
        try:
            labels = spec.soft_labels
        except LungKDError as exc:
            raise RecipeError(f"[[students]] {number}: {exc.problem.message}", path=path, fix=exc.problem.fix) from None
        if labels.k > teachers.k:
            raise RecipeError(f"[[students]] {number}: labels = {spec.labels!r} needs {labels.k} teachers, "
                              f"but [teachers] k = {teachers.k}.", path=path,
                              fix=f"raise [teachers] k to {labels.k} or lower the k in labels.")
        students.append(replace(spec, seeds=tuple(seeds), train=_train_config(train_table, "students.train", path,
                                                                              **run_wide)))
    curated_k = int(document.get("ensembles", {}).get("curated_k", 0))
    second = int(document.get("second_generation", {}).get("student", 0))
    if not 0 <= curated_k <= teachers.k:
        raise RecipeError(f"[ensembles] curated_k = {curated_k} must be between 0 and [teachers] k = {teachers.k}.",
                          path=path, fix="lower curated_k.")
    if not 0 <= second <= len(students):
        raise RecipeError(f"[second_generation] student = {second} names no [[students]] entry "
                          f"(there are {len(students)}).", path=path, fix="use 0 (off) or 1..number of students.")
    return ExperimentRecipe(
        name=str(document.get("name", Path(path).stem if path else "experiment")),
        description=str(document.get("description", "")), data=_parse_data(document, path), teachers=teachers,
        teacher_train=_train_config(teacher_train_table, "teachers.train", path, **run_wide),
        students=tuple(students), curated_k=curated_k, second_generation=second, source=path, **run_wide)


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RecipeError("recipe file not found.", path=path, fix="give the path of a .toml recipe.") from None
    except tomllib.TOMLDecodeError as exc:
        raise RecipeError(f"not valid TOML ({exc}).", path=path, fix="correct the syntax at the place named.") from None


def load_recipe(path: str | Path) -> TrainRecipe:
    return parse_recipe(_read_toml(Path(path)), str(path))


def shipped_recipes_folder() -> Path:
    """The recipes LungKD ships: package data of lungkd.resources, found through the package wherever it is
    (a checkout, an installed wheel or the frozen bundle)."""
    return Path(str(files("lungkd.resources") / "recipes"))


def load_experiment(path: str | Path) -> ExperimentRecipe:
    return parse_experiment(_read_toml(Path(path)), str(path))


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def _toml_table(lines: list[str], header: str, table: dict) -> None:
    lines += ["", header] + [f"{k} = {_toml_value(v)}" for k, v in table.items() if v is not None]


def experiment_to_toml(recipe: ExperimentRecipe) -> str:
    """The recipe as a TOML file that `load_experiment` reads back to the same recipe."""
    run_wide = set(asdict(RunWide()))
    train = lambda config: {k: v for k, v in asdict(config).items() if k not in run_wide and k != "seed"}  # noqa: E731
    lines = [f"name = {_toml_value(recipe.name)}"]
    if recipe.description:
        lines.append(f"description = {_toml_value(recipe.description)}")
    lines += [f"{k} = {_toml_value(getattr(recipe, k))}" for k in asdict(RunWide())]
    data = {k: v for k, v in asdict(recipe.data).items() if v is not None}
    _toml_table(lines, "[data]", data)
    _toml_table(lines, "[teachers]", {**asdict(recipe.teachers), "pretrained": recipe.teachers.pretrained or ""})
    _toml_table(lines, "[teachers.train]", train(recipe.teacher_train))
    if recipe.curated_k:
        _toml_table(lines, "[ensembles]", {"curated_k": recipe.curated_k})
    for student in recipe.students:
        fields_ = {k: v for k, v in asdict(student).items() if k != "train"}
        _toml_table(lines, "[[students]]", {**fields_, "pretrained": student.pretrained or "",
                                            "seeds": list(student.seeds)})
        _toml_table(lines, "[students.train]", train(student.train))
    if recipe.second_generation:
        _toml_table(lines, "[second_generation]", {"student": recipe.second_generation})
    return "\n".join(lines) + "\n"
