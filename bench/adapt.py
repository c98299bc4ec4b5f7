"""Adapting a model to a stethoscope it never heard: how much of the gap a few annotated recordings close.

    python -m bench.adapt [--recordings 480] [--data-seed 0] [--device Litt3200] [--sizes 5,10,20]
                          [--layers last,all] [--draws 3] [--calibration 5] [--epochs 10] [--adapt-epochs 20]
                          [--workspace DIR]

One generated dataset, split by patient as the generator splits it (about 60 % of the recordings train). The
base model is a tiny CNN6 trained on the training recordings of every device but `--device` (the CPU demo's
recipe: 10 epochs, batch 8, lr 1e-3, no SpecAugment, selection = last; a tenth of its training patients held
out to fit its limits). From the new device's training patients, `--calibration` recordings of the first
patients (in a fixed random order) are set aside to fit the adapted models' temperature and limits; of the
others, `lungkd adapt` (core/kd/adapt.py, its defaults) trains on N recordings taken one of each patient's in
turn, the patients in a random order (`--draws` orders), nested (the 5 are among the 10, the 10 among the 20):
a clinic annotating 10 recordings has them from several patients. The all-data models are
trained like the base from scratch: one on the new device's training recordings alone, one on every device's.

Printed for each model on the new device's test patients: the ICBHI Score, the share of cycles it marks as
unlike its training data (beyond its card's distance limit) and its Score on the other devices' test patients;
for the adapted models the mean over draws with a 95 % t-interval, the share of the gap closed between the base
and the all-data model trained on the new device alone, and the wall time of one adaptation. Models are kept in
the workspace: the same command again reuses them.
"""
from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.machine import describe
from lungkd.core.data.dataset import DatasetIndex, load_dataset
from lungkd.core.data.sources import (CALIBRATION_SPLIT, DataSpec, SyntheticData, describe_training_data,
                                      ensure_synthetic_dataset, synthetic_dataset_folder)
from lungkd.core.data.splits import validation_split
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import CycleSet, build_cycle_sets
from lungkd.core.kd.adapt import AdaptSettings, adapt_model, held_out_check
from lungkd.core.models.card import InputContract, read_model_card
from lungkd.core.models.inference import load_saved_model
from lungkd.core.models.registry import create_model, model_info, save_model
from lungkd.core.recipes import RunSettings, TrainConfig
from lungkd.core.training.calibration import fit_limits
from lungkd.core.training.trainer import Trainer
from lungkd.core.workspace.layout import cache_folder

ARCH, SIZE = "cnn6", "tiny"
INPUTS = InputContract.from_spec(model_info(ARCH).inputs)


@dataclass
class Row:
    name: str
    score: float
    unlike: float | None
    others: float  # Score on the other devices' test patients
    seconds: float


