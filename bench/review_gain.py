"""Where review time pays: how many wrong labels the Studio's review queue finds per reviewed cycle, and the
Score gained by correcting them.

    python -m bench.review_gain [--seeds 0,1,2] [--choose-seeds 100,101] [--recordings 240] [--label-noise 0.2]
                                [--shares 0.05,0.1,0.2] [--gain-shares 0.1] [--epochs 10] [--adapt-epochs 3]
                                [--train-again ORDERS] [--threads 1]
                                [--workspace DIR] [--report-only]

Each data seed is a generated dataset with `--label-noise` of its labels wrong, split by patient (a quarter of
the patients for testing, a tenth of the others held out to calibrate, as the CPU demo splits). A tiny CNN6 is
trained on its written labels with `lungkd train` (the CPU demo's recipe: 10 epochs, batch 8, lr 1e-3, no
SpecAugment, selection = last) and predicts every cycle a user would review: the training and calibration
cycles, with the calibrated probabilities the Studio shows. A simulated reviewer reads the first N of them
(N = `--shares` of the cycles) in each order and sets each to its true class (the generator knows it: its plan
holds the labels the recordings would be written with at no label noise):
- the review queue: core/analysis/review.py's `review_order`, the code the Studio's review mode runs;
- the queue before issue 20 (disagreements first, then the least confident), random order, and lowest
  confidence first;
- on the `--choose-seeds` datasets only, candidates for a better queue (`CANDIDATES`). The best of them at
  N = 10 % (the lowest probability of the annotated class) became the review queue's order; the `--seeds`
  datasets, which took no part in the choice, report it.
Then, for N = `--gain-shares`, the model is adapted (core/kd/adapt.py: the whole model, `--adapt-epochs` epochs,
from its own weights) on the corrected annotation files and, for the gain, on the files as written, with the
same seed and data order; both are scored on the test patients' true labels. With `--train-again`, the orders
named there (at the same N) are also trained again from scratch on the corrected files with the base model's
recipe and seed, and the gain is taken against the base model itself (trained the same way on the files as
written); the test patients are checked to be the same. Printed: wrong labels found per
reviewed cycle and the Score gained per order and N, means over the report seeds with 95 % t-intervals; how many
labels the Studio counts as likely wrong (core.analysis.review.likely_wrong) and how many of them are; the wall
time. Each finished data seed leaves its figures in WORKSPACE/review-gain/data<N>/result.json, which the same
command (or one with other --seeds, run beside it) reuses; --report-only prints the tables from them.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.adapt import epoch_line
from bench.machine import describe
from lungkd.core.analysis.limits import ModelLimits
from lungkd.core.analysis.review import ReviewCandidate, likely_wrong, review_order
from lungkd.core.data.annotation_io import Span, annotation_text
from lungkd.core.data.dataset import DatasetIndex
from lungkd.core.data.sources import DataSpec, SyntheticData, resolve_dataset
from lungkd.core.data.synth import plan_dataset
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.kd.adapt import AdaptSettings, adapt_model
from lungkd.core.metrics import scores_from_logits
from lungkd.core.models.inference import load_saved_model, predict_logits
from lungkd.core.recipes import ModelSpec, TrainConfig, TrainRecipe
from lungkd.core.storage import write_text_atomic
from lungkd.core.training.single_run import train_from_recipe
from lungkd.core.workspace.layout import cache_folder

REVIEWED = ("train", "calibration")  # what a user reviews: the cycles they will train on


CANDIDATES = {  # each: a sort key over the review candidates, smallest first
    "lowest probability of the annotated class": lambda c: c.probabilities[c.annotated],
    "disagreements first, most confident first": lambda c: (not c.disagrees, -c.confidence),
}
KEYS = {  # the orders every data seed reports beside the queue
    "the queue before (disagreements, then least confident)": lambda c: (not c.disagrees, round(100 * c.confidence)),
    "lowest confidence first": lambda c: c.confidence,
}


def orders(candidates: list[ReviewCandidate], seed: int, candidates_too: bool) -> dict[str, list[int]]:
    keys = {**KEYS, **(CANDIDATES if candidates_too else {})}
    return {"review queue": review_order(candidates),
            "random order": [int(i) for i in np.random.default_rng(seed).permutation(len(candidates))],
            **{name: sorted(range(len(candidates)), key=lambda i: key(candidates[i])) for name, key in keys.items()}}


class Dataset:
    """One data seed: its written and true labels, the model trained on the written ones and its predictions."""

    def __init__(self, args, seed: int):
        self.args, self.seed, self.workspace = args, seed, args.workspace
        self.cache = FeatureCache(cache_folder(self.workspace))
        recipe = TrainRecipe(name=f"review-gain-data{seed}", data=self.spec(args.label_noise), selection="last",
                             device="cpu", model=ModelSpec(arch="cnn6", size="tiny"),
                             train=TrainConfig(epochs=args.epochs, batch_size=8, lr=1e-3, specaugment=False))
        self.recipe = recipe
        _, self.model_folder = train_from_recipe(recipe, self.workspace, epoch_line(recipe.name))
        model, card = load_saved_model(self.model_folder)
        self.index = resolve_dataset(self.spec(args.label_noise), self.workspace, selection="last")
        written = build_cycle_sets(self.index, card.inputs.spec(), cache=self.cache)
        self.test = written["test"]
        self.test_truth = torch.tensor(true_labels(args, seed, self.test.cycle_ids))
        self.ids = [i for split in REVIEWED for i in written[split].cycle_ids]
        self.written = np.concatenate([written[split].labels.numpy() for split in REVIEWED])
        self.truth = true_labels(args, seed, self.ids)
        limits = ModelLimits.from_card(card)
        probabilities = np.concatenate([limits.probabilities(predict_logits(model, written[split]))
                                        for split in REVIEWED])
        self.candidates = [self.candidate(i, label, p) for i, label, p in zip(self.ids, self.written, probabilities)]

    def spec(self, noise: float) -> DataSpec:
        """The recordings, split by patient as the CPU demo splits them."""
        return DataSpec(synthetic=SyntheticData(recordings=self.args.recordings, seed=self.seed, label_noise=noise),
                        split="patient", test_fraction=0.25)

    def candidate(self, cycle_id: str, label: int, probabilities) -> ReviewCandidate:
        name, number = cycle_id.rsplit("#", 1)
        cycle = self.index.recording(name).cycles[int(number)]
        return ReviewCandidate(name, cycle.start, cycle.end, int(label), tuple(float(p) for p in probabilities))

    def reviewed(self, order: list[int], count: int) -> np.ndarray:
        """The labels after the first `count` cycles of `order` were set to their true class."""
        labels = self.written.copy()
        labels[order[:count]] = self.truth[order[:count]]
        return labels

    def corrected_folder(self, labels: np.ndarray, name: str) -> Path:
        """The dataset as the reviewer saves it: every file as it was, the corrected annotations rewritten."""
        source = self.index.root
        folder = self.workspace / "review-gain" / f"data{self.seed}" / name
        folder.mkdir(parents=True, exist_ok=True)
        for path in source.iterdir():
            if not (folder / path.name).exists():
                os.symlink(path, folder / path.name)
        changed = {self.ids[i].rsplit("#", 1)[0] for i in np.flatnonzero(labels != self.written)}
        label_of = dict(zip(self.ids, labels))
        for recording in sorted(changed):
            cycles = self.index.recording(recording).cycles
            spans = [Span(c.start, c.end, int(label_of.get(f"{recording}#{c.index}", c.label))) for c in cycles]
            (folder / f"{recording}.txt").unlink()
            (folder / f"{recording}.txt").write_text(annotation_text(spans))
        return folder

    def adapted_score(self, folder: Path, name: str) -> float:
        """The model adapted on the annotations in `folder`, scored on the test patients' true labels."""
        data = DataSpec(path=str(folder), split="patient", test_fraction=0.25)
        index: DatasetIndex = resolve_dataset(data, self.workspace, selection="last")
        index.apply_split({r.name: r.split for r in index.recordings if r.split != "test"})
        out = self.workspace / "review-gain" / f"data{self.seed}" / f"model-{name}"
        adapt_model(self.model_folder, index, out, AdaptSettings(layers="all", epochs=self.args.adapt_epochs,
                                                                 device="cpu"), data, cache=self.cache)
        return self.test_score(out)

    def trained_again_score(self, folder: Path, name: str) -> float:
        """A model trained from scratch on the annotations in `folder` with the base model's recipe and seed,
        scored on the test patients' true labels."""
        data = DataSpec(path=str(folder), split="patient", test_fraction=0.25)
        recipe = self.recipe.model_copy(update={"name": f"{self.recipe.name}-{name}", "data": data})
        index = resolve_dataset(data, self.workspace, selection="last")
        tested = sorted(r.name for r in index.recordings if r.split == "test")
        assert tested == sorted({i.rsplit("#", 1)[0] for i in self.test.cycle_ids}), \
            "the corrected folder splits its patients differently from the base dataset"
        _, model_folder = train_from_recipe(recipe, self.workspace, epoch_line(recipe.name))
        return self.test_score(model_folder)

    def test_score(self, model_folder: Path) -> float:
        model, _ = load_saved_model(model_folder)
        return scores_from_logits(predict_logits(model, self.test), self.test_truth).score


