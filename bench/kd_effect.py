"""Does distillation help where labels are noisy? Measured over several generated datasets, with intervals.

    python -m bench.kd_effect [--data-seeds 0,7,13] [--label-noise 0.2] [--label-noises 0,0.1,0.2,0.3]
                              [--axis-data-seeds 0,7] [--recordings 480] [--test-fraction 0.25] [--teachers 5]
                              [--seeds 8] [--epochs 10] [--specaugment] [--arch cnn6] [--size tiny]
                              [--workers 2] [--workspace DIR] [--report-only]

Each data seed is a dataset of its own (its own patients and recordings) written with `--label-noise` of its
labels wrong. On each: k teachers, then the same student architecture on the teachers' mean_k soft labels and
on the hard labels with `--seeds` seeds each (a seed pair), all with one fixed recipe and `selection = last`
(no checkpoint picked on the test set, so the comparison is not tuned on it). Every model is scored on the test
labels as written (wrong at the same rate as the training labels, like a real dataset's) and on the generator's
true labels (the same recordings written with no label noise). The noise axis: the same comparison with
`--label-noises` of the labels wrong, on `--axis-data-seeds` (by default every data seed).

Printed per dataset and pooled over datasets: the mean single teacher against the k-teacher ensemble, the
distilled students against their hard-label twins, and the spread from one training to the next as a result of
its own: the ratio of seed-to-seed standard deviations of the hard-label and the distilled students, and of a
single hard-label model and an ensemble of k (bench/kd_effect_report.py). 95 % intervals come from a
hierarchical bootstrap (bench/pooled_bootstrap.py): datasets resampled, then test patients within each, then
training seeds within each, the distilled and hard-label students of one seed kept as a pair. The answer is
conclusive when the interval of (distilled - hard) on the true labels excludes 0 or is narrower than +-1.5
points.

Runs train in child processes (`--workers` at a time, torch's threads shared among them); teachers are trained
once per dataset and noise level and shared by the seed pairs, and datasets and prepared inputs are cached in
the workspace. Each finished dataset leaves its models' test logits in `WORKSPACE/kd-effect/<experiment>.jsonl`;
the same command after a kill skips those and resumes the unfinished experiment from its last finished epoch,
and `--report-only` prints the tables from what is finished.

The run of issue 27, its sizes chosen before it (the recipe is the CPU demo's, unchanged: 480 recordings, test
fraction 0.25, 5 tiny CNN6 teachers, 10 epochs, batch 8, lr 1e-3, no SpecAugment, selection = last):

    python -m bench.kd_effect --data-seeds 0,7,13,21 --seeds 5 --label-noises 0.3,0,0.1 --axis-data-seeds 0
                              --workspace DIR

- Time. A trial (data seed 0, 1 seed pair, 2 epochs) on this 2-core VM while other jobs kept its load near 6:
  two runs side by side, one torch thread each, took about 105 s a round (about 42 s an epoch, 25 s of loading
  and scoring), so about 450 s a round at 10 epochs; a dataset is 3 rounds of teachers and one round per seed
  pair, plus about 4 minutes generating and preparing its data. Idle, the earlier single-dataset run (126 s a
  model, one after another at 2 threads) suggests half that.
- 4 datasets at 20 % wrong labels, 5 seed pairs each (32 rounds). The two earlier runs (data seeds 0 and 7, 8
  seed pairs) put one seed pair's (distilled - hard) on the true labels at an SD of about 6 points (the
  hard-label students 5 to 7, the distilled 1) and the two datasets within that noise of each other. Resampling
  datasets, patients and seeds counts the seed noise twice, so the pooled half-width is about
  1.96 sqrt((between-dataset variance + 2 * 36 / seeds) / datasets), about 4 points here: enough to exclude 0
  if the gain is near the +3.5 of those runs (a simulation of this design with a true +3.5 excluded 0 in 62 %
  of 200 tries), far from +-1.5 (some 30 datasets). Per hour the number of seed pairs hardly matters, since a
  dataset's teachers cost 3 rounds; 5 is the fewest that gives two ensembles of 5 hard-label models without a
  model in common, which the ensemble's spread needs.
- The noise axis on data seed 0 at 30 %, 0 % and 10 % wrong labels, in that order (24 rounds), its 20 % from
  the pooled design: a single dataset per level, so it shows a trend only if a large one.
- 56 rounds: about 7 h as busy as during the trial, about half that on an idle machine.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bench.kd_effect_report import TRUTHS, load_result, print_tables, result_lines, score_tables
from bench.machine import describe
from lungkd.core.data.sources import DataSpec, SyntheticData, resolve_dataset
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.kd.executors import Executor, ProcessExecutor
from lungkd.core.kd.experiment import Experiment, student_specs
from lungkd.core.models.registry import model_info
from lungkd.core.recipes import parse_experiment
from lungkd.core.storage import json_sha256, write_text_atomic
from lungkd.core.workspace.layout import TEST_LOGITS_FILE, cache_folder

RESULTS_FOLDER = "kd-effect"


@dataclass(frozen=True)
class Dataset:
    """One generated dataset at one rate of wrong labels: one comparison."""

    seed: int
    label_noise: float

    def __str__(self) -> str:
        return f"data seed {self.seed}, {self.label_noise:.0%} wrong labels"


def data_spec(args, dataset: Dataset, label_noise: float) -> DataSpec:
    """The recipe's data (recordings split by patient as in the CPU demo), with labels written at `label_noise`."""
    return DataSpec(synthetic=SyntheticData(recordings=args.recordings, seed=dataset.seed, label_noise=label_noise),
                    split="patient", test_fraction=args.test_fraction)


