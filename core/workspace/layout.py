"""Where things live in a workspace: the one place that names experiment, teacher and run folders, used by
the engine, the command line and the application alike.

    workspace/
      catalog.sqlite               the index (core.workspace.catalog)
      cache/                       prepared inputs, content-addressed (core.features.cache)
      datasets/                    datasets LungKD generated
      teachers/<arch>-<digest>/seed-N/   teachers shared by every experiment with the same teachers and data
                      together-seeds-1-2-3/   the training state of teachers trained as one batched model
      experiments/<name>/          recipe.json, events.jsonl, teacher_logits.npz, students/, baselines/, reports
      runs/<name>-<digest>/        single models of `lungkd train`
"""
from __future__ import annotations

import re
from pathlib import Path

from lungkd.core.errors import LungKDError

MODEL_FOLDER = "model"  # inside every run folder: the finished model (weights + card)
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


def _checked(name: str) -> str:
    if not is_valid_name(name):
        raise LungKDError(f"'{name}' is not a valid experiment name.", fix=f"use {NAME_RULE}.")
    return name


def experiments_root(workspace: Path) -> Path:
    return Path(workspace) / "experiments"


def experiment_folder(workspace: Path, name: str) -> Path:
    return experiments_root(workspace) / _checked(name)


def teachers_root(workspace: Path) -> Path:
    return Path(workspace) / "teachers"


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
    return Path(workspace) / "runs" / f"{_checked(name)}-{digest}"


def cache_folder(workspace: Path) -> Path:
    return Path(workspace) / "cache"