def true_labels(args, seed: int, cycle_ids: list[str]) -> np.ndarray:
    """The generator's labels of the cycles ("recording#index"): the truth its written labels were drawn from
    (the same recordings written with no wrong labels carry exactly these)."""
    _, plans = plan_dataset(args.recordings, seed, args.label_noise)
    truth = {plan.name: plan.labels for plan in plans}
    return np.array([int(truth[name][int(number)]) for name, number in (i.rsplit("#", 1) for i in cycle_ids)])


def interval(values: list[float], digits: int = 2) -> str:
    from scipy import stats

    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    return f"{mean:.{digits}f} [{mean - half:.{digits}f}, {mean + half:.{digits}f}]"


def found_per_cycle(dataset: Dataset, order: list[int], count: int) -> float:
    return float(np.mean(dataset.written[order[:count]] != dataset.truth[order[:count]]))


def choose(args) -> None:
    """The candidate orders against the queue, at N = 10 % on the choice seeds."""
    totals: dict[str, list[float]] = {}
    for seed in args.choose_seeds:
        dataset = Dataset(args, seed)
        count = round(0.1 * len(dataset.candidates))
        for name, order in orders(dataset.candidates, seed, candidates_too=True).items():
            totals.setdefault(name, []).append(found_per_cycle(dataset, order, count))
    print(f"\nchoice, data seeds {', '.join(map(str, args.choose_seeds))}: wrong labels found per reviewed cycle at "
          "N = 10 %")
    for name, values in totals.items():
        print(f"  {name}: {np.mean(values):.3f}")
    print(f"  best candidate: {max(CANDIDATES, key=lambda name: np.mean(totals[name]))}", flush=True)


