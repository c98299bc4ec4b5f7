"""Does distillation help where labels are noisy? A measured run on a synthetic dataset, with intervals.

    python bench/kd_effect.py [--recordings 480] [--test-fraction 0.25] [--label-noise 0.2] [--teachers 5]
                              [--seeds 8] [--epochs 10] [--specaugment] [--arch cnn6] [--size tiny] [--workspace DIR]

Trains k teachers (as one batched model on a GPU; one after another on a CPU, where that is faster), then the
same student architecture on the teachers' mean_k soft labels and on the (noisy) hard labels, each with
several seeds, all with one fixed recipe and
`selection = last` (no checkpoint picked on the test set, so the comparison is not tuned on it). Every
model is scored on the test labels as written (wrong at the same rate as the training labels, like a real
dataset's) and on the generator's true labels (the same recordings written with no label noise).

Prints the mean single teacher against the k-teacher ensemble and the distilled students against their
hard-label twins, with 95 % intervals from a two-level bootstrap: test patients resampled (the test set is
a sample) and seeds resampled (so is each training run), the distilled and hard-label students of one seed
kept as a pair. The answer is conclusive when the interval of (distilled - hard) on the true labels
excludes 0 or is narrower than +-1.5 points.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

import numpy as np  # noqa: E402

from lungkd.core.data.sources import DataSpec, SyntheticData, resolve_dataset  # noqa: E402
from lungkd.core.features.cache import FeatureCache  # noqa: E402
from lungkd.core.features.cycle_sets import build_cycle_sets  # noqa: E402
from lungkd.core.kd.experiment import Experiment, student_specs, teacher_specs  # noqa: E402
from lungkd.core.kd.soft_labels import ensemble_logits  # noqa: E402
from lungkd.core.metrics import confusion_matrix, scores_from_confusion  # noqa: E402
from lungkd.core.models.card import load_saved_model  # noqa: E402
from lungkd.core.models.registry import model_info  # noqa: E402
from lungkd.core.recipes import parse_experiment  # noqa: E402
from lungkd.core.training.trainer import predict_logits  # noqa: E402
from lungkd.core.workspace.layout import MODEL_FOLDER, cache_folder  # noqa: E402


def data_spec(args, label_noise: float) -> DataSpec:
    """The recipe's data (recordings split by patient as in the CPU demo), with labels written at `label_noise`."""
    return DataSpec(synthetic=SyntheticData(recordings=args.recordings, seed=args.data_seed, label_noise=label_noise),
                    split="patient", test_fraction=args.test_fraction)


def recipe(args) -> dict:
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr, "specaugment": args.specaugment}
    return {
        "name": f"kd-effect-{args.arch}-{args.recordings}-noise{args.label_noise:g}-k{args.teachers}",
        "selection": "last",
        "data": data_spec(args, args.label_noise).model_dump(mode="json", exclude_defaults=True),
        "teachers": {"arch": args.arch, "size": args.size, "k": args.teachers, "train": train},
        "students": [{"arch": args.arch, "size": args.size, "labels": f"mean_{args.teachers}",
                      "seeds": [100 + s for s in range(args.seeds)], "baseline": True, "train": train}],
    }


class PatientBootstrap:
    """Scores of predicted classes on the whole test set and on test sets resampled by patient (the same
    draws for every model)."""

    def __init__(self, labels: np.ndarray, patients: np.ndarray, draws: int, seed: int = 0):
        self.labels = labels
        groups = [np.flatnonzero(patients == p) for p in np.unique(patients)]
        rng = np.random.default_rng(seed)
        self.resamples = [np.concatenate([groups[i] for i in rng.integers(0, len(groups), len(groups))])
                          for _ in range(draws)]

    def score(self, predicted: np.ndarray) -> float:
        return scores_from_confusion(confusion_matrix(self.labels, predicted)).score

    def scores(self, predicted: np.ndarray) -> np.ndarray:
        return np.array([scores_from_confusion(confusion_matrix(self.labels[rows], predicted[rows])).score
                         for rows in self.resamples])


