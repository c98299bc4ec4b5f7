"""Why this class, over the spectrogram: the regions of a cycle that moved the model towards its class
(core.analysis.explain's integrated gradients), drawn in red over the recording view's spectrogram, the more
opaque the more they weighed. The model's weights lie on its mel grid; `on_linear_grid` maps them to the
display's linear hertz."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF

from lungkd.core.analysis.explain import CycleExplanation, on_linear_grid
from lungkd.core.labels import CLASS_NAMES

from .recording_view import RecordingView

COLOUR = (255, 40, 40)
SHOWN_FROM = 0.15  # of the strongest cell: weaker weight is left clear, so the spectrogram shows through
MOST_OPAQUE = 220


def overlay_rgba(weights: np.ndarray) -> np.ndarray:
    """(columns, rows, 4) RGBA: red, its opacity rising with the weight from SHOWN_FROM of the strongest."""
    peak = float(weights.max())
    strength = np.clip((weights / peak - SHOWN_FROM) / (1 - SHOWN_FROM), 0, 1) if peak > 0 else np.zeros_like(weights)
    rgba = np.zeros((*weights.shape, 4), dtype=np.ubyte)
    rgba[..., :3] = COLOUR
    rgba[..., 3] = (MOST_OPAQUE * strength).astype(np.ubyte)
    return rgba


class ExplanationOverlay:
    """The explanation of one cycle at a time on a RecordingView's spectrogram."""

    def __init__(self, view: RecordingView):
        self.view = view
        self.explanation: CycleExplanation | None = None
        self.image = pg.ImageItem(axisOrder="col-major")
        self.image.setZValue(15)  # above the spectrogram and the cycle boundaries, below the selection
        self.image.setVisible(False)
        view.spec.addItem(self.image, ignoreBounds=True)

    def show(self, explanation: CycleExplanation) -> None:
        top_hz = self.view.recording.sample_rate / 2 if self.view.recording else float(explanation.hz[-1])
        grid = on_linear_grid(explanation, min(top_hz, float(explanation.hz[-1]) * 1.05))
        self.image.setImage(overlay_rgba(grid.weights), autoLevels=False, levels=None)
        columns, rows = grid.weights.shape
        self.image.setRect(QRectF(grid.start, 0, columns * grid.seconds_per_column, rows * grid.hz_per_row))
        self.image.setVisible(True)
        self.explanation = explanation

    def clear(self) -> None:
        self.image.setVisible(False)
        self.explanation = None

    def caption(self) -> str:
        e = self.explanation
        if e is None:
            return ""
        name = CLASS_NAMES[e.target]
        return (f"Why {name}: red where the sound of the cycle at {e.start:.2f}–{e.end:.2f} s moved the model towards "
                f"{name} (its uncalibrated probability {e.probability:.0%}); the stronger, the more opaque.")
