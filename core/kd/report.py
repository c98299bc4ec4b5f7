"""The experiment's report as a typed record (`ExperimentReport`), built from the finished runs, and its summary
(`RunSummary`): `report.json` for programs, `report.md` and `report.html` for people (core.kd.report_pages), and
the lines `lungkd run`, `lungkd runs` and the Studio show, each rendered once here.

Reports written before the schema (version 1, the same keys) load as they are; nothing was renamed.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, model_serializer

from lungkd.core.kd.jobs import FinishedRun, run_name
from lungkd.core.metrics import mean_std, scores_from_logits
from lungkd.core.models.card import ReliabilityBin, Role
from lungkd.core.recipes import ExperimentRecipe, StudentSpec
from lungkd.core.selection import Selection
from lungkd.core.training.calibration import expected_calibration_error
from lungkd.core.workspace.status import BestEnsemble, RunSummary, StudentSummary, gain_text, number_text


class Record(BaseModel):
    """A part of a report: closed, immutable; NaN Scores are written as null."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ScoreSummary(Record):
    """Mean ± std of the Scores there are; none (no baseline trained, no class to score) is n = 0."""

    mean: float | None = None
    std: float | None = None
    n: int = 0

    @classmethod
    def of(cls, values: list[float | None]) -> "ScoreSummary":
        scored = [v for v in values if v is not None]
        if not scored:
            return cls()
        ms = mean_std(scored)
        return cls(mean=None if np.isnan(ms.mean) else ms.mean, std=None if np.isnan(ms.std) else ms.std, n=ms.n)

    def text(self) -> str:
        if not self.n:
            return "—"
        if self.n == 1:  # one model has no spread to give
            return f"{number_text(self.mean)} (one model)"
        return f"{number_text(self.mean)} ± {number_text(self.std)} (n={self.n})"


class RunCalibration(Record):
    temperature: float
    ece_before: float
    ece_after: float
    split: str
    cycles: int


class Interval(Record):
    """A 95 % patient-level bootstrap interval of the Score (core.metrics.BootstrapCI.to_dict)."""

    score: float | None = None
    low: float | None = None
    high: float | None = None
    alpha: float = 0.05
    n_boot: int = 0
    n_valid: int = 0
    n_patients: int = 0

    def text(self) -> str:
        return "n/a" if self.low is None else f"[{number_text(self.low)}, {number_text(self.high)}]"


class RunRow(Record):
    """One trained model: a teacher, a distilled student or a hard-label baseline, and its test Scores."""

    role: Role = "teacher"
    arch: str
    labels: str = "hard"
    seed: int
    epoch: int | None
    sp: float | None = None
    se: float | None = None
    score: float | None = None
    confusion: list[list[int]] | None = None
    selection_note: str = ""
    calibration: RunCalibration | None = None
    bootstrap: Interval | None = None

    @property
    def name(self) -> str:
        return run_name(self.role, self.arch, self.labels, self.seed)

    @classmethod
    def of(cls, run: FinishedRun, bootstrap: Interval | None) -> "RunRow":
        card, test = run.card, run.card.test
        calibration = card.calibration
        fitted = calibration is not None and calibration.temperature is not None
        return cls(role=run.role, arch=run.arch, labels=run.labels, seed=run.seed, epoch=card.selected_epoch,
                   sp=test.sp if test else None, se=test.se if test else None, score=test.score if test else None,
                   confusion=test.confusion if test else None, selection_note=card.selection_note,
                   calibration=RunCalibration(temperature=calibration.temperature, ece_before=calibration.ece_before,
                                              ece_after=calibration.ece_after, split=calibration.measured_on.split,
                                              cycles=calibration.measured_on.cycles) if fitted else None,
                   bootstrap=bootstrap)


class EnsemblePoint(Record):
    k: int
    sp: float | None
    se: float | None
    score: float | None


class CuratedEnsemble(EnsemblePoint):
    seeds: list[int]


class SecondGenerationRow(EnsemblePoint):
    arch: str
    labels: str


class StudentGroup(Record):
    """A [[students]] entry: its distilled students against their hard-label twins."""

    arch: str
    labels: str
    distilled: ScoreSummary
    baseline: ScoreSummary
    baseline_source: Literal["baseline runs", "the teachers"] | None = None
    gain: float | None = None


