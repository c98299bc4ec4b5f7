"""How the run plots tell runs apart, the way a figure in a paper does: the colour says the kind of run (the
teachers, each student's soft labels, each hard-label baseline), the line style and marker say the seed. Every
curve of an experiment has its own look — the paper's Table 1 recipe trains 55 runs, 11 kinds of 5 seeds — and
the legend stays short enough to read: one entry per kind, then one per seed."""
from __future__ import annotations

import re
from dataclasses import dataclass

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor

# Okabe & Ito's colour-blind-safe qualitative palette (black left out: it reads as an axis; yellow too: it fades on
# white), then hues far from those six for experiments with more kinds of run (the paper's Table 1 has 11).
KIND_COLOURS = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#D55E00", "#56B4E9",
                "#7F3C8D", "#8C564B", "#9A9A00", "#A50026", "#00A6A6", "#404040")
SEED_LINES = (Qt.PenStyle.SolidLine, Qt.PenStyle.DashLine, Qt.PenStyle.DotLine, Qt.PenStyle.DashDotLine,
              Qt.PenStyle.DashDotDotLine)
SEED_MARKERS = ("o", "s", "t", "d", "star", "+", "x", "p", "h", "t1")
KEY_COLOUR = QColor("#5a5f68")  # the seeds' legend entries: a style without a kind
_RUN = re.compile(r"^(?P<kind>.*?)\s*seed (?P<seed>\d+)$")  # core.kd.jobs.run_name: "student cnn6 mean_5 seed 1"


@dataclass(frozen=True)
class RunStyle:
    colour: QColor
    line: Qt.PenStyle
    marker: str


class RunStyles:
    """Styles given as runs appear: a new kind takes the next colour, a new seed number the next line style (the
    same seed number has the same style in every kind, so the legend's seed entries hold for all of them)."""

    def __init__(self) -> None:
        self.kinds: dict[str, int] = {}
        self.seeds: dict[int, int] = {}

    def style(self, run: str) -> RunStyle:
        match = _RUN.match(run)
        kind = self.kinds.setdefault(match["kind"] if match else run, len(self.kinds))
        seed = self.seeds.setdefault(int(match["seed"]), len(self.seeds)) if match else 0
        return _style(kind, seed)

    def kind_styles(self) -> list[tuple[str, RunStyle]]:
        """The legend's kinds, drawn solid, in the order they appeared."""
        return [(kind, RunStyle(_style(index, 0).colour, Qt.PenStyle.SolidLine, ""))
                for kind, index in self.kinds.items()]

    def seed_styles(self) -> list[tuple[str, RunStyle]]:
        """The legend's seeds, in a neutral colour; none while every run has the same seed (nothing to tell)."""
        if len(self.seeds) < 2:
            return []
        return [(f"seed {seed}", RunStyle(KEY_COLOUR, SEED_LINES[index % len(SEED_LINES)],
                                          SEED_MARKERS[index % len(SEED_MARKERS)]))
                for seed, index in sorted(self.seeds.items())]

    def clear(self) -> None:
        self.kinds.clear()
        self.seeds.clear()


def _style(kind: int, seed: int) -> RunStyle:
    colour = QColor(KIND_COLOURS[kind % len(KIND_COLOURS)])
    if kind >= len(KIND_COLOURS):  # beyond the palette, the same hues again, darker each time round
        colour = colour.darker(100 + 40 * (kind // len(KIND_COLOURS)))
    if seed >= len(SEED_LINES):  # beyond the line styles, the same styles again, lighter each time round
        colour = colour.lighter(100 + 25 * (seed // len(SEED_LINES)))
    return RunStyle(colour, SEED_LINES[seed % len(SEED_LINES)], SEED_MARKERS[seed % len(SEED_MARKERS)])
