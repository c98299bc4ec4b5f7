"""Errors and warnings a user can cause, worded so they name the file, the line and the fix."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def _where(path: str | Path | None, line: int | None) -> str:
    if path is None:
        return ""
    return f"{path}:{line}: " if line is not None else f"{path}: "


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input: where it is, what is wrong and how to fix it."""

    path: str | None
    message: str
    fix: str = ""
    line: int | None = None

    def __str__(self) -> str:
        text = _where(self.path, self.line) + self.message
        return f"{text} Fix: {self.fix}" if self.fix else text

    def to_dict(self) -> dict:
        return {"path": self.path, "line": self.line, "message": self.message, "fix": self.fix}


class LungKDError(Exception):
    """Base class of every error the engine raises on purpose."""

    def __init__(self, message: str, *, path: str | Path | None = None, line: int | None = None, fix: str = ""):
        self.problem = Problem(str(path) if path is not None else None, message, fix, line)
        super().__init__(str(self.problem))


class DataError(LungKDError):
    """A dataset folder, annotation, split or metadata file that cannot be used."""


class AudioError(LungKDError):
    """A recording that cannot be decoded or contains unusable samples."""


class RecipeError(LungKDError):
    """A recipe key with a missing, unknown or out-of-range value."""
