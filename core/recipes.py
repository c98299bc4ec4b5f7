"""Recipes: TOML files that describe a run completely (docs/design.md), validated when they are loaded — before
any data is read — with errors that name the key, the value and what is allowed. docs/recipes.md
describes every key.

A training recipe (`lungkd train`) trains one model on hard labels:

    name = "..."; seed = 1; selection = "best_test"; device = "auto"; deterministic = false
    [data]   path = "dataset folder"  or  synthetic = { recordings = 120, seed = 0, label_noise = 0.0, layout }
             name, format, label_map, split, test_fraction, split_seed, val_fraction, calibration_fraction,
             location_source, missing          ([[data]] tables instead: several datasets pooled)
    [model]  arch, size = "full" | "tiny", pretrained = "" (random init) | hub id | local folder | a .lungkd
    [train]  epochs, batch_size, lr, weight_decay, final_lr_ratio, weight_averaging, specaugment,
             mixed_precision

An experiment recipe (`lungkd run`) is the method of docs/method.md section 9:

    name = "..."; selection = "best_test"; device = "auto"; deterministic = false
    executor = "inprocess" | "process" | "ray"; workers = N    (where the runs train; not part of the results)
    [data]                 as above
    [[evaluate]]           datasets the models never train on, scored in the report's cross-dataset table
    [teachers]             arch, size, pretrained, k (seeds 1..k), together (train them as one batched model)
    [teachers.train]       as [train] above
    [ensembles]            curated_k (0: no curated ensemble)
    [[students]]           arch, size, pretrained, labels = "mean_5" | "random_15" | "curated_5" | "single" |
                           "onehot_noise" | "onehot_teacher_noise", seeds = [1, 2, 3], baseline = true
    [students.train]       as [train] above
    [second_generation]    student = N (the N-th [[students]] entry's seeds form the BTS-d++ ensemble; 0: off)

Settings that hold for the whole run (selection, device, deterministic) sit at the top, once.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (AfterValidator, Field, StrictInt, ValidationError, ValidationInfo, field_validator,
                      model_serializer, model_validator)

from lungkd.core.data.sources import MAX_DATASETS, Data, DataSpec, SyntheticData, prompt_policy
from lungkd.core.errors import LungKDError
from lungkd.core.models.archive import starting_model_card
from lungkd.core.models.card import InputContract, PromptPolicy
from lungkd.core.models.registry import ARCHITECTURES, SIZES, model_info, pretrained_problem
from lungkd.core.recipe_files import (RecipeError, ShippedRecipe, find_recipe, read_toml, recipe_kind,
                                      shipped_recipes, shipped_recipes_folder)
from lungkd.core.schema import MAX_SEED, Seed, Spec, recipe_error
from lungkd.core.selection import Selection
from lungkd.core.workspace.layout import NAME_RULE, is_valid_name

__all__ = ["RecipeError", "DataSpec", "SyntheticData", "ShippedRecipe", "find_recipe", "read_toml", "recipe_kind",
           "shipped_recipes", "shipped_recipes_folder"]

EXECUTORS = ("inprocess", "process", "ray")  # who trains an experiment's runs (core.kd.executors)
DEFAULT_EXECUTOR = "process"  # each run in a child process: the window, or the command, never shares its interpreter
Architecture = Literal[ARCHITECTURES]  # type: ignore[valid-type]  # the registry's names
Size = Literal[SIZES]  # type: ignore[valid-type]
def _check_name(name: str) -> str:
    if not is_valid_name(name):
        raise ValueError(f"names are {NAME_RULE} (they become folder names)")
    return name


Name = Annotated[str, AfterValidator(_check_name)]


# ---------------------------------------------------------------- soft labels (docs/method.md section 9)

_LABELS = re.compile(r"^(mean|random|curated)_(\d+)$")
SOFT_LABEL_MODES = ("mean", "random", "curated", "onehot_noise", "onehot_teacher_noise")


@dataclass(frozen=True)
class SoftLabelSpec:
    """`mean_k`, `random_k`, `curated_k`, `single` (= mean_1), `onehot_noise` or `onehot_teacher_noise`."""

    mode: str
    k: int = 1
    sigma: float = 0.1  # onehot_noise's standard deviation
    temperature: float = 1.0  # an extension; the paper uses 1
    seed: int = 0

    @classmethod
    def parse(cls, text: str, **options) -> "SoftLabelSpec":
        if text == "single":
            return cls("mean", 1, **options)
        if text in ("onehot_noise", "onehot_teacher_noise"):
            return cls(text, 0, **options)
        match = _LABELS.match(text)
        if not match or int(match[2]) < 1:
            raise RecipeError(f"unknown soft-label mode '{text}'.",
                              fix="use mean_K, random_K, curated_K (K >= 1), single, onehot_noise or "
                                  "onehot_teacher_noise.")
        return cls(match[1], int(match[2]), **options)

    @property
    def name(self) -> str:
        return self.mode if self.mode.startswith("onehot") else f"{self.mode}_{self.k}"


# ---------------------------------------------------------------- tables


class TrainConfig(Spec):
    """Hyperparameters of one model's training (docs/method.md section 7); the same for every seed."""

    epochs: int = Field(50, ge=1, le=100_000)
    batch_size: int = Field(8, ge=1, le=65_536)
    lr: float = Field(5e-5, gt=0.0, le=10.0)
    weight_decay: float = Field(0.0, ge=0.0, le=1.0)
    final_lr_ratio: float = Field(1e-3, gt=0.0, le=1.0)  # cosine decay per epoch, the last epoch at lr * this
    weight_averaging: float | None = Field(None, ge=0.0, lt=1.0)  # w = a * w_before + (1 - a) * w_after per step
    specaugment: bool = True  # fbank models only; CLAP models never get it
    mixed_precision: bool = True  # on CUDA only: bf16 where supported, else fp16 with a grad scaler