def recipe(args, dataset: Dataset) -> dict:
    """The experiment of one dataset, named for it and for a digest of everything else, so that another recipe
    (a trial with fewer epochs) is another experiment with results of its own."""
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "specaugment": args.specaugment}
    body = {
        "selection": "last",
        "data": data_spec(args, dataset, dataset.label_noise).model_dump(mode="json", exclude_defaults=True),
        "teachers": {"arch": args.arch, "size": args.size, "k": args.teachers, "train": train},
        "students": [{"arch": args.arch, "size": args.size, "labels": f"mean_{args.teachers}",
                      "seeds": [100 + s for s in range(args.seeds)], "baseline": True, "train": train}],
    }
    return {"name": f"kd-effect-data{dataset.seed}-noise{dataset.label_noise:g}-{json_sha256(body, 10)}", **body}


def results_file(args, workspace: Path, dataset: Dataset) -> Path:
    return workspace / RESULTS_FOLDER / f"{recipe(args, dataset)['name']}.jsonl"


def planned_datasets(args) -> list[Dataset]:
    """The pooled design first (the question), then the noise axis, one dataset at every other noise level
    before the next, so that a run stopped early has some of each."""
    planned = [Dataset(seed, args.label_noise) for seed in args.data_seeds]
    planned += [Dataset(seed, noise) for seed in args.axis_data_seeds for noise in args.label_noises
                if noise != args.label_noise]
    return planned


def run_dataset(args, dataset: Dataset, workspace: Path, executor: Executor, started: float) -> None:
    """Train (or resume) one dataset's experiment and keep its models' test logits in its results file."""
    target = results_file(args, workspace, dataset)
    if target.is_file():
        print(f"{dataset}: finished before, {target}", flush=True)
        return
    print(f"{dataset}: training", flush=True)
    began = time.time()

    def show(event) -> None:
        if event.kind == "finished" and event.stage in ("teachers", "students") and event.run:
            score = (event.data["run"]["card"].get("test") or {}).get("score")
            print(f"  {time.time() - started:7.0f} s  {dataset}, {event.run}: Score {score:.2f} on the written "
                  "labels", flush=True)

    experiment = Experiment(parse_experiment(recipe(args, dataset)), workspace, on_event=show, executor=executor)
    report = experiment.run()
    store = experiment.store
    with np.load(store.logits_file) as teachers:
        models = [("teacher", i + 1, teachers["test_logits"][:, i]) for i in range(args.teachers)]  # seeds 1..k
        written, patients, cycle_ids = teachers["test_labels"], teachers["test_patients"], teachers["test_cycle_ids"]
    models += [(spec.role, spec.seed, np.load(store.run_folder(spec) / TEST_LOGITS_FILE))
               for spec in student_specs(experiment.recipe.students[0])]
    meta = {"data_seed": dataset.seed, "label_noise": dataset.label_noise, "experiment": experiment.recipe.name,
            "train_cycles": report.train_cycles, "test_cycles": report.test_cycles,
            "seconds": round(time.time() - began), "machine": describe()}
    labels = {"written": written, "true": true_labels(args, dataset, workspace, cycle_ids)}
    write_text_atomic(target, result_lines(meta, labels, patients, models))
    print(f"{dataset}: finished in {time.time() - began:.0f} s, {target}", flush=True)


