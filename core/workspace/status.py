"""An experiment as `lungkd runs` and the Studio's Experiments page list it, read without the engine: its
status (running, or stopped with the command that resumes it) and its headline Scores (`RunSummary`, which the
catalog keeps when the experiment finishes), each rendered once here for both faces."""
from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from lungkd.core.workspace.layout import RECIPE_TOML
from lungkd.core.workspace.locks import is_held
from lungkd.core.workspace.paths import default_workspace


def number_text(value: float | None, digits: int = 2, dash: bool = False) -> str:
    """A Score as people read it: two decimals; a missing one "n/a" (or "—" in a table)."""
    if value is None:
        return "—" if dash else "n/a"
    return f"{value:.{digits}f}"


def gain_text(value: float | None, dash: bool = False) -> str:
    """A difference of Scores as people write one, with its sign: +2.14, -0.50; a missing one as number_text."""
    return number_text(value, dash=dash) if value is None else f"{value:+.2f}"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class BestEnsemble(_Record):
    k: int
    score: float


class StudentSummary(_Record):
    arch: str
    labels: str
    score: float | None
    hard: float | None
    gain: float | None


class RunSummary(_Record):
    """An experiment's headline Scores, as the catalog keeps them. An experiment that has not finished has an
    empty summary."""

    teachers: float | None = None
    ensemble: BestEnsemble | None = None
    students: list[StudentSummary] = []
    second_generation: float | None = None

    @classmethod
    def from_catalog(cls, value: dict | None) -> "RunSummary":
        return cls.model_validate(value or {})

    def teachers_text(self) -> str:
        return number_text(self.teachers, dash=True)

    def ensemble_text(self) -> str:
        return f"{number_text(self.ensemble.score)} (k={self.ensemble.k})" if self.ensemble else "—"

    def students_text(self) -> str:
        """Each student entry as "arch labels distilled/hard"."""
        return ", ".join(f"{s.arch} {s.labels} {number_text(s.score, dash=True)}/{number_text(s.hard, dash=True)}"
                         for s in self.students) or "—"


def is_running(folder: Path) -> bool:
    """Whether a process (this one included) is running the experiment in `folder` now."""
    return is_held(folder)


def resume_command(workspace: Path, folder: Path) -> str:
    """The command that continues the experiment in `folder` where it stopped."""
    where = "" if Path(workspace).resolve() == default_workspace().resolve() else f" --workspace {workspace}"
    return f"lungkd run {folder / RECIPE_TOML}{where}"


def status_text(status: str, folder: Path, workspace: Path) -> str:
    """An experiment's status as a person needs it: the catalog says "running" until the run ends, so a run that
    was killed (no process holds its lock) is "stopped", with the command that resumes it."""
    if status in ("running", "pending") and is_running(folder):
        return "running"
    if status in ("running", "pending", "cancelled"):
        return f"stopped — resume with {resume_command(workspace, folder)}"
    return status
