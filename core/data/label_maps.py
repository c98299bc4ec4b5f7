"""How each dataset format's own labels become LungKD's four cycle classes (docs/datasets.md), and the tally
of what a reader found and left out.

A label map sends a dataset's label (SPRSound's "Fine Crackle", HF_Lung's "D", a table's "crackle") to one of
normal, crackle, wheeze, both, or "none" to leave the event out. Every format has a default map; a recipe's
`label_map` changes single entries of it. Labels are matched without regard to letter case or the spaces
around them.
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Literal, Mapping

from lungkd.core.errors import Problem

from lungkd.core.labels import CLASS_NAMES, flags_from_label

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

    def apply(self, label: str, tally: "Tally", what: str) -> LabelTarget | None:
        """Where `label` goes, counted in `tally` (`what` names the things labelled: events, intervals, cycles);
        None when the map leaves it out. UnknownLabel when the map does not name it (counted as left out too)."""
        tally.labels[self.spelling(label)] += 1
        target = self.target(label)
        if target is None:
            tally.leave_out(what, f"labelled '{label}', which no label map names")
            raise UnknownLabel(label)
        if target == LEAVE_OUT:
            tally.leave_out(what, f"labelled '{self.spelling(label)}' (label_map: none)")
            return None
        return target


class UnknownLabel(ValueError):
    """A label the map does not name; `fix` says how a recipe maps it."""

    def __init__(self, label: str):
        super().__init__(f"the label '{label}' is not in the label map")
        self.fix = (f'map it in the recipe\'s [data]: label_map = {{ "{label}" = "wheeze" }} (normal, crackle, '
                    'wheeze, both, or "none" to leave it out), or correct the label.')


def class_of(target: LabelTarget) -> int | None:
    """The class index of a map target; None for "none"."""
    return None if target == LEAVE_OUT else CLASS_NAMES.index(target)


def target_flags(target: LabelTarget) -> tuple[int, int]:
    """(crackle, wheeze) of a map target; (0, 0) for normal and none."""
    index = class_of(target)
    return (0, 0) if index is None else flags_from_label(index)


def time_value(value, what: str, unit: str = "seconds") -> float:
    """A time a label file gives (text, or a number in JSON), in its `unit`; ValueError saying what is wrong."""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ValueError(f"the {what} {value!r} is not a number of {unit}")
    try:
        number = float(value)
    except ValueError:
        raise ValueError(f"the {what} '{value}' is not a number of {unit}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"the {what} {value} is not a time in the recording")
    return number


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


def labelled_rows(rows: Iterable[tuple[int, Any]], parse: Callable[[Any], tuple[float, float, str, Any]],
                  label_map: LabelMap, tally: Tally, problems: list[Problem], *, what: str, path, fix: str,
                  phases: tuple[str, ...] = ()) -> Iterator[tuple[int, float, float, str | None, Any]]:
    """(line, start, end, target, rest) of each row `parse` reads as (start, end, label, rest), the label sent
    through the map (target None: the map leaves it out) unless it is one of `phases` (HF_Lung's I and E, which
    are kept as they are). A row that cannot be read, or whose label the map does not name, is a Problem with
    the file, the line and the fix, and is skipped."""
    for line_no, row in rows:
        try:
            start, end, label, rest = parse(row)
            target = label.upper() if label.upper() in phases else label_map.apply(label, tally, what)
        except UnknownLabel as unknown:
            problems.append(Problem(str(path), f"{unknown}; line skipped.", unknown.fix, line_no))
            continue
        except ValueError as reason:
            problems.append(Problem(str(path), f"{reason}; line skipped.", fix, line_no))
            tally.leave_out(what, "unreadable (named in the warnings)")
            continue
        yield line_no, start, end, target, rest
