"""Give a model folder trained before models knew their limits what training now writes into every card
(core/training/calibration.py): what it was trained on, the temperature that calibrates its probabilities and
the statistics of its training data that mark cycles unlike it.

    python bench/fit_model_limits.py MODEL_DIR --synthetic 120 --seed 0 --held-out 120 --held-out-seed 100
    python bench/fit_model_limits.py MODEL_DIR --data TRAINING_FOLDER --held-out-data OTHER_FOLDER

The statistics come from the training split of the data the model was trained on (for synthetic data the
same generator settings recreate it exactly); the temperature and the limit of the distances come from
recordings it never saw: fresh ones from the same generator settings with another seed, or a folder given;
the calibration error is measured on the training data's test split. The card is rewritten atomically; the
weights are not touched. The demo model shipped before it was made by `make demo-model` got its limits this
way (the shipped one now gets them in training, like every experiment's model):

    python bench/fit_model_limits.py resources/models/demo-cnn6 --synthetic 120 --held-out 120 --held-out-seed 100
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from machine import describe  # noqa: E402

from lungkd.core.data.sources import (CALIBRATION_SPLIT, DataSpec, SyntheticData,  # noqa: E402
                                      describe_training_data, resolve_dataset)
from lungkd.core.features.cache import FeatureCache  # noqa: E402
from lungkd.core.features.cycle_sets import build_cycle_sets  # noqa: E402
from lungkd.core.metrics import scores_from_logits  # noqa: E402
from lungkd.core.models.card import load_saved_model, update_model_card  # noqa: E402
from lungkd.core.models.registry import model_info  # noqa: E402
from lungkd.core.training.calibration import fit_limits  # noqa: E402
from lungkd.core.training.trainer import predict_logits  # noqa: E402
from lungkd.core.workspace.paths import resolve_workspace  # noqa: E402


def data_spec(folder: Path | None, synthetic: int | None, seed: int) -> DataSpec:
    # calibration_fraction 0: the model trained on the whole training split, nothing was held out of it
    if folder is not None:
        return DataSpec(path=str(folder), calibration_fraction=0.0)
    return DataSpec(synthetic=SyntheticData(recordings=synthetic, seed=seed), calibration_fraction=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path)
    parser.add_argument("--data", type=Path, help="the folder the model was trained on")
    parser.add_argument("--synthetic", type=int, help="or: the synthetic recordings it was trained on")
    parser.add_argument("--seed", type=int, default=0, help="their generator seed")
    parser.add_argument("--held-out-data", type=Path, help="recordings the model never saw (all their cycles)")
    parser.add_argument("--held-out", type=int, default=120, help="or: this many fresh synthetic recordings")
    parser.add_argument("--held-out-seed", type=int, default=100, help="their seed (not the training seed)")
    parser.add_argument("--workspace", type=Path, help="where synthetic data and the feature cache go")
    args = parser.parse_args()
    if (args.data is None) == (args.synthetic is None):
        parser.error("give the training data as --data FOLDER or --synthetic N")
    if args.held_out_data is None and args.synthetic is not None and args.held_out_seed == args.seed:
        parser.error("the held-out recordings need another seed than the training ones")
    print(describe())
    workspace = resolve_workspace(args.workspace)
    model, card = load_saved_model(args.model)
    inputs, cache = model_info(card["architecture"]).inputs, FeatureCache(workspace / "cache")

    train_spec = data_spec(args.data, args.synthetic, args.seed)
    train_index = resolve_dataset(train_spec, workspace, selection=card.get("selection", "last"))
    held_spec = data_spec(args.held_out_data, args.held_out if args.held_out_data is None else None,
                          args.held_out_seed)
    held_index = resolve_dataset(held_spec, workspace)
    held_index.apply_split({r.name: CALIBRATION_SPLIT for r in held_index.recordings})

    sets = build_cycle_sets(train_index, inputs, cache=cache)
    sets[CALIBRATION_SPLIT] = build_cycle_sets(held_index, inputs, cache=cache)[CALIBRATION_SPLIT]
    if "test" in sets:
        scores = scores_from_logits(predict_logits(model, sets["test"]), sets["test"].labels).to_dict()
        print(f"test split ({len(sets['test'])} cycles): Score {scores['score']:.2f} "
              f"(the card says {(card.get('test') or {}).get('score')})")
    limits = fit_limits(model, sets)
    training_data = describe_training_data(train_spec, train_index)
    held = describe_training_data(held_spec, held_index)
    training_data[CALIBRATION_SPLIT] = {**{key: held[key] for key in ("name", "generator", "path") if key in held},
                                        **held[CALIBRATION_SPLIT]}
    training_data["limits_fitted_by"] = "bench/fit_model_limits.py, after training"
    update_model_card(args.model, {"training_data": training_data, **limits})

    calibration, stats = limits["calibration"], limits["training_statistics"]
    print(f"training data: {sum(training_data['train']['cycles'].values())} cycles of "
          f"{training_data['train']['recordings']} recordings; held out: {len(sets[CALIBRATION_SPLIT])} cycles")
    if calibration.get("temperature"):
        print(f"temperature {calibration['temperature']:.3f}; expected calibration error on "
              f"{calibration['measured_on']['split']} {100 * calibration['ece_before']:.1f}% -> "
              f"{100 * calibration['ece_after']:.1f}%")
    else:
        print(f"not calibrated: {calibration['reason']}")
    print(f"limit of the distance from the training data: {stats['limit']:.2f}" if "limit" in stats
          else f"no training statistics: {stats['reason']}")
    print(f"card updated: {args.model / 'lungkd.json'}")


if __name__ == "__main__":
    main()