class RunSettings(Spec):
    """What holds for every model of a run: checkpoint selection, device, determinism."""

    selection: Annotated[Selection, Field(strict=False)] = Selection.BEST_TEST  # written as its name
    device: str = "auto"
    deterministic: bool = False

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", value):
            raise ValueError('device must be "auto" (a GPU when there is one), "cpu", "cuda" or "cuda:N"')
        return value

    def run_settings(self) -> "RunSettings":
        return RunSettings(selection=self.selection, device=self.device, deterministic=self.deterministic)


class ModelSpec(Spec):
    arch: Architecture
    size: Size = "full"
    pretrained: str | None = None  # a Hugging Face id, a folder or a .lungkd; "" or absent: random initialisation

    def input_contract(self, data: DataSpec | tuple[DataSpec, ...]) -> InputContract:
        """The input this model trains on, as its card records it: its architecture's inputs, and for a model
        with prompts the data's prompt policy."""
        missing, location_source = prompt_policy(data)
        return InputContract.from_spec(model_info(self.arch).inputs,
                                       PromptPolicy(missing=missing, location_source=location_source))

    @field_validator("pretrained")
    @classmethod
    def _weights_that_can_be_had(cls, value: str | None, info: ValidationInfo) -> str | None:
        """"" is random initialisation; a path must exist and a hub id be written as one, checked here so that a
        typo is refused before any data is prepared."""
        value = value or None
        problem = pretrained_problem(info.data["arch"], value) if value and "arch" in info.data else None
        if problem:
            raise ValueError(problem)
        return value

    @model_validator(mode="after")
    def _starts_from_its_architecture(self) -> "ModelSpec":
        """A LungKD model (a folder or a .lungkd) starts only a model of its own architecture."""
        try:
            card = starting_model_card(self.pretrained)
        except LungKDError as exc:
            raise ValueError(f"pretrained = {self.pretrained!r} cannot be used: {exc.problem.message}") from None
        if card is not None and card.architecture != self.arch:
            raise ValueError(f"pretrained = {self.pretrained!r} is a {card.architecture} model: it can be the starting "
                             f"weights of a {card.architecture} model only, not of arch = {self.arch!r}; set arch = "
                             f"{card.architecture!r}, or start from a model of architecture {self.arch!r}")
        return self


class TeacherSpec(ModelSpec):
    k: int = Field(ge=1, le=1000)  # seeds 1..k
    together: bool | None = None  # train the k teachers as one batched model (default: where the arch can, on a GPU)
    train: TrainConfig = TrainConfig()

    @model_validator(mode="after")
    def _together_possible(self) -> "TeacherSpec":
        if self.together and not model_info(self.arch).together:
            raise ValueError(f"{self.arch} teachers train one after another; together = true is for "
                             f"{', '.join(m for m in ARCHITECTURES if model_info(m).together)}")
        return self

    def trains_together(self, on_gpu: bool) -> bool:
        """`together` as written, else together where the architecture can and the teachers train on a GPU: on
        a CPU the batched model's grouped convolutions take longer than the k teachers one after another
        (bench/teachers_together.py)."""
        return model_info(self.arch).together and on_gpu if self.together is None else self.together


