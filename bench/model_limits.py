"""How well a model's limits work: which recordings the shipped demo model marks as unlike its training data,
and what calibration does to its probabilities, on synthetic recordings like its training data and on the
real ICBHI recordings.

    python -m bench.model_limits [--model resources/models/demo-cnn6] [--workspace DIR]

The demo model is a distilled student made by the shipped recipe demo-model (its card's `made_by`): that
recipe's data is made again here, exactly, and scored are its test split (recordings of patients it never
trained on), 40 recordings each of seeds 1 and 2 (the same generator settings, other patients), and the 10 real
recordings in ../shared/data/icbhi/audio (skipped when absent). The limits were fitted at the end of training on
the recipe's calibration split (training patients held out of training), as for every experiment's model.

Marks: the share of cycles beyond the limit and the recordings whose median distance is beyond it, for the
card's distance (the 8-band summary of the input: level, spread and frame-to-frame change) and for two
alternatives fitted the same way (Ledoit-Wolf Gaussian on the training cycles, limit at the 99th percentile of
the held-out cycles): a finer 32-band summary of the input (level and spread only), and the model's
penultimate embedding; with the recording-level AUROC of real against synthetic.
Calibration: accuracy, mean confidence and expected calibration error before and after the temperature.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from bench.machine import describe
from lungkd.core.analysis.limits import ModelLimits
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import CALIBRATION_SPLIT, DataSpec, SyntheticData, resolve_dataset
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import CycleSet, build_cycle_sets
from lungkd.core.models.card import ModelCard
from lungkd.core.models.inference import load_saved_model, predict_logits
from lungkd.core.training.calibration import (LIMIT_QUANTILE, expected_calibration_error,
                                              reliability)

ROOT = Path(__file__).resolve().parents[1]
REAL_AUDIO = ROOT.parent / "shared" / "data" / "icbhi" / "audio"


def synthetic(workspace: Path, recordings: int, seed: int):
    return resolve_dataset(DataSpec(synthetic=SyntheticData(recordings=recordings, seed=seed), calibration_fraction=0),
                           workspace)


def made_with(card: ModelCard) -> DataSpec:
    """The data of the recipe that made the model (the shipped demo: resources/recipes/demo-model.toml)."""
    if not card.made_by:
        raise SystemExit("this model's card has no `made_by` recipe: rebuild it with `make demo-model`")
    return DataSpec.model_validate(card.made_by["recipe"]["data"])


def all_cycles(index, inputs, cache) -> CycleSet:
    """Every annotated cycle of a dataset, whatever its split."""
    index.apply_split({r.name: "test" for r in index.recordings})
    return build_cycle_sets(index, inputs, cache=cache)["test"]


def run(model, data: CycleSet):
    """Logits and penultimate embeddings (the head's input)."""
    embeddings = []
    hook = model.head.register_forward_pre_hook(lambda module, args: embeddings.append(args[0].float()))
    try:
        logits = predict_logits(model, data)
    finally:
        hook.remove()
    return logits.numpy(), torch.cat(embeddings).numpy()


def bands(features: torch.Tensor, count: int) -> np.ndarray:
    x = features.reshape(len(features), features.shape[-2], features.shape[-1]).double()
    b = x.reshape(*x.shape[:2], count, -1).mean(dim=3)
    return torch.cat([b.mean(dim=1), b.std(dim=1)], dim=1).numpy()


def gaussian_distance(train: np.ndarray):
    from sklearn.covariance import LedoitWolf

    estimate = LedoitWolf().fit(train)
    return lambda x: np.sqrt(estimate.mahalanobis(x))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, default=ROOT / "resources" / "models" / "demo-cnn6")
    parser.add_argument("--workspace", type=Path, help="where the synthetic data and feature cache go")
    args = parser.parse_args()
    print(describe())
    from sklearn.metrics import roc_auc_score

    model, card = load_saved_model(args.model)
    limits = ModelLimits.from_card(card)
    inputs = card.inputs.spec()
    with tempfile.TemporaryDirectory() as tmp:
        workspace = args.workspace or Path(tmp)
        cache = FeatureCache(workspace / "cache")
        training = build_cycle_sets(resolve_dataset(made_with(card), workspace), inputs, cache=cache)
        held = training[CALIBRATION_SPLIT]
        test_recordings = len({cycle.split("#")[0] for cycle in training["test"].cycle_ids})
        scored = {f"own test split ({test_recordings} rec.)": training["test"],
                  "seed 1 (40 rec.)": all_cycles(synthetic(workspace, 40, 1), inputs, cache),
                  "seed 2 (40 rec.)": all_cycles(synthetic(workspace, 40, 2), inputs, cache)}
        if any(REAL_AUDIO.glob("*.wav")):
            scored["real ICBHI (10 rec.)"] = all_cycles(load_dataset(REAL_AUDIO), inputs, cache)
        outputs = {name: run(model, data) for name, data in [("train", training["train"]), ("held", held),
                                                              *scored.items()]}
        sets = {"train": training["train"], "held": held, **scored}

    distances = {  # representation -> a function of a set's name giving its cycles' distances
        "card: input, 8 bands x (level, spread, change)": lambda name: limits.distances(sets[name].features),
    }
    finer = gaussian_distance(bands(sets["train"].features, 32))
    distances["input, 32 bands x (level, spread)"] = lambda name: finer(bands(sets[name].features, 32))
    embedded = gaussian_distance(outputs["train"][1])
    distances["penultimate embedding"] = lambda name: embedded(outputs[name][1])

    print(f"\nmodel {args.model}: limit at the {LIMIT_QUANTILE:g}th percentile of the distances of "
          f"{len(held)} held-out cycles")
    for label, distance in distances.items():
        limit = float(np.percentile(distance("held"), LIMIT_QUANTILE))
        print(f"\n{label} (limit {limit:.2f})")
        print(f"  {'recordings':<26}{'cycles beyond':>14}{'recordings marked':>19}{'median distance':>17}")
        medians = {}
        for name in scored:
            d = distance(name)
            recordings = np.array([cid.split("#")[0] for cid in sets[name].cycle_ids])
            medians[name] = np.array([np.median(d[recordings == r]) for r in np.unique(recordings)])
            print(f"  {name:<26}{(d > limit).mean():>13.1%}{(medians[name] > limit).sum():>11} of "
                  f"{len(medians[name]):<5}{np.median(d):>17.2f}")
        if "real ICBHI (10 rec.)" in medians:
            real = medians.pop("real ICBHI (10 rec.)")
            fake = np.concatenate(list(medians.values()))
            auroc = roc_auc_score(np.r_[np.zeros(len(fake)), np.ones(len(real))], np.r_[fake, real])
            print(f"  real against synthetic recordings: AUROC {auroc:.3f}; the farthest synthetic recording at "
                  f"{fake.max() / limit:.2f} x the limit, the nearest real one at {real.min() / limit:.2f} x")

    print(f"\ncalibration: temperature {limits.temperature:.3f} (fitted on the {len(held)} held-out cycles)")
    print(f"  {'recordings':<26}{'accuracy':>9}{'confidence before':>19}{'after':>7}{'ECE before':>12}{'after':>7}")
    for name in scored:
        logits, labels = outputs[name][0], sets[name].labels.numpy()
        before, after = torch.softmax(torch.from_numpy(logits).double(), 1).numpy(), limits.probabilities(logits)
        print(f"  {name:<26}{(before.argmax(1) == labels).mean():>9.1%}{before.max(1).mean():>19.1%}"
              f"{after.max(1).mean():>7.1%}{expected_calibration_error(reliability(before, labels)):>12.1%}"
              f"{expected_calibration_error(reliability(after, labels)):>7.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