def interval(values: np.ndarray) -> tuple[float, float]:
    low, high = np.percentile(values, [2.5, 97.5])
    return float(low), float(high)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=480)
    parser.add_argument("--test-fraction", type=float, default=0.25)
    parser.add_argument("--label-noise", type=float, default=0.2)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--teachers", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--specaugment", action="store_true",
                        help="SpecAugment while training (off, as in the CPU demo: on this little data it slows learning)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--arch", default="cnn6")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--workspace", type=Path)
    args = parser.parse_args()
    print(describe(), flush=True)
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="lungkd-kd-effect-"))
    started = time.time()

    def show(event) -> None:
        if event.kind == "finished" and event.stage in ("teachers", "students") and event.run:
            score = ((event.data.get("card") or {}).get("test") or {}).get("score")
            print(f"  {time.time() - started:7.0f} s  {event.run}: Score {score:.2f} on the written labels", flush=True)

    experiment = Experiment(parse_experiment(recipe(args)), workspace, on_event=show)
    report = experiment.run()
    trained = time.time() - started
    store, specs = experiment.store, student_specs(experiment.recipe.students[0])
    folders = {"teacher": [store.run_folder(s) for s in teacher_specs(experiment.recipe)],
               "student": [store.run_folder(s) for s in specs if s.role == "student"],
               "baseline": [store.run_folder(s) for s in specs if s.role == "baseline"]}
    models = {role: [load_saved_model(f / MODEL_FOLDER)[0] for f in found] for role, found in folders.items()}
    print(f"\nsynthetic data: {args.recordings} recordings, {args.label_noise:.0%} wrong labels, "
          f"{report['train_cycles']} train / {report['test_cycles']} test cycles; {args.arch} ({args.size}), "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr:g}, SpecAugment {'on' if args.specaugment else 'off'}, "
          "selection = last; "
          f"{args.teachers} teachers, {args.seeds} seed pairs; training took {trained:.0f} s")

    inputs, cache, rng = model_info(args.arch).inputs, FeatureCache(cache_folder(workspace)), np.random.default_rng(1)
    for truth, noise in (("as written", args.label_noise), ("true", 0.0)):
        index = resolve_dataset(data_spec(args, noise), workspace)
        test = build_cycle_sets(index, inputs, cache=cache)["test"]
        boot = PatientBootstrap(test.labels.numpy(), np.array(test.patients), args.draws)
        logits = {role: np.stack([predict_logits(m, test).numpy() for m in found]) for role, found in models.items()}
        predicted = {role: values.argmax(axis=2) for role, values in logits.items()}
        ensemble = ensemble_logits(logits["teacher"].transpose(1, 0, 2), list(range(args.teachers))).argmax(axis=1)
        points = {role: [boot.score(p) for p in values] for role, values in predicted.items()}
        resampled = {role: np.stack([boot.scores(p) for p in values]).T for role, values in predicted.items()}
        draw = np.arange(args.draws)[:, None]  # the second level: seeds (and teachers) drawn with replacement
        seeds = rng.integers(0, args.seeds, (args.draws, args.seeds))
        members = rng.integers(0, args.teachers, (args.draws, args.teachers))
        gain = (resampled["student"][draw, seeds] - resampled["baseline"][draw, seeds]).mean(axis=1)
        gap = boot.scores(ensemble) - resampled["teacher"][draw, members].mean(axis=1)
        print(f"\nICBHI Score on the test labels {truth} ({len(test)} cycles, {len(set(test.patients))} patients)")
        for title, role in (("mean single teacher", "teacher"), (f"student, mean_{args.teachers} soft labels", "student"),
                            ("student, hard labels", "baseline")):
            print(f"  {title:<32}{np.mean(points[role]):7.2f} ± {np.std(points[role], ddof=1):.2f}")
        print(f"  {f'ensemble of {args.teachers} teachers':<32}{boot.score(ensemble):7.2f}")
        low, high = interval(gap)
        print(f"  {'ensemble - mean teacher':<32}{boot.score(ensemble) - np.mean(points['teacher']):+7.2f}"
              f"   95 % interval [{low:+.2f}, {high:+.2f}]")
        low, high = interval(gain)
        verdict = ("the interval excludes 0" if low > 0 or high < 0 else
                   "the interval is narrower than ±1.5" if high - low < 3.0 else
                   "inconclusive: the interval includes 0 and is wider than ±1.5")
        print(f"  {'distilled - hard':<32}{np.mean(points['student']) - np.mean(points['baseline']):+7.2f}"
              f"   95 % interval [{low:+.2f}, {high:+.2f}]: {verdict}")
    print(f"\ntotal {time.time() - started:.0f} s; workspace {workspace}")


if __name__ == "__main__":
    main()
