"""Limits for a model trained before cards held them (`lungkd models fit-limits`): what training now writes
into every card — what it was trained on, the temperature that calibrates its probabilities and the statistics
of its training data — fitted afterwards. The statistics come from the training split of the data it was
trained on (for generated data the same generator settings recreate it exactly); the temperature and the
distance limit from recordings it never saw; the calibration error is measured on the training data's test
split. The card is rewritten atomically; the weights are not touched."""
from __future__ import annotations

from pathlib import Path

from lungkd.core.data.sources import CALIBRATION_SPLIT, DataSpec, describe_training_data, resolve_dataset
from lungkd.core.errors import LungKDError
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.models.card import ModelCard, update_model_card
from lungkd.core.models.inference import load_saved_model
from lungkd.core.training.calibration import fit_limits
from lungkd.core.workspace.layout import cache_folder


def refit_limits(model_folder: str | Path, trained_on: DataSpec, held_out: DataSpec, workspace: Path) -> ModelCard:
    """The model's card with its limits fitted on `held_out` (every cycle of it, none of which it trained on) and
    the statistics of `trained_on`'s training split; returns the card as written."""
    if trained_on == held_out:
        raise LungKDError("the held-out recordings are the training recordings.",
                          fix="give held-out recordings the model never saw (another folder, or another seed).")
    model, card = load_saved_model(model_folder)
    inputs, cache = card.inputs.spec(), FeatureCache(cache_folder(workspace))
    train_index = resolve_dataset(trained_on, workspace, selection=card.selection or "last")
    held_index = resolve_dataset(held_out, workspace)
    held_index.apply_split({r.name: CALIBRATION_SPLIT for r in held_index.recordings})
    sets = build_cycle_sets(train_index, inputs, cache=cache)
    sets[CALIBRATION_SPLIT] = build_cycle_sets(held_index, inputs, cache=cache)[CALIBRATION_SPLIT]
    training_data = describe_training_data(trained_on, train_index)
    held = describe_training_data(held_out, held_index)
    training_data[CALIBRATION_SPLIT] = held[CALIBRATION_SPLIT]
    training_data["held_out_source"] = held["name"] + (f" ({held['path']})" if held.get("path") else "")
    training_data["limits_fitted_by"] = "lungkd models fit-limits, after training"
    return update_model_card(model_folder, training_data=training_data, **fit_limits(model, sets))