class StudentSpec(ModelSpec):
    labels: str = "mean_5"
    seeds: Annotated[tuple[StrictInt, ...], Field(strict=False, min_length=1, max_length=1000)] = (1,)
    baseline: bool = False  # also train this student on hard labels, for the gain
    train: TrainConfig = TrainConfig()

    @field_validator("labels")
    @classmethod
    def _known_labels(cls, value: str) -> str:
        try:
            SoftLabelSpec.parse(value)
        except RecipeError as exc:
            raise ValueError(f"{exc.problem.message} {exc.problem.fix}") from None
        return value

    @field_validator("seeds")
    @classmethod
    def _distinct_seeds(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if len(set(value)) != len(value):
            raise ValueError("a seed is listed twice; each seed trains one student")
        if not all(0 <= seed <= MAX_SEED for seed in value):
            raise ValueError(f"seeds are whole numbers from 0 to {MAX_SEED}")
        return value

    @property
    def soft_labels(self) -> SoftLabelSpec:
        return SoftLabelSpec.parse(self.labels)


class Ensembles(Spec):
    curated_k: int = Field(0, ge=0)  # 0: no curated ensemble


class SecondGeneration(Spec):
    student: int = Field(0, ge=0)  # 1-based index into [[students]]; 0: off


# ---------------------------------------------------------------- recipes


class TrainRecipe(RunSettings):
    name: Name
    seed: Seed = 1
    data: Data
    model: ModelSpec
    train: TrainConfig = TrainConfig()
    source: str | None = Field(None, exclude=True)  # the file it was read from

    def to_dict(self) -> dict:
        """Everything that decides the result (not the file it came from)."""
        return self.model_dump(mode="json")


class ExperimentRecipe(RunSettings):
    name: Name
    description: str = ""
    data: Data
    # scored in the report's cross-dataset table; not part of the results' identity, so finished models can be
    # evaluated on another dataset by running the experiment again
    evaluate: Annotated[tuple[DataSpec, ...], Field(strict=False, max_length=MAX_DATASETS)] = ()
    teachers: TeacherSpec
    ensembles: Ensembles = Ensembles()
    students: Annotated[tuple[StudentSpec, ...], Field(strict=False)] = ()
    second_generation: SecondGeneration = SecondGeneration()
    # Where the runs train, not what they give: left out of to_dict, so a resumed experiment may change them.
    executor: Literal[EXECUTORS] | None = None  # type: ignore[valid-type]  # None: the caller's default
    workers: int | None = Field(None, ge=1, le=4096)  # runs at once (None: one per GPU, or one)
    source: str | None = Field(None, exclude=True)

    @model_validator(mode="after")
    def _consistent(self) -> "ExperimentRecipe":
        k = self.teachers.k
        for number, student in enumerate(self.students, start=1):
            needed = student.soft_labels.k
            if needed > k:
                raise ValueError(f"[[students]] {number}: labels = {student.labels!r} needs {needed} teachers, but "
                                 f"[teachers] k = {k}; raise k or lower the k in labels")
        if self.ensembles.curated_k > k:
            raise ValueError(f"[ensembles] curated_k = {self.ensembles.curated_k} must be at most [teachers] k = {k}")
        if self.second_generation.student > len(self.students):
            raise ValueError(f"[second_generation] student = {self.second_generation.student} names no [[students]] "
                             f"entry (there are {len(self.students)}); use 0 (off) or 1..{len(self.students)}")
        return self

    @property
    def executor_name(self) -> str:
        """Who trains the runs: the recipe's executor, else LungKD's default."""
        return self.executor or DEFAULT_EXECUTOR

    def to_dict(self) -> dict:
        """Everything that decides the results (not the file it came from, its description, nor where its runs
        train): what a resumed experiment is compared with."""
        return self.model_dump(mode="json", exclude={"description", "executor", "workers", "evaluate"})

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        dumped = handler(self)
        if not dumped.get("evaluate", True):  # recipes without it write and store as they did before it existed
            del dumped["evaluate"]
        return dumped


# ---------------------------------------------------------------- files


def _validated(cls, document: dict, path: str | None, what: str):
    try:
        return cls.model_validate({**document, "source": path})
    except ValidationError as exc:
        raise recipe_error(exc, path, what) from None


_COMMANDS = {"training": ("lungkd train", "a training recipe (one [model], no [teachers])"),
             "experiment": ("lungkd run", "an experiment recipe ([teachers] and [[students]])")}


def _refuse_other_kind(document: dict, path: str | None, expected: str) -> None:
    kind = recipe_kind(document)
    if kind is None or kind == expected:
        return
    command, what = _COMMANDS[kind]
    shipped = path is not None and Path(path).resolve().is_relative_to(shipped_recipes_folder().resolve())
    given = Path(path).stem if shipped else (path or "RECIPE.toml")
    raise RecipeError(f"this is {what}, not {_COMMANDS[expected][1].split(' (')[0]}.", path=path,
                      fix=f"run it with `{command} {given}`.")


def parse_recipe(document: dict, path: str | None = None) -> TrainRecipe:
    _refuse_other_kind(document, path, "training")
    document = {"name": Path(path).stem if path else "recipe", **document}
    return _validated(TrainRecipe, document, path, "the training recipe")


def parse_experiment(document: dict, path: str | None = None) -> ExperimentRecipe:
    _refuse_other_kind(document, path, "experiment")
    document = {"name": Path(path).stem if path else "experiment", **document}
    return _validated(ExperimentRecipe, document, path, "the experiment recipe")


def load_recipe(path: str | Path) -> TrainRecipe:
    return parse_recipe(read_toml(path), str(path))


def load_experiment(path: str | Path) -> ExperimentRecipe:
    return parse_experiment(read_toml(path), str(path))


def recipe_to_toml(recipe: TrainRecipe | ExperimentRecipe) -> str:
    """The recipe as a TOML file that loads back to the same recipe."""
    import tomli_w

    return tomli_w.dumps(recipe.model_dump(mode="json", exclude_none=True))
