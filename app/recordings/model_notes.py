"""Beside the model picker: what the chosen model was trained on, from its card, with a warning sign when
it learnt from synthetic recordings only, is uncalibrated or cannot tell which recordings are unlike its
training data (the reasons in the tooltip)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QLabel

from lungkd.core.errors import LungKDError
from lungkd.core.models.card import model_notes, read_model_card
from lungkd.core.text import html_text

from ..theme import NOTICE


class ModelNotesLabel(QLabel):
    def __init__(self, parent=None):
        super().__init__(parent, objectName="model_notes")

    def show_model(self, folder: Path | None) -> None:
        try:
            card = read_model_card(folder) if folder else None
        except LungKDError as exc:  # a damaged card: the picker says why, and so does this
            self.setText(f"<span style='color:{NOTICE.name()}'>⚠ {html_text(exc.problem.message)}</span>")
            self.setToolTip(f"<qt>{html_text(str(exc))}</qt>")
            return
        if card is None:
            self.clear()
            self.setToolTip("")
            return
        notes = model_notes(card)
        warnings = notes.warnings()
        # the card's words (what the data was called) are text, never markup: a card comes from anyone
        source = html_text(f"⚠ trained on {notes.source}" if warnings else f"trained on {notes.source}")
        calibration = "calibrated" if notes.calibrated else "uncalibrated"
        amount = html_text(f"{notes.amount} · {calibration}" if notes.amount else calibration)
        colour = NOTICE.name() if warnings else "#3a404b"
        self.setText(f"<span style='color:{colour}'>{source}<br><small>{amount}</small></span>")
        self.setToolTip("\n".join(warnings) or "Calibrated on cycles it did not train on; cycles outside its training "
                                                "data are greyed.")