def true_labels(args, dataset: Dataset, workspace: Path, cycle_ids: np.ndarray) -> np.ndarray:
    """The generator's labels of the test cycles `cycle_ids`: the same recordings written with no label noise."""
    index = resolve_dataset(data_spec(args, dataset, 0.0), workspace, selection="last")
    test = build_cycle_sets(index, model_info(args.arch).inputs, cache=FeatureCache(cache_folder(workspace)))["test"]
    label_of = dict(zip(test.cycle_ids, test.labels.tolist()))
    return np.array([label_of[str(cycle)] for cycle in cycle_ids])


def report(args, workspace: Path) -> None:
    """The tables from every finished dataset of the plan: the pooled design per dataset and pooled, then the
    noise axis pooled per noise level over the axis datasets."""
    finished = {d: load_result(results_file(args, workspace, d)) for d in planned_datasets(args)
                if results_file(args, workspace, d).is_file()}
    missing = [str(d) for d in planned_datasets(args) if d not in finished]
    if missing:
        print(f"\nnot finished (left out below): {'; '.join(missing)}")
    for dataset, result in finished.items():
        m = result.meta
        print(f"{dataset}: {m['train_cycles']} train / {m['test_cycles']} test cycles, "
              f"{len(set(result.patients))} test patients; trained in {m['seconds']} s")
    for truth, words in TRUTHS.items():
        tables = {d: score_tables(r, truth, args.draws) for d, r in finished.items()}
        pooled = [(d.seed, t) for d, t in tables.items() if d.label_noise == args.label_noise]
        if pooled:
            print(f"\nICBHI Score on {words}, {args.label_noise:.0%} wrong labels")
            rows = [(f"data seed {seed}", [t]) for seed, t in pooled]
            if len(pooled) > 1:
                rows.append((f"pooled, {plural(len(pooled), 'dataset')}", [t for _, t in pooled]))
            print_tables(rows, args.teachers, args.draws)
        on_axis = {d: t for d, t in tables.items() if d.seed in args.axis_data_seeds}
        axis = [(f"{noise:.0%} wrong labels, {plural(len(found), 'dataset')}", found)
                for noise in sorted({*args.label_noises, args.label_noise})
                if (found := [t for d, t in on_axis.items() if d.label_noise == noise])]
        if len(axis) > 1:
            print(f"\nThe noise axis, ICBHI Score on {words}, pooled over the data seeds of "
                  f"{', '.join(map(str, args.axis_data_seeds))} finished at each noise level")
            print_tables(axis, args.teachers, args.draws)


def plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def numbers(kind):
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-seeds", type=numbers(int), default=[0])
    parser.add_argument("--label-noise", type=float, default=0.2, help="the pooled design's share of wrong labels")
    parser.add_argument("--label-noises", type=numbers(float), default=None, help="the noise axis (default: none)")
    parser.add_argument("--axis-data-seeds", type=numbers(int), default=None,
                        help="the data seeds of the noise axis (default: every data seed)")
    parser.add_argument("--recordings", type=int, default=480)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--teachers", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=8, help="seed pairs (a distilled and a hard-label student)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--specaugment", action="store_true",
                        help="SpecAugment while training (off, as in the CPU demo: on this little data it slows learning)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--arch", default="cnn6")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--workers", type=int, default=2, help="runs trained at once, each in a child process")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--report-only", action="store_true", help="print the tables of what is finished")
    args = parser.parse_args()
    args.label_noises = args.label_noises or [args.label_noise]
    args.axis_data_seeds = args.axis_data_seeds or args.data_seeds
    return args


def main() -> None:
    args = parse_args()
    print(describe(), flush=True)
    workspace = (args.workspace or Path(tempfile.mkdtemp(prefix="lungkd-kd-effect-"))).absolute()
    started = time.time()
    print(f"{args.recordings} recordings per dataset, test fraction {args.test_fraction:g}; {args.arch} ({args.size}), "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr:g}, SpecAugment "
          f"{'on' if args.specaugment else 'off'}, selection = last; {args.teachers} teachers, "
          f"{args.seeds} seed pairs; workspace {workspace}", flush=True)
    if not args.report_only:
        executor = ProcessExecutor(args.workers)
        for dataset in planned_datasets(args):
            run_dataset(args, dataset, workspace, executor, started)
    report(args, workspace)
    print(f"\ntotal {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
