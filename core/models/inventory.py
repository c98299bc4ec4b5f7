"""The trained models a user can analyse with: every model folder with a card under the workspace, and
the ones LungKD ships (resources/models/). A scan, so models of `lungkd train` runs, experiments and
copied-in folders all appear without being registered anywhere."""
from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from lungkd.core.errors import LungKDError, Problem
from lungkd.core.models.card import CARD_FILE, ModelCard, TestWarning
from lungkd.core.models.registry import check_saved_files
from lungkd.core.storage import walk_files
from lungkd.core.workspace.layout import CACHE_FOLDER, MODEL_FOLDER


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what it is, from its card: "demo-cpu · student cnn6 mean_3 · seed 1"; else where it sits
    arch: str
    score: float | None  # the ICBHI Score on its test set, when it was measured
    path: Path
    description: str = ""
    scored_on: str = ""  # the data the Score was measured on, e.g. "the test split of ICBHI_final_database"
    test_warnings: tuple[TestWarning, ...] = ()  # why its Score does not show it can be trusted (its card's)
    problem: Problem | None = None  # why the folder cannot be used (a damaged card or file), naming the file

    @property
    def usable(self) -> bool:
        return self.problem is None

    @property
    def reason(self) -> str:
        """Why it is unusable, in a line: the file and what is wrong with it."""
        if self.problem is None:
            return ""
        where = Path(self.problem.path).name if self.problem.path else ""
        return f"{where}: {self.problem.message}" if where else self.problem.message


def shipped_models_folder() -> Path:
    return Path(str(files("lungkd.resources") / "models"))


def card_name(card: ModelCard) -> str | None:
    """The model named by what made it: its experiment (or `lungkd train` run), role and seed."""
    arch, seed = card.architecture, card.seed
    if card.experiment and card.role:
        what = {"teacher": f"teacher {arch}", "baseline": f"baseline {arch} (hard labels)"}.get(
            card.role, f"{card.role} {arch} {card.training_labels or ''}".rstrip())
        return f"{card.experiment} · {what} · seed {seed}"
    if card.run:
        return f"run {card.run} · {arch} · seed {seed}"
    return None


def _scored_on(card: ModelCard) -> str:
    data = card.test_data
    return f"the {data.split} split of {data.dataset} ({data.cycles} cycles)" if data else ""


def _entry(folder: Path, root: Path) -> ModelEntry | None:
    where = folder.parent if folder.name == MODEL_FOLDER and folder.parent != root else folder
    place = where.relative_to(root).as_posix() if where != root else root.name
    try:  # every file checked as loading it would (the sha256 of the weights is left to loading)
        card = check_saved_files(folder, checksums=False)
    except LungKDError as exc:  # listed, as unusable, with the reason
        return ModelEntry(place, "", None, folder, problem=exc.problem)
    if card is None:
        return None
    name = card_name(card) or (place if card.description else f"{place} ({card.architecture})")
    return ModelEntry(name, card.architecture, card.score, folder, card.description, _scored_on(card),
                      card.test_warnings)


def find_models(*roots: Path) -> list[ModelEntry]:
    """Model folders (weights + lungkd.json) under each root, best Score first, unscored next, unusable ones
    (a damaged card or file) last with the reason; roots that do not exist are skipped. Hidden folders
    (unfinished atomic writes) and a workspace's cache (the archives recipes
    started from, unpacked) are left out."""
    entries = []
    for root in (Path(r) for r in roots):
        if not root.is_dir():
            continue
        for card in walk_files(root, lambda *_: None):  # bounded in depth: a workspace holds copied-in trees
            parts = card.relative_to(root).parts
            if card.name != CARD_FILE or parts[0] == CACHE_FOLDER or any(part.startswith(".") for part in parts):
                continue
            entry = _entry(card.parent, root)
            if entry is not None:
                entries.append(entry)
    return sorted(entries, key=lambda e: (not e.usable, e.score is None, -(e.score or 0.0), e.name))
