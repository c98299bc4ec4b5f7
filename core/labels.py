"""The four ICBHI cycle classes (docs/method.md section 1): label = crackle + 2 * wheeze."""
from __future__ import annotations

CLASS_NAMES: tuple[str, ...] = ("normal", "crackle", "wheeze", "both")
NUM_CLASSES = len(CLASS_NAMES)


def label_from_flags(crackle: int, wheeze: int) -> int:
    return int(crackle) + 2 * int(wheeze)


def flags_from_label(label: int) -> tuple[int, int]:
    return label & 1, label >> 1