class Bench:
    def __init__(self, args):
        self.args = args
        self.workspace = args.workspace
        self.data = DataSpec(synthetic=SyntheticData(recordings=args.recordings, seed=args.data_seed))
        self.folder = ensure_synthetic_dataset(synthetic_dataset_folder(self.workspace, self.data.synthetic),
                                               self.data.synthetic)
        self.cache = FeatureCache(cache_folder(self.workspace))
        self.models = self.workspace / "bench-adapt" / f"{args.recordings}-seed{args.data_seed}-{args.device}"
        index = self.index(None)
        self.device_of = {r.name: r.device for r in index.recordings}
        self.split_of = {r.name: r.split for r in index.recordings}
        self.patient_of = {r.name: r.patient for r in index.recordings}
        self.new_test = self.cycles(self.named("test", new=True))
        self.other_test = self.cycles(self.named("test", new=False))

    def index(self, assignment: dict[str, str] | None) -> DatasetIndex:
        """The dataset with `assignment` as its split (None: the generator's)."""
        index = load_dataset(self.folder)
        if assignment is not None:
            index.apply_split(assignment)
        return index

    def named(self, split: str, *, new: bool) -> dict[str, str]:
        return {name: "test" for name, side in self.split_of.items()
                if side == split and (self.device_of[name] == self.args.device) == new}

    def cycles(self, assignment: dict[str, str]) -> CycleSet:
        return build_cycle_sets(self.index(assignment), INPUTS.spec(), cache=self.cache)["test"]

    def new_patients(self) -> list[str]:
        """The new device's training patients in a fixed random order."""
        patients = sorted({self.patient_of[n] for n, d in self.device_of.items()
                           if d == self.args.device and self.split_of[n] == "train"})
        return [patients[i] for i in np.random.default_rng(self.args.data_seed).permutation(len(patients))]

    def recordings_of(self, patients: list[str], count: int | None) -> list[str]:
        names = [n for p in patients for n in sorted(self.split_of)
                 if self.patient_of[n] == p and self.device_of[n] == self.args.device and self.split_of[n] == "train"]
        return names[:count]

    def train_from_scratch(self, name: str, devices: str) -> tuple[Path, float]:
        """A model like the base trained on the training recordings of `devices` ("others", "new" or "all")."""
        folder = self.models / name
        if read_model_card(folder) is not None:
            return folder, float("nan")
        started = time.time()
        keep = {"others": lambda d: d != self.args.device, "new": lambda d: d == self.args.device,
                "all": lambda d: True}[devices]
        index = self.index({n: "train" for n, s in self.split_of.items() if s == "train" and keep(self.device_of[n])})
        index.apply_split(validation_split(index, 0.1, 0, into=CALIBRATION_SPLIT))
        sets = build_cycle_sets(index, INPUTS.spec(), cache=self.cache)
        torch.manual_seed(1)
        trainer = Trainer(TrainConfig(epochs=self.args.epochs, batch_size=8, lr=1e-3, specaugment=False),
                          seed=1, settings=RunSettings(selection="last", device="cpu"), on_progress=epoch_line(name))
        result = trainer.fit(create_model(ARCH, size=SIZE), sets["train"])
        card = result.model_card(size=SIZE, pretrained=None, inputs=INPUTS, seed=1, training_labels="hard",
                                 training_data=describe_training_data(self.data, index),
                                 **fit_limits(result.model, sets))
        save_model(result.model, folder, card)
        return folder, time.time() - started

    def row(self, name: str, folder: Path, seconds: float) -> Row:
        model, card = load_saved_model(folder)
        new, others = held_out_check(model, card, self.new_test), held_out_check(model, card, self.other_test)
        return Row(name, new.scores.score, new.unlike_share, others.scores.score, seconds)

    def spread(self, patients: list[str], count: int) -> list[str]:
        """`count` recordings taking one of each patient's in turn (10 recordings of 6 patients, not of one)."""
        per_patient = [self.recordings_of([p], None) for p in patients]
        turns = [names[i] for i in range(max(map(len, per_patient))) for names in per_patient if i < len(names)]
        return turns[:count]

    def adapted(self, layers: str, size: int, draw: int, calibration: list[str]) -> Row:
        order = [p for p in self.new_patients() if p not in {self.patient_of[n] for n in calibration}]
        order = [order[i] for i in np.random.default_rng([self.args.data_seed, draw]).permutation(len(order))]
        assignment = {**{n: "train" for n in self.spread(order, size)},
                      **{n: CALIBRATION_SPLIT for n in calibration}, **self.named("test", new=True)}
        out = self.models / f"adapted-{layers}-{size}-draw{draw}"
        started = time.time()
        adapt_model(self.models / "base", self.index(assignment), out,
                    AdaptSettings(layers=layers, epochs=self.args.adapt_epochs, device="cpu"), self.data,
                    cache=self.cache)
        return self.row(f"{layers} {size}", out, time.time() - started)


def epoch_line(name: str):
    def show(progress) -> None:
        if progress.stage == "epoch":
            print(f"    {name}: epoch {progress.epoch}/{progress.epochs}, loss {progress.loss:.3f}", flush=True)

    return show


