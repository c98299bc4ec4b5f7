"""Does distillation help where labels are noisy? A measured run on a synthetic dataset.

    python bench/kd_effect.py [--recordings 120] [--label-noise 0.15] [--teachers 5] [--seeds 3]
                              [--epochs 12] [--arch cnn6] [--size tiny] [--workspace DIR]

Trains k teachers, then the same student architecture on the teachers' mean_k soft labels and on
the (noisy) hard labels, each with several seeds, all with one fixed recipe and `selection = last`
(no checkpoint picked on the test set, so the comparison is not tuned on it). Every model is scored
twice: on the test labels as written (wrong at the same rate as the training labels, like a real
dataset's) and on the generator's true labels (the same recordings written with no label noise).
Prints the mean single teacher against the k-teacher ensemble and the distilled student against its
hard-label baseline, as differences measured in this one run.
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

from lungkd.core.features.cache import FeatureCache  # noqa: E402
from lungkd.core.kd.experiment import Experiment  # noqa: E402
from lungkd.core.features.cycle_sets import build_cycle_sets  # noqa: E402
from lungkd.core.metrics import mean_std, scores_from_logits  # noqa: E402
from lungkd.core.recipes import DataSpec, SyntheticData, parse_experiment  # noqa: E402
from lungkd.core.training.single_run import resolve_dataset  # noqa: E402
from lungkd.core.kd.soft_labels import ensemble_logits  # noqa: E402
from lungkd.core.training.trainer import predict_logits  # noqa: E402


def clean_test_scores(experiment: Experiment, args) -> dict[str, list[float]]:
    """Scores of every trained model on the true labels of the same test recordings."""
    from lungkd.core.models.card import load_saved_model

    clean = resolve_dataset(DataSpec(synthetic=SyntheticData(args.recordings, args.data_seed, 0.0)),
                            experiment.workspace)
    test = build_cycle_sets(clean, args.arch, cache=FeatureCache(experiment.workspace / "cache"))["test"]
    labels = test.labels.numpy()
    logits: dict[str, list[np.ndarray]] = {"teacher": [], "student": [], "baseline": []}
    for folder in sorted(experiment.teacher_root.glob("seed-*")) + sorted(experiment.folder.glob("*s/*-seed-*")):
        model, card = load_saved_model(folder / "model")
        logits[card["role"]].append(predict_logits(model, test).numpy())
    scores = {role: [scores_from_logits(x, labels).score for x in values] for role, values in logits.items()}
    scores["ensemble"] = [scores_from_logits(ensemble_logits(np.stack(logits["teacher"], 1),
                                                             list(range(len(logits["teacher"])))), labels).score]
    return scores


def recipe(args) -> dict:
    train = {"epochs": args.epochs, "batch_size": args.batch_size, "lr": args.lr}
    return {
        "name": f"kd-effect-{args.arch}-{args.recordings}-noise{args.label_noise:g}",
        "selection": "last",
        "data": {"synthetic": {"recordings": args.recordings, "seed": args.data_seed, "label_noise": args.label_noise}},
        "teachers": {"arch": args.arch, "size": args.size, "k": args.teachers, "train": train},
        "students": [{"arch": args.arch, "size": args.size, "labels": f"mean_{args.teachers}",
                      "seeds": [100 + s for s in range(args.seeds)], "baseline": True, "train": train}],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=120)
    parser.add_argument("--label-noise", type=float, default=0.15)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--teachers", type=int, default=5)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--arch", default="cnn6")
    parser.add_argument("--size", default="tiny")
    parser.add_argument("--workspace", type=Path)
    args = parser.parse_args()
    print(describe())
    workspace = args.workspace or Path(tempfile.mkdtemp(prefix="lungkd-kd-effect-"))
    started = time.time()

    def show(event) -> None:
        if event.kind == "finished" and event.stage in ("teachers", "students") and event.run:
            score = (event.data.get("test") or {}).get("score")
            print(f"  {time.time() - started:7.0f}s  {event.run}: Score {score:.2f}", flush=True)

    experiment = Experiment(parse_experiment(recipe(args)), workspace, on_event=show)
    report = experiment.run()
    written = {"teacher": [t["score"] for t in report["teachers"]], "ensemble": [report["ensembles"][-1]["score"]],
               "student": [s["score"] for s in report["students"] if s["role"] == "student"],
               "baseline": [s["score"] for s in report["students"] if s["role"] == "baseline"]}
    true = clean_test_scores(experiment, args)
    print(f"\nsynthetic data: {args.recordings} recordings, {args.label_noise:.0%} wrong labels, "
          f"{report['train_cycles']} train / {report['test_cycles']} test cycles; {args.arch} ({args.size}), "
          f"{args.epochs} epochs, batch {args.batch_size}, lr {args.lr:g}, selection = last")
    print(f"{'ICBHI Score on test labels':<34}{'as written':>18}{'true':>18}")
    rows = [("mean single teacher", "teacher"), (f"ensemble of {args.teachers} teachers", "ensemble"),
            (f"student, mean_{args.teachers} soft labels", "student"), ("student, hard labels", "baseline")]
    for title, role in rows:
        print(f"{title:<34}{str(mean_std(written[role])):>18}{str(mean_std(true[role])):>18}")
    for title, a, b in (("ensemble - mean teacher", "ensemble", "teacher"), ("distilled - hard", "student", "baseline")):
        print(f"{title:<34}{np.mean(written[a]) - np.mean(written[b]):>+18.2f}{np.mean(true[a]) - np.mean(true[b]):>+18.2f}")
    print(f"total {time.time() - started:.0f}s; report in {experiment.folder}")


if __name__ == "__main__":
    main()
