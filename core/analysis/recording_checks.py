"""What an analysis says about the recording beside its predictions: its quality (quality.py: the recording's
verdict and each cycle's, with their reasons) and how the patient breathes (breathing.py: rate and I:E ratio,
each with its confidence), from the same decoded samples and the same cycles the model classified.

The breathing comes from the cycles' own source: an expert's annotation (or cycles a person gave) is as sure as
the person, the automatic segmentation as sure as it is, and fixed windows give no rate (the reason says why).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from lungkd.core.analysis.band_levels import measure_bands
from lungkd.core.analysis.breathing import Breathing, assess_breathing, breathing_of_cycles
from lungkd.core.analysis.quality import BANDS, RecordingQuality, assess_quality
from lungkd.core.analysis.segmentation import Segmentation


@dataclass(frozen=True)
class RecordingChecks:
    quality: RecordingQuality
    breathing: Breathing


def check_recording(samples: np.ndarray, sr: int, spans: Sequence[tuple[float, float]], source: str,
                    segmentation: Segmentation | None) -> RecordingChecks:
    """Quality of the recording and of each span (in their order), and the breathing: from the segmentation
    when the cycles are its own, else from the spans as a person placed them (`source`: annotation, edited)."""
    levels = measure_bands(samples, sr, BANDS)  # the breath band is among them: one pass serves both checks
    quality = assess_quality(samples, sr, list(spans), levels)
    if segmentation is not None:
        breathing = assess_breathing(samples, sr, segmentation, levels)
    else:
        breathing = breathing_of_cycles(samples, sr, spans, 1.0, source, whole_only=False, levels=levels)
    return RecordingChecks(quality, breathing)


def quality_words(verdict: str | None, reasons: Sequence[str]) -> str:
    """'good', or the verdict with its reasons: 'poor: clipped 3.0% of the time: …'."""
    if verdict is None:
        return "not checked"
    return f"{verdict}: {' '.join(reasons)}" if reasons else verdict


def breathing_words(rate: float | None, rate_confidence: float, ie_ratio: float | None, ie_confidence: float,
                    note: str) -> str:
    """'18 breaths/min (90% sure), I:E 1:2.0 (60% sure)', or what is missing and why."""
    if rate is None:
        return f"breathing rate unknown: {note}" if note else "breathing rate unknown"
    words = f"{rate:.0f} breaths/min ({rate_confidence:.0%} sure)"
    if ie_ratio is None:
        return f"{words}, no I:E ratio" + (f" ({note})" if note else "")
    return f"{words}, I:E 1:{1 / ie_ratio:.1f} ({ie_confidence:.0%} sure)"