class ReliabilityDiagram(Record):
    """The reliability bins of a group of runs added up, before and after calibration."""

    name: str
    runs: int
    before: list[ReliabilityBin]
    after: list[ReliabilityBin]
    ece_before: float
    ece_after: float


class DatasetScore(Record):
    """A model's Scores on the cycles of one dataset (or of several together)."""

    cycles: int
    sp: float | None = None
    se: float | None = None
    score: float | None = None

    @classmethod
    def of(cls, logits: np.ndarray, labels: np.ndarray) -> "DatasetScore":
        scores = scores_from_logits(logits, labels).to_dict()
        return cls(cycles=len(labels), sp=scores["sp"], se=scores["se"], score=scores["score"])

    def text(self) -> str:
        return "—" if self.score is None else f"{number_text(self.score)} ({number_text(self.sp)} / " \
                                              f"{number_text(self.se)})"


class ModelScores(Record):
    """One model's (or ensemble's) row of a DatasetTable."""

    model: str  # "teacher seed 1", "ensemble of the 5 teachers", "student cnn6 mean_5 seed 1"
    datasets: list[DatasetScore]  # in the table's order of datasets
    pooled: DatasetScore | None = None  # every dataset's cycles together


class DatasetTable(Record):
    """Scores dataset by dataset: on the test cycles of each dataset trained on together (with the pooled Score
    the rest of the report gives), or on datasets the models never trained on (cross-dataset)."""

    datasets: list[str]
    parts: list[str]  # what of each dataset was scored: "test split", "every cycle", ...
    rows: list[ModelScores]


class ExperimentReport(Record):
    name: str
    selection: Selection
    data_fingerprint: str
    teacher_arch: str
    teachers: list[RunRow]
    teacher_summary: ScoreSummary
    ensembles: list[EnsemblePoint]
    curated: CuratedEnsemble | None = None
    students: list[RunRow] = []
    student_groups: list[StudentGroup] = []
    second_generation: SecondGenerationRow | None = None
    reliability: list[ReliabilityDiagram] = []
    per_dataset: DatasetTable | None = None  # when several datasets are trained on together
    cross_dataset: DatasetTable | None = None  # the recipe's [[evaluate]] datasets
    test_cycles: int
    train_cycles: int
    recipe: dict

    @model_serializer(mode="wrap")
    def _dump(self, handler) -> dict:
        """A report of one dataset writes exactly the keys it did before the dataset tables existed."""
        dumped = handler(self)
        return {k: v for k, v in dumped.items() if not (k in ("per_dataset", "cross_dataset") and v is None)}

    @classmethod
    def read(cls, path: str | Path) -> "ExperimentReport":
        return cls.model_validate_json(Path(path).read_bytes())

    def to_json(self) -> dict:
        return self.model_dump(mode="json")

    def summary(self) -> "RunSummary":
        """What `lungkd runs` and the Studio's Experiments page show beside an experiment."""
        best = max((e for e in self.ensembles if e.score is not None), key=lambda e: e.score, default=None)
        return RunSummary(
            teachers=self.teacher_summary.mean,
            ensemble=BestEnsemble(k=best.k, score=best.score) if best else None,
            students=[StudentSummary(arch=g.arch, labels=g.labels, score=g.distilled.mean, hard=g.baseline.mean,
                                     gain=g.gain) for g in self.student_groups],
            second_generation=self.second_generation.score if self.second_generation else None)

    def selection_notes(self) -> list[str]:
        """One line per model whose checkpoint selection found no qualifying epoch, naming the epoch it used."""
        return [f"{row.name}: {row.selection_note}." for row in self.teachers + self.students if row.selection_note]

    def headline(self) -> list[str]:
        """The result in a few lines, as `lungkd run` ends: best teacher, best ensemble, each student and its
        gain."""
        teachers = [t for t in self.teachers if t.score is not None]
        lines = []
        if teachers:
            best = max(teachers, key=lambda t: t.score)
            lines.append(f"best teacher: seed {best.seed}, Score {number_text(best.score)} "
                         f"(mean of {len(teachers)}: {self.teacher_summary.text()})")
        scored = [e for e in self.ensembles if e.score is not None]
        if scored:
            best = max(scored, key=lambda e: e.score)
            lines.append(f"best ensemble: the first {best.k} teachers, Score {number_text(best.score)}")
        for g in self.student_groups:
            hard = f"hard labels {g.baseline.text()}" + (" (the teachers)" if g.baseline_source == "the teachers"
                                                         else "")
            lines.append(f"student {g.arch} ({g.labels}): Score {g.distilled.text()}, {hard}, "
                         f"gain {gain_text(g.gain)}")
        if self.second_generation:
            lines.append(f"second generation: Score {number_text(self.second_generation.score)}")
        return lines + [f"note: {note}" for note in self.selection_notes()]