def result_file(args, seed: int) -> Path:
    return args.workspace / "review-gain" / f"data{seed}" / "result.json"


def measure(args, seed: int, started: float) -> dict:
    """One report seed's figures, adding to those a previous run left: per order and N, wrong labels found per
    cycle and (for --gain-shares) the Score gained by adapting, and by training again for --train-again; and the
    likely wrong labels."""
    seed_started = time.time()
    dataset = Dataset(args, seed)
    wrong = dataset.written != dataset.truth
    assert abs(np.mean(wrong) - args.label_noise) < 0.05, "the generator's truth does not match the written labels"
    path = result_file(args, seed)
    result = json.loads(path.read_text()) if path.is_file() else {}
    if "orders" not in result:
        flagged = np.array([likely_wrong(c) for c in dataset.candidates])
        result = {"cycles": len(wrong), "wrong": int(wrong.sum()), "likely_wrong": int(flagged.sum()),
                  "likely_wrong_and_wrong": int((flagged & wrong).sum()), "orders": {}}
    print(f"data seed {seed}: {len(wrong)} cycles to review, {wrong.sum()} wrong, {result['likely_wrong']} likely "
          f"wrong ({result['likely_wrong_and_wrong']} of them wrong); model trained, {time.time() - started:.0f} s",
          flush=True)
    adapted_baseline = trained_baseline = None
    for name, order in orders(dataset.candidates, seed, candidates_too=False).items():
        for share in args.shares:
            count = round(share * len(dataset.candidates))
            figures = result["orders"].setdefault(f"{name}|{share:g}",
                                                  {"found": found_per_cycle(dataset, order, count)})
            tag = f"{name.split(' (')[0].replace(' ', '-')}-{share:g}"
            adapt = share in args.gain_shares and "gain" not in figures
            train = share in args.gain_shares and name in args.train_again and "trained_again" not in figures
            corrected = dataset.corrected_folder(dataset.reviewed(order, count), tag) if adapt or train else None
            if adapt:
                if adapted_baseline is None:
                    adapted_baseline = dataset.adapted_score(dataset.index.root, "written")
                figures["gain"] = dataset.adapted_score(corrected, tag) - adapted_baseline
            if train:
                if trained_baseline is None:
                    trained_baseline = dataset.test_score(dataset.model_folder)
                figures["trained_again"] = dataset.trained_again_score(corrected, tag) - trained_baseline
            write_text_atomic(path, json.dumps(result, indent=1))
            print(f"  {name}, N = {share:.0%} ({count} cycles): {figures['found']:.3f} wrong per cycle"
                  + (f", Score {figures['gain']:+.2f} adapted" if "gain" in figures else "")
                  + (f", {figures['trained_again']:+.2f} trained again" if "trained_again" in figures else "")
                  + f", {time.time() - started:.0f} s", flush=True)
    result["seconds"] = result.get("seconds", 0) + round(time.time() - seed_started)
    write_text_atomic(path, json.dumps(result, indent=1))
    return result