def interval(values: list[float]) -> str:
    from scipy import stats

    mean = float(np.mean(values))
    if len(values) < 2:
        return f"{mean:6.2f}"
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / np.sqrt(len(values))
    return f"{mean:6.2f} [{mean - half:.2f}, {mean + half:.2f}]"


def percent(value: float | None) -> str:
    return "—" if value is None else f"{100 * value:.1f} %"


def main() -> None:
    args = parse_args()
    print(describe(), flush=True)
    started = time.time()
    bench = Bench(args)
    calibration = bench.recordings_of(bench.new_patients(), None)
    calibration = [n for n in calibration if bench.patient_of[n] in
                   {bench.patient_of[m] for m in calibration[:args.calibration]}]
    print(f"{args.recordings} recordings (data seed {args.data_seed}); new device {args.device}: "
          f"{len(bench.new_patients())} training patients, {len(calibration)} recordings held out to calibrate, "
          f"{len(bench.new_test)} test cycles; other devices: {len(bench.other_test)} test cycles; workspace "
          f"{args.workspace}", flush=True)
    references = {}
    for name, devices in (("base", "others"), ("all-data, new device", "new"), ("all-data, every device", "all")):
        folder, seconds = bench.train_from_scratch(name.replace(", ", "-").replace(" ", "-"), devices)
        references[name] = bench.row(name, folder, seconds)
        print(f"  {name}: Score {references[name].score:.2f}, {time.time() - started:.0f} s", flush=True)
    rows: dict[tuple[str, int], list[Row]] = {}
    for draw in range(args.draws):
        for layers in args.layers:
            for size in args.sizes:
                row = bench.adapted(layers, size, draw, calibration)
                rows.setdefault((layers, size), []).append(row)
                print(f"  {row.name} draw {draw}: Score {row.score:.2f}, unlike {percent(row.unlike)}, "
                      f"{row.seconds:.0f} s", flush=True)
    report(references, rows)
    print(f"\ntotal {time.time() - started:.0f} s")


def report(references: dict[str, Row], rows: dict[tuple[str, int], list[Row]]) -> None:
    base, best = references["base"].score, references["all-data, new device"].score
    print("\n| model | Score, new device | gap closed | cycles marked unlike | Score, other devices | s |")
    print("|---|---|---|---|---|---|")
    for name, row in references.items():
        print(f"| {name} | {row.score:.2f} | | {percent(row.unlike)} | {row.others:.2f} | {row.seconds:.0f} |")
    for (layers, size), found in sorted(rows.items()):
        scores = [r.score for r in found]
        closed = [(s - base) / (best - base) for s in scores] if best != base else [float("nan")]
        unlike = [r.unlike for r in found if r.unlike is not None]
        print(f"| adapted, {layers}, {size} recordings | {interval(scores)} | {interval([100 * c for c in closed])} % "
              f"| {interval([100 * u for u in unlike]) + ' %' if unlike else '—'} "
              f"| {interval([r.others for r in found])} | {np.mean([r.seconds for r in found]):.0f} |")


def numbers(kind):
    return lambda text: [kind(v) for v in text.split(",") if v.strip()]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recordings", type=int, default=480)
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--device", default="Litt3200", help="the stethoscope the base model never hears")
    parser.add_argument("--sizes", type=numbers(int), default=[5, 10, 20], help="recordings adapted on")
    parser.add_argument("--layers", type=numbers(str), default=["last", "all"])
    parser.add_argument("--draws", type=int, default=3, help="random orders of the new device's patients")
    parser.add_argument("--calibration", type=int, default=5,
                        help="recordings (whole patients, at least this many) held out to fit the limits")
    parser.add_argument("--epochs", type=int, default=10, help="of the models trained from scratch")
    parser.add_argument("--adapt-epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads (1: on a shared machine two threads wait for each other)")
    parser.add_argument("--workspace", type=Path)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.workspace = (args.workspace or Path(tempfile.mkdtemp(prefix="lungkd-adapt-"))).absolute()
    return args


if __name__ == "__main__":
    main()
