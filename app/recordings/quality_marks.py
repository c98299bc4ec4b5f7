"""How the Recordings room shows a recording's quality and breathing (core/analysis/recording_checks.py): the
verdict in its colour with the reasons in words for a tooltip, the breathing rate and I:E ratio with their
confidence, and the hatching that marks a prediction on a cycle too poorly recorded to mean much."""
from __future__ import annotations

from typing import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QBrush, QColor

from lungkd.core.analysis.predict import RecordingAnalysis
from lungkd.core.analysis.quality import GOOD, POOR, WARNING
from lungkd.core.text import html_text

from ..theme import MISMATCH, MUTED, NOTICE, translucent

QUALITY_COLOURS = {GOOD: QColor(64, 120, 64), WARNING: NOTICE, POOR: MISMATCH}
POOR_WORDS = "poor recording quality: the prediction means little"


def poor_brush() -> QBrush:
    """The hatching over a prediction on a poor cycle."""
    return QBrush(translucent(MISMATCH, 200), Qt.BrushStyle.BDiagPattern)


def quality_colour(verdict: str | None) -> QColor:
    return QUALITY_COLOURS.get(verdict, MUTED)


def verdict_html(verdict: str | None) -> str:
    mark = {WARNING: "⚠ ", POOR: "⚠ "}.get(verdict, "")
    return f"<span style='color:{quality_colour(verdict).name()}'>{mark}quality {verdict or 'not checked'}</span>"


def reasons_html(verdict: str | None, reasons: Sequence[str], what: str = "recording") -> str:
    """The reasons in words, for a tooltip."""
    if verdict is None:
        return ""
    if not reasons:
        return f"The {what}'s quality is {verdict}: nothing found that would keep it from being judged."
    return f"<b>The {what}'s quality is {verdict}</b>:<br>" + "<br>".join(f"• {html_text(r)}" for r in reasons)


def checks_html(analysis: RecordingAnalysis | None) -> str:
    """The verdict and the breathing in one line: 'quality poor · 18 breaths/min (90% sure), I:E …'."""
    if analysis is None:
        return ""
    return f"{verdict_html(analysis.quality)} · {html_text(analysis.breathing_words)}"


def poor_cycles_html(cycles) -> str:
    """'⚠ 3 of 8 cycles poorly recorded', or '' when none is."""
    poor = sum(c.poor for c in cycles)
    return (f"<span style='color:{MISMATCH.name()}'>⚠ {poor} of {len(cycles)} cycles poorly recorded</span>"
            if poor else "")