def finished(args, seed: int) -> bool:
    """Whether the seed's result holds every figure this command asks for."""
    if not result_file(args, seed).is_file():
        return False
    figures = json.loads(result_file(args, seed).read_text()).get("orders", {})
    wanted = [f"{name}|{share:g}" for name in args.train_again for share in args.gain_shares]
    return bool(figures) and all("trained_again" in figures.get(key, {}) for key in wanted)


def report(args, results: dict[int, dict]) -> None:
    seeds = sorted(results)
    print(f"\n{len(seeds)} data seeds ({', '.join(map(str, seeds))}); means with 95 % t-intervals over seeds")
    print("\n| order | N | wrong labels found per reviewed cycle | × random order | Score gained, adapted "
          "| Score gained, trained again |")
    print("|---|---|---|---|---|---|")
    for key in results[seeds[0]]["orders"]:
        name, share = key.split("|")
        rows = [results[seed]["orders"] for seed in seeds]
        found = [r[key]["found"] for r in rows]
        ratio = [r[key]["found"] / max(r[f"random order|{share}"]["found"], 1e-9) for r in rows]
        gains = [interval([r[key][kind] for r in rows]) if all(kind in r[key] for r in rows) else ""
                 for kind in ("gain", "trained_again")]
        print(f"| {name} | {float(share):.0%} | {interval(found, 3)} | {interval(ratio)} | {' | '.join(gains)} |")
    flagged = [results[s]["likely_wrong"] for s in seeds]
    right = [results[s]["likely_wrong_and_wrong"] / max(results[s]["likely_wrong"], 1) for s in seeds]
    found = [results[s]["likely_wrong_and_wrong"] / results[s]["wrong"] for s in seeds]
    print(f"\nlikely wrong (the model gives the annotated class under 50 %): {interval(flagged, 1)} cycles per dataset "
          f"of {np.mean([results[s]['cycles'] for s in seeds]):.0f}; {interval([100 * r for r in right], 1)} % of "
          f"them wrong; {interval([100 * f for f in found], 1)} % of the wrong labels among them")


def numbers(kind):
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=numbers(int), default=[0, 1, 2], help="data seeds reported")
    parser.add_argument("--choose-seeds", type=numbers(int), default=[100, 101],
                        help="data seeds the candidate orders are compared on (none: skip the choice)")
    parser.add_argument("--recordings", type=int, default=240)
    parser.add_argument("--label-noise", type=float, default=0.2)
    parser.add_argument("--shares", type=numbers(float), default=[0.05, 0.1, 0.2], help="of the cycles, reviewed")
    parser.add_argument("--gain-shares", type=numbers(float), default=[0.1],
                        help="the shares at which the model is adapted on the corrected labels")
    parser.add_argument("--train-again", type=lambda text: [v.strip() for v in text.split(",") if v.strip()],
                        default=[], help='orders whose corrected labels also train a model from scratch, e.g. '
                                         '"review queue,random order"')
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--adapt-epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared machine two threads wait for each other)")
    parser.add_argument("--workspace", type=Path)
    parser.add_argument("--report-only", action="store_true", help="print the tables of the finished data seeds")
    args = parser.parse_args()
    unknown = set(args.train_again) - {"review queue", "random order", *KEYS}
    if unknown:
        parser.error(f"--train-again: no order named {', '.join(sorted(unknown))}")
    torch.set_num_threads(args.threads)
    args.workspace = (args.workspace or Path(tempfile.mkdtemp(prefix="lungkd-review-gain-"))).absolute()
    return args


def main() -> None:
    args = parse_args()
    print(describe(), flush=True)
    started = time.time()
    print(f"{args.recordings} recordings per dataset, {args.label_noise:.0%} wrong labels; tiny CNN6, {args.epochs} "
          f"epochs, adapted {args.adapt_epochs} epochs; workspace {args.workspace}", flush=True)
    if not args.report_only:
        if args.choose_seeds:
            choose(args)
        for seed in args.seeds:
            if not finished(args, seed):
                measure(args, seed, started)
    results = {seed: json.loads(result_file(args, seed).read_text()) for seed in args.seeds
               if result_file(args, seed).is_file()}
    if results:
        report(args, results)
    print(f"\ntotal {time.time() - started:.0f} s")


if __name__ == "__main__":
    main()
