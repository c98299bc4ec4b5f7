"""How each dataset format's own labels become LungKD's four cycle classes (docs/datasets.md), and the tally
of what a reader found and left out.

A label map sends a dataset's label (SPRSound's "Fine Crackle", HF_Lung's "D", a table's "crackle") to one of
normal, crackle, wheeze, both, or "none" to leave the event out. Every format has a default map; a recipe's
`label_map` changes single entries of it. Labels are matched without regard to letter case or the spaces
around them.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, Mapping

from lungkd.core.labels import CLASS_NAMES
from lungkd.core.labels import flags_from_label

LabelTarget = Literal["normal", "crackle", "wheeze", "both", "none"]
LEAVE_OUT = "none"

# SPRSound's event types (BioCAS 2022-2025 releases); HF_Lung's adventitious intervals (its inspiration "I"
# and expiration "E" are breathing phases, joined into cycles, not labels); tables and Audacity tracks name
# the four classes themselves.
DEFAULT_LABEL_MAPS: dict[str, dict[str, LabelTarget]] = {
    "sprsound": {"Normal": "normal", "Fine Crackle": "crackle", "Coarse Crackle": "crackle", "Wheeze": "wheeze",
                 "Rhonchi": "wheeze", "Stridor": "wheeze", "Wheeze+Crackle": "both"},
    "hf_lung": {"D": "crackle", "Wheeze": "wheeze", "Rhonchi": "wheeze", "Stridor": "wheeze"},
    "table": {name: name for name in CLASS_NAMES},
    "audacity": {name: name for name in CLASS_NAMES},
}


def _key(label: str) -> str:
    return " ".join(label.split()).casefold()


@dataclass(frozen=True)
class LabelMap:
    """A format's default map with a recipe's changes; `entries` keeps the spelling shown to people."""

    entries: dict[str, LabelTarget]

    @classmethod
    def for_format(cls, fmt: str, changes: Mapping[str, LabelTarget] | None = None) -> "LabelMap":
        entries = dict(DEFAULT_LABEL_MAPS.get(fmt, {}))
        for label, target in (changes or {}).items():
            for old in [k for k in entries if _key(k) == _key(label)]:
                del entries[old]  # the recipe's spelling replaces the default's
            entries[label] = target
        return cls(entries)

    def target(self, label: str) -> LabelTarget | None:
        """Where `label` goes; None when the map does not name it."""
        wanted = _key(label)
        return next((t for k, t in self.entries.items() if _key(k) == wanted), None)

    def spelling(self, label: str) -> str:
        """The map's spelling of `label` (so "fine crackle" and "Fine Crackle" count as one label)."""
        wanted = _key(label)
        return next((k for k in self.entries if _key(k) == wanted), label)

    @property
    def phrase(self) -> str:
        """The entries as a recipe writes them, for fixes: `{ "Stridor" = "wheeze", ... }`."""
        return "{ " + ", ".join(f'"{k}" = "{v}"' for k, v in self.entries.items()) + " }"


def class_of(target: LabelTarget) -> int | None:
    """The class index of a map target; None for "none"."""
    return None if target == LEAVE_OUT else CLASS_NAMES.index(target)


def target_flags(target: LabelTarget) -> tuple[int, int]:
    """(crackle, wheeze) of a map target; (0, 0) for normal and none."""
    index = class_of(target)
    return (0, 0) if index is None else flags_from_label(index)


def unknown_label_fix(label: str) -> str:
    return (f'map it in the recipe\'s [data]: label_map = {{ "{label}" = "wheeze" }} (normal, crackle, wheeze, '
            'both, or "none" to leave it out), or correct the label.')


@dataclass
class Tally:
    """What a reader found: each source label's count (in the map's spelling) and, by reason, what it left out
    (`left_out[(what, why)]` = how many, e.g. ("recordings", "annotated Poor Quality") = 3)."""

    labels: Counter = field(default_factory=Counter)
    left_out: Counter = field(default_factory=Counter)

    def leave_out(self, what: str, why: str, amount: float = 1) -> None:
        self.left_out[(what, why)] += amount

    def add(self, other: "Tally") -> None:
        self.labels.update(other.labels)
        self.left_out.update(other.left_out)
