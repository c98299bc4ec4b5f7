"""Checkpoint selection (docs/method.md section 8) as an object: which splits a protocol needs, which one it
selects on, the value it gives an epoch, what it holds out for calibration and how a report names it.

A `Selection` is a `StrEnum`, so a recipe writes it as text (`selection = "best_val"`), JSON and TOML carry
its name, and code asks the object instead of comparing strings.
"""
from __future__ import annotations

import math
from enum import StrEnum

MIN_SE_FOR_SELECTION = 5.0  # the papers ignore epochs whose Se is at most 5 %
SPLIT_WORDS = {"train": "training", "test": "test", "val": "validation", "calibration": "calibration"}


class Selection(StrEnum):
    BEST_TEST = "best_test"  # the papers' protocol: the test set doubles as validation
    BEST_VAL = "best_val"  # the honest alternative: a patient-wise validation split carved from train
    LAST = "last"  # the last epoch, nothing selected on any held-out set

    @property
    def selects_on(self) -> str | None:
        """The split whose Score picks the epoch; None for `last`."""
        return {"best_test": "test", "best_val": "val"}.get(self.value)

    @property
    def needs(self) -> tuple[str, ...]:
        """The splits a run with this protocol trains or selects on (`last` scores on test when it has audio,
        but needs none)."""
        return ("train",) + ((self.selects_on,) if self.selects_on else ())

    @property
    def holds_out(self) -> str:
        """The split carved from train for this protocol: the validation split it selects on, else the
        calibration split its probabilities are calibrated on (core.data.sources)."""
        return "val" if self is Selection.BEST_VAL else "calibration"

    @property
    def explanation(self) -> str:
        """What the protocol means, as a report says it beside its name."""
        return {"best_test": "the papers' protocol: the test set doubles as validation",
                "best_val": "the epoch best on a patient-wise validation split carved from train",
                "last": "the last epoch; nothing selected on a held-out set"}[self.value]

    def epoch_value(self, test: dict | None, val: dict | None) -> float:
        """An epoch's value for this protocol from its test and validation scores (`Scores.to_dict()`):
        the selected split's Score, or -inf when the epoch does not qualify (no scores, or Se at most
        MIN_SE_FOR_SELECTION). `last` ranks every epoch alike: the latest wins."""
        if self.selects_on is None:
            return 0.0
        scores = test if self.selects_on == "test" else val
        if not scores or scores["score"] is None or (scores["se"] or 0.0) <= MIN_SE_FOR_SELECTION:
            return -math.inf
        return scores["score"]

    def prefers(self, value: float, best: float) -> bool:
        """Whether an epoch of `value` replaces the best so far (ties keep the earlier epoch, except for `last`)."""
        return self.selects_on is None or value > best

    def fallback_note(self, best_value: float, epoch: int) -> str:
        """What to tell the user when no epoch qualified: the selection kept the first epoch."""
        if self.selects_on is None or best_value > -math.inf:
            return ""
        return (f"no epoch reached Se > {MIN_SE_FOR_SELECTION:g} % on the {SPLIT_WORDS[self.selects_on]} set, so "
                f"{self.value} had nothing to choose from and epoch {epoch} (the first) was used")
