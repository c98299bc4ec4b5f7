"""Beside the model picker: what the chosen model was trained on, from its card, with a warning sign when
it learnt from synthetic recordings only, is uncalibrated or cannot tell which recordings are unlike its
training data (the reasons in the tooltip)."""
from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import QLabel

from lungkd.core.models.card import model_notes, read_model_card

from ..theme import NOTICE


class ModelNotesLabel(QLabel):
    def __init__(self, parent=None):
        super().__init__(parent, objectName="model_notes")

    def show_model(self, folder: Path | None) -> None:
        card = read_model_card(folder) if folder else None
        if card is None:
            self.clear()
            self.setToolTip("")
            return
        notes = model_notes(card)
        warnings = notes.warnings()
        source = f"⚠ trained on {notes.source}" if warnings else f"trained on {notes.source}"
        calibration = "calibrated" if notes.calibrated else "uncalibrated"
        amount = f"{notes.amount} · {calibration}" if notes.amount else calibration
        colour = NOTICE.name() if warnings else "#3a404b"
        self.setText(f"<span style='color:{colour}'>{source}<br><small>{amount}</small></span>")
        self.setToolTip("\n".join(warnings) or "Calibrated on cycles it did not train on; cycles unlike its training "
                                                "data are greyed.")
