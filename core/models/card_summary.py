"""A model card in words: what a person reads before using a model someone else trained — its architecture
and input, how it was made, what it learnt from, its Scores with the data they were measured on, its
calibration and limits, and the versions that made it. Plain text, one section per question: the Studio's
import dialog, `lungkd models import` and the README of an exported model all show these sections."""
from __future__ import annotations

from dataclasses import dataclass

from lungkd.core.models.card import Calibration, ModelCard, StatisticsCard, TestScores, model_notes


@dataclass(frozen=True)
class CardSection:
    title: str
    lines: tuple[str, ...]


def _architecture(card: ModelCard) -> list[str]:
    lines = [f"{card.architecture} ({card.size} size), {card.num_classes} classes: {', '.join(card.classes)}"]
    if card.inputs is not None:
        prep, kind = card.inputs.preparation, card.inputs.kind
        lines.append(f"input: {prep.clip_seconds:g} s clips at {prep.sample_rate / 1000:g} kHz ({prep.pad} padding), "
                     f"{kind} features")
        policy = card.inputs.prompts
        if policy is not None:
            lines.append(f"prompts from the patient's {', '.join(policy.parts)}; missing values worded as "
                         f"'{policy.missing}', chest location from the {policy.location_source}")
    if card.description:
        lines.append(card.description)
    return lines


def _how_made(card: ModelCard) -> list[str]:
    what = " ".join(filter(None, (card.role, f"on {card.training_labels} labels" if card.training_labels else "")))
    where = (f"of experiment {card.experiment}" if card.experiment else f"of run {card.run}" if card.run else "")
    seed = f", seed {card.seed}" if card.seed is not None else ""
    lines = [" ".join(filter(None, (what or "model", where))) + seed]
    if card.selection:
        epoch = f", epoch {card.selected_epoch}" if card.selected_epoch is not None else ""
        lines.append(f"checkpoint selected by {card.selection}{epoch}" + (f" ({card.selection_note})"
                                                                         if card.selection_note else ""))
    lines.append(f"started from {card.pretrained}" if card.pretrained else "started from random weights")
    if card.parent is not None:
        lines.append(f"parent model: {card.parent.name}" + (f" ({card.parent.how})" if card.parent.how else ""))
    made = card.made_by or {}
    if isinstance(made.get("command"), str):
        lines.append(f"made by: {made['command']}")
    recipe = made.get("recipe")
    if isinstance(recipe, dict) and isinstance(recipe.get("description"), str):
        name = recipe.get("name")
        lines.append(f"recipe {name}: {recipe['description']}" if isinstance(name, str) else
                     f"recipe: {recipe['description']}")
    return lines


def _training_data(card: ModelCard) -> list[str]:
    notes = model_notes(card)
    lines = [notes.trained_on]
    data = card.training_data
    if data is not None and data.train is not None:
        cycles = ", ".join(f"{name} {count}" for name, count in data.train.cycles.items())
        lines.append(f"training cycles: {cycles}; devices: {', '.join(data.train.devices)}")
    return lines + notes.warnings()


def _scores(test: TestScores | None, card: ModelCard) -> list[str]:
    if test is None or test.score is None:
        return ["not scored"]
    data = card.test_data
    where = f" on the {data.split} split of {data.dataset} ({data.cycles} cycles)" if data else ""
    return [f"Sp {test.sp:.2f}, Se {test.se:.2f}, Score {test.score:.2f}{where}"]


def _calibration(calibration: Calibration | None, statistics: StatisticsCard | None) -> list[str]:
    if calibration is None or calibration.temperature is None:
        reason = calibration.reason if calibration is not None and calibration.reason else "no temperature was fitted"
        lines = [f"uncalibrated: {reason}"]
    else:
        fitted = calibration.fitted_on
        lines = [f"temperature {calibration.temperature:.3f}"
                 + (f", fitted on {fitted.cycles} {fitted.split} cycles" if fitted else "")]
        if calibration.ece_before is not None and calibration.ece_after is not None:
            lines.append(f"expected calibration error {calibration.ece_before:.3f} before, {calibration.ece_after:.3f} "
                         "after")
    if statistics is not None and statistics.fitted:
        lines.append(f"marks cycles unlike its training data beyond a distance of {statistics.limit:.2f} (the "
                     f"{statistics.limit_quantile:g}th percentile of {statistics.held_out_cycles} held-out cycles)")
    else:
        lines.append("cannot mark cycles unlike its training data (no statistics of it)")
    return lines


def card_sections(card: ModelCard) -> list[CardSection]:
    versions = ", ".join(f"{name} {version}" for name, version in card.versions.items()) or "not recorded"
    return [CardSection(title, tuple(lines)) for title, lines in (
        ("Architecture", _architecture(card)),
        ("How it was made", _how_made(card)),
        ("Training data", _training_data(card)),
        ("Scores", _scores(card.test, card)),
        ("Calibration and limits", _calibration(card.calibration, card.training_statistics)),
        ("Versions", [versions]),
    )]


def card_text(card: ModelCard) -> str:
    """The sections as plain text: a title line, its lines indented beneath, a blank line between sections."""
    return "\n\n".join(f"{section.title}\n" + "\n".join(f"  {line}" for line in section.lines)
                     for section in card_sections(card))
