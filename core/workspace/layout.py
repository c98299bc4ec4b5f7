"""Where things live in a workspace: the one module that names its files and folders, used by the engine, the
command line and the application alike. tests/core/test_layout.py checks that this tree names every constant
below and nothing else.

    workspace/
      catalog.sqlite                      CATALOG_FILE: the index (core.workspace.catalog)
      cache/                              CACHE_FOLDER: prepared inputs, content-addressed (core.features.cache)
        unpacked/<sha256>/                UNPACKED_FOLDER: a .lungkd a recipe starts from, as a MODEL FOLDER
      datasets/                           DATASETS_FOLDER: datasets LungKD generated
      teachers/                           TEACHERS_FOLDER: teachers shared by experiments with the same teachers and data
        <arch>-<digest>/seed-<N>/         a teacher's run folder (RUN FOLDER below)
        <arch>-<digest>/together-seeds-1-2-3/   the training state of teachers trained as one batched model
      experiments/                        EXPERIMENTS_FOLDER
        <name>/                           an experiment
          recipe.json                     RECIPE_FILE: the recipe it was started with and its data fingerprint
          recipe.toml                     RECIPE_TOML: the same recipe, to run it again
          events.jsonl                    EVENTS_FILE: the event log
          teacher_logits.npz              EXPERIMENT_LOGITS_FILE: (N, k, 4) logits of the teachers, every split
          students/<arch>-<labels>-seed-<N>/    a distilled student's RUN FOLDER
          baselines/<arch>-hard-seed-<N>/       a hard-label baseline's RUN FOLDER
          report.json, report.md, report.html   REPORT_JSON, REPORT_MARKDOWN, REPORT_HTML
      runs/                               RUNS_FOLDER: single models of `lungkd train`
        <name>-<digest>/                  a RUN FOLDER, with recipe.json (RECIPE_FILE)
      adapted/                            ADAPTED_FOLDER: models adapted to new recordings (`lungkd adapt`)
        <name>/                           an adapted model (weights and lungkd.json, which names its parent)
      models/                             MODELS_FOLDER: models imported from .lungkd archives (core.models.archive)
        <name>/                           a MODEL FOLDER, named after its archive
      results/                            RESULTS_FOLDER: recordings analysed, by model card and file content
                                          (core.analysis.results), so that a folder's analysis resumes

    MODEL FOLDER
      lungkd.json                         CARD_FILE: its card (core.models.card), written last
      model.safetensors, config.json, head.safetensors   its weights (core.models.registry)

    RUN FOLDER
      train_state.pt                      STATE_FILE: the resumable training state, every epoch
      test_logits.npy                     TEST_LOGITS_FILE: the selected model's logits on the test split
      logits.npz                          TEACHER_LOGITS_FILE: a teacher's logits on every split
      model/                              MODEL_FOLDER: the finished model (a MODEL FOLDER)
"""
from __future__ import annotations

import re
from pathlib import Path

from lungkd.core.errors import LungKDError

CATALOG_FILE = "catalog.sqlite"
CACHE_FOLDER = "cache"
DATASETS_FOLDER = "datasets"
TEACHERS_FOLDER = "teachers"
EXPERIMENTS_FOLDER = "experiments"
RUNS_FOLDER = "runs"
MODELS_FOLDER = "models"
UNPACKED_FOLDER = "unpacked"
ADAPTED_FOLDER = "adapted"
RESULTS_FOLDER = "results"
RECIPE_FILE = "recipe.json"
RECIPE_TOML = "recipe.toml"
EVENTS_FILE = "events.jsonl"
EXPERIMENT_LOGITS_FILE = "teacher_logits.npz"
REPORT_JSON = "report.json"
REPORT_MARKDOWN = "report.md"
REPORT_HTML = "report.html"
STATE_FILE = "train_state.pt"
TEST_LOGITS_FILE = "test_logits.npy"
TEACHER_LOGITS_FILE = "logits.npz"
MODEL_FOLDER = "model"
CARD_FILE = "lungkd.json"
ARCHIVE_SUFFIX = ".lungkd"  # a model as one file (core.models.archive)
REPORT_FILES = (REPORT_JSON, REPORT_MARKDOWN, REPORT_HTML)

NAME_RULE = "1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def is_valid_name(name: str) -> bool:
    """Experiment and run names become folder names: nothing that could leave its parent folder."""
    return bool(_NAME.match(name))


def valid_name(text: str, suffix: str = "") -> str:
    """A valid name made from any text (a folder's name, say): each run of other characters becomes '-', cut so
    that `suffix` fits; "data" when nothing usable is left."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._") or "data"
    return stem[:64 - len(suffix)].rstrip("-._") + suffix


def _checked(name: str, what: str = "experiment") -> str:
    if not is_valid_name(name):
        raise LungKDError(f"'{name}' is not a valid {what} name.", fix=f"use {NAME_RULE}.")
    return name


def experiments_root(workspace: Path) -> Path:
    return Path(workspace) / EXPERIMENTS_FOLDER


def experiment_folder(workspace: Path, name: str) -> Path:
    return experiments_root(workspace) / _checked(name)


def is_experiment_folder(folder: Path) -> bool:
    """An experiment's folder: under the workspace's experiments folder, with its recipe."""
    folder = Path(folder)
    return folder.parent.name == EXPERIMENTS_FOLDER and (folder / RECIPE_FILE).is_file()


def teachers_root(workspace: Path) -> Path:
    return Path(workspace) / TEACHERS_FOLDER


def teachers_folder(workspace: Path, arch: str, digest: str) -> Path:
    return teachers_root(workspace) / f"{arch}-{digest}"


def teacher_run_folder(teachers: Path, seed: int) -> Path:
    return teachers / f"seed-{seed}"


def together_folder(teachers: Path, seeds: list[int]) -> Path:
    """The shared training state of teachers trained as one batched model (their models go to their own
    seed folders)."""
    return teachers / f"together-seeds-{'-'.join(map(str, seeds))}"


def student_run_folder(experiment: Path, role: str, arch: str, labels: str, seed: int) -> Path:
    """A distilled student's (role "student") or hard-label baseline's (role "baseline") folder."""
    return experiment / f"{role}s" / f"{arch}-{labels}-seed-{seed}"


def single_run_folder(workspace: Path, name: str, digest: str) -> Path:
    return Path(workspace) / RUNS_FOLDER / f"{_checked(name)}-{digest}"


def adapted_model_folder(workspace: Path, name: str) -> Path:
    return Path(workspace) / ADAPTED_FOLDER / _checked(name, "model")


def cache_folder(workspace: Path) -> Path:
    return Path(workspace) / CACHE_FOLDER


def datasets_folder(workspace: Path) -> Path:
    return Path(workspace) / DATASETS_FOLDER


def models_folder(workspace: Path) -> Path:
    return Path(workspace) / MODELS_FOLDER


def unpacked_folder(workspace: Path) -> Path:
    return cache_folder(workspace) / UNPACKED_FOLDER


def catalog_path(workspace: Path) -> Path:
    return Path(workspace) / CATALOG_FILE
