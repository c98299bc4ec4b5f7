"""The trained models a user can analyse with: every model folder with a card under the workspace, and
the ones LungKD ships (resources/models/). A scan, so models of `lungkd train` runs, experiments and
copied-in folders all appear without being registered anywhere."""
from __future__ import annotations

from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path

from lungkd.core.errors import LungKDError
from lungkd.core.models.card import CARD_FILE, ModelCard, read_model_card
from lungkd.core.workspace.layout import MODEL_FOLDER


@dataclass(frozen=True)
class ModelEntry:
    name: str  # what it is, from its card: "demo-cpu · student cnn6 mean_3 · seed 1"; else where it sits
    arch: str
    score: float | None  # the ICBHI Score on its test set, when it was measured
    path: Path
    description: str = ""
    scored_on: str = ""  # the data the Score was measured on, e.g. "the test split of ICBHI_final_database"


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
    try:
        card = read_model_card(folder)
    except LungKDError:  # a damaged card: nothing to analyse with; opening it says why
        return None
    if card is None:
        return None
    where = folder.parent if folder.name == MODEL_FOLDER and folder.parent != root else folder
    place = where.relative_to(root).as_posix() if where != root else root.name
    name = card_name(card) or (place if card.description else f"{place} ({card.architecture})")
    return ModelEntry(name, card.architecture, card.score, folder, card.description, _scored_on(card))


def find_models(*roots: Path) -> list[ModelEntry]:
    """Model folders (weights + lungkd.json) under each root, best Score first, unscored last; roots that
    do not exist are skipped. Hidden folders (unfinished atomic writes) are left out."""
    entries = []
    for root in (Path(r) for r in roots):
        if not root.is_dir():
            continue
        for card in root.rglob(CARD_FILE):
            if any(part.startswith(".") for part in card.relative_to(root).parts):
                continue
            entry = _entry(card.parent, root)
            if entry is not None:
                entries.append(entry)
    return sorted(entries, key=lambda e: (e.score is None, -(e.score or 0.0), e.name))