def _calibrations(name: str, runs: list[FinishedRun]) -> ReliabilityDiagram | None:
    """The reliability diagram of a group of runs (their bins added up), before and after calibration."""
    fitted = [r.card.calibration for r in runs if r.card.temperature is not None]
    if not fitted:
        return None
    diagram = {"name": name, "runs": len(fitted)}
    for when in ("before", "after"):
        bins = []
        for parts in zip(*(getattr(f, f"reliability_{when}") for f in fitted)):
            count = sum(p.count for p in parts)
            mean = (lambda key: sum(getattr(p, key) * p.count for p in parts if p.count) / count if count else None)
            bins.append({"low": parts[0].low, "high": parts[0].high, "count": count,
                         "confidence": mean("confidence"), "accuracy": mean("accuracy")})
        diagram[when], diagram[f"ece_{when}"] = bins, expected_calibration_error(bins)
    return ReliabilityDiagram.model_validate(diagram)


def _same_as_teachers(student: StudentSpec, recipe: ExperimentRecipe) -> bool:
    t = recipe.teachers
    return (student.arch, student.size, student.pretrained, student.train) == (t.arch, t.size, t.pretrained, t.train)


def build_report(recipe: ExperimentRecipe, data_fingerprint: str, teachers: list[FinishedRun],
                 ensembles: dict, groups: list[list[FinishedRun]], second: dict | None, *, train_cycles: int,
                 test_cycles: int, intervals: dict[str, Interval] | None = None,
                 per_dataset: DatasetTable | None = None, cross_dataset: DatasetTable | None = None
                 ) -> ExperimentReport:
    """The report from the finished runs (`intervals`: each run's bootstrap interval by its folder), the
    ensemble curve, the second generation and the Scores dataset by dataset."""
    intervals = intervals or {}
    teacher_rows = [RunRow.of(t, intervals.get(t.folder)) for t in teachers]
    students, groups_out = [], []
    reliability = [_calibrations(f"{recipe.teachers.arch} teachers", teachers)]
    for spec, runs in zip(recipe.students, groups):
        reliability.append(_calibrations(f"{spec.arch} students ({spec.labels})",
                                         [r for r in runs if r.role == "student"]))
        rows = [RunRow.of(r, intervals.get(r.folder)) for r in runs]
        students += rows
        distilled = ScoreSummary.of([r.score for r in rows if r.role == "student"])
        baseline = ScoreSummary.of([r.score for r in rows if r.role == "baseline"])
        source = "baseline runs"
        if not baseline.n and _same_as_teachers(spec, recipe):
            # A student of the teachers' own architecture and recipe on hard labels *is* a teacher.
            baseline, source = ScoreSummary.of([t.score for t in teacher_rows]), "the teachers"
        gain = distilled.mean - baseline.mean if baseline.n and distilled.n else None
        groups_out.append(StudentGroup(arch=spec.arch, labels=spec.labels, distilled=distilled, baseline=baseline,
                                       baseline_source=source if baseline.n else None, gain=gain))
    return ExperimentReport(
        name=recipe.name, selection=recipe.selection, data_fingerprint=data_fingerprint,
        teacher_arch=recipe.teachers.arch, teachers=teacher_rows,
        teacher_summary=ScoreSummary.of([t.score for t in teacher_rows]),
        ensembles=[EnsemblePoint.model_validate(e) for e in ensembles["first_k"]],
        curated=CuratedEnsemble.model_validate(ensembles["curated"]) if ensembles["curated"] else None,
        students=students, student_groups=groups_out,
        second_generation=SecondGenerationRow.model_validate(second) if second else None,
        reliability=[r for r in reliability if r is not None], per_dataset=per_dataset, cross_dataset=cross_dataset,
        test_cycles=int(test_cycles),
        train_cycles=int(train_cycles), recipe=recipe.to_dict())
