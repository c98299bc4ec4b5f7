"""The CPU demo experiment end to end: how long each stage takes, and whether it shows the method.

    python -m bench.demo [--recipe resources/recipes/demo-cpu.toml] [--workspace DIR]

Runs the recipe in a fresh workspace (data generation and input preparation included) and prints, per
stage, the wall time and the CPU time this process and its workers used, the machine's load, and the
demo's promises: every teacher's test Score >= 65, the k-teacher ensemble at or above the mean teacher,
the students far above 50 (the all-normal answer). CPU time is what an otherwise idle machine would need
at most in wall time divided by its cores; it does not grow when other jobs share the machine.
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from importlib.resources import files
from pathlib import Path

from bench.machine import describe
from lungkd.core.kd.executors import create_executor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.recipes import load_experiment

STAGES = ("data", "teachers", "logits", "ensembles", "students", "second_generation", "report")


def cpu_seconds() -> float:
    own, workers = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + workers.ru_utime + workers.ru_stime


class StageClock:
    """Wall and CPU time from one stage's first event to the next stage's."""

    def __init__(self) -> None:
        self.current: str | None = None
        self.marks: list[tuple[str, float, float]] = []

    def __call__(self, event) -> None:
        stage = event.stage if event.stage in STAGES else None
        if stage and stage != self.current:
            self.current = stage
            self.marks.append((stage, time.perf_counter(), cpu_seconds()))

    def table(self, end_wall: float, end_cpu: float) -> list[tuple[str, float, float]]:
        rows: dict[str, list[float]] = {}
        ends = self.marks[1:] + [("end", end_wall, end_cpu)]
        for (stage, wall, cpu), (_, next_wall, next_cpu) in zip(self.marks, ends):
            totals = rows.setdefault(stage, [0.0, 0.0])
            totals[0] += next_wall - wall
            totals[1] += next_cpu - cpu
        return [(stage, *rows[stage]) for stage in STAGES if stage in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=Path(str(files("lungkd.resources") / "recipes" / "demo-cpu.toml")))
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--executor", default="process", choices=("inprocess", "process"),
                        help="who trains the runs (default: process, as `lungkd run` and the Studio)")
    args = parser.parse_args()
    recipe = load_experiment(args.recipe)
    print(describe())
    print(f"load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        workspace = args.workspace or Path(tmp) / "ws"
        clock = StageClock()
        start_wall, start_cpu = time.perf_counter(), cpu_seconds()
        executor = create_executor(args.executor)
        try:
            report = Experiment(recipe, workspace, on_event=clock, executor=executor).run()
        finally:
            executor.close()
        end_wall, end_cpu = time.perf_counter(), cpu_seconds()
    print(f"load average after:  {' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
    print(f"recipe {args.recipe}")
    print(f"{'stage':<20}{'wall s':>9}{'CPU s':>9}")
    for stage, wall, cpu in clock.table(end_wall, end_cpu):
        print(f"{stage:<20}{wall:>9.1f}{cpu:>9.1f}")
    print(f"{'whole recipe':<20}{end_wall - start_wall:>9.1f}{end_cpu - start_cpu:>9.1f}")
    print(f"(CPU s / {os.cpu_count()} cores = {(end_cpu - start_cpu) / os.cpu_count():.0f} s: the least wall time "
          "an idle machine of this kind needs)\n")

    teachers = [t.score for t in report.teachers]
    mean_teacher = report.teacher_summary.mean
    ensemble = report.ensembles[-1].score
    print("teachers' test Scores: " + ", ".join(f"{s:.1f}" for s in teachers) + f" (mean {mean_teacher:.1f})")
    print(f"ensemble of all {len(teachers)} teachers (mean of logits): {ensemble:.1f}")
    for group in report.student_groups:
        print(f"student {group.arch} on {group.labels}: {group.distilled.mean:.1f}; "
              f"the same on hard labels: {group.baseline.mean:.1f}")
    checks = {
        "every teacher >= 65": min(teachers) >= 65,
        "ensemble >= mean teacher": ensemble >= mean_teacher,
        "students far above 50 (>= 60)": all(g.distilled.mean >= 60 and (g.baseline.mean or 0) >= 60
                                              for g in report.student_groups),
    }
    for promise, kept in checks.items():
        print(f"{'kept' if kept else 'NOT kept'}: {promise}")


if __name__ == "__main__":
    main()
