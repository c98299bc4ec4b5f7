"""Running a model, apart from training it: a saved model loaded with the input contract of its card, the
device, mixed precision, and raw logits for a set of cycles in eval mode. Training (core.training), analysis
(core.analysis) and evaluation all predict through here."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import torch

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.errors import LungKDError
from lungkd.core.data.index import DatasetIndex
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import CycleSet, build_cycle_sets
from lungkd.core.labels import NUM_CLASSES
from lungkd.core.models.card import (CARD_FILE, DAMAGED_FIX, DamagedModelError, InputContract, ModelCard, PromptPolicy,
                                     require_model_card)
from lungkd.core.models.classifiers import Classifier
from lungkd.core.models.registry import ARCHITECTURES, create_model, model_info


def load_saved_model(folder: str | Path) -> tuple[Classifier, ModelCard]:
    """A model folder written by training (weights + lungkd.json card), in eval mode, and its card, whose
    `inputs` is the contract to build its inputs with. Everything is checked before a tensor is built: the
    card (core.models.card), its architecture against the registry, the files against their checksums."""
    card = require_model_card(folder)
    if card.architecture not in ARCHITECTURES:
        raise DamagedModelError(f"the model card names architecture '{card.architecture}', which this LungKD does "
                                f"not know ({', '.join(ARCHITECTURES)}).", path=Path(folder) / CARD_FILE,
                                fix="use a LungKD version that has it, or " + DAMAGED_FIX)
    model = create_model(card.architecture, pretrained=folder)
    model.eval()
    return model, card.replace(inputs=input_contract(card)) if card.inputs is None else card


def input_contract(card: ModelCard) -> InputContract:
    """What the model's input depends on: its card's contract; for a card written before the contract was
    recorded, the registry's inputs of its architecture with the prompt policy training then defaulted to."""
    return card.inputs or InputContract.from_spec(model_info(card.architecture).inputs)


def model_cycle_sets(card: ModelCard, index: DatasetIndex, *, cache: FeatureCache | None = None,
                     cancel: CancelToken | None = None) -> dict[str, CycleSet]:
    """A dataset's cycles, split by split, as the model's card says to build its inputs (a saved model scored on
    a dataset: `lungkd evaluate`, an experiment's cross-dataset table)."""
    policy = card.inputs.prompts or PromptPolicy()  # the policy is read only by models with prompts
    return build_cycle_sets(index, card.inputs.spec(), cache=cache, location_source=policy.location_source,
                            missing=policy.missing, parts=policy.parts, cancel=cancel)


class DeviceError(LungKDError):
    """A device asked for that this machine does not have."""


def resolve_device(requested: str, notify: Callable[[str], None] | None = None) -> torch.device:
    """"auto": the first CUDA GPU, else the CPU (said through `notify`); "cuda"/"cuda:N" insist on a GPU."""
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if notify:
            notify("No GPU found: training on the CPU, which is much slower for full-size models.")
        return torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise DeviceError(f"device '{requested}' was asked for but no CUDA GPU is available.",
                          fix="set device = \"auto\" or \"cpu\" in the recipe.")
    return torch.device(requested)


def autocast_for(device: torch.device, enabled: bool):
    """Mixed precision on CUDA (bf16 where the GPU has it, else fp16); a no-op elsewhere."""
    if not enabled or device.type != "cuda":
        return torch.autocast("cpu", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def batches(data: CycleSet, batch_size: int,
            cancel: CancelToken | None = None) -> Iterator[tuple[torch.Tensor, list[str] | None]]:
    """The set's features (and prompts) `batch_size` cycles at a time, in order; checks `cancel` before each."""
    for start in range(0, len(data), batch_size):
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled while computing predictions.")
        stop = start + batch_size
        yield data.features[start:stop], data.prompts[start:stop] if data.prompts is not None else None


def predict_logits(model: torch.nn.Module, data: CycleSet, batch_size: int = 64, device: torch.device | None = None,
                   cancel: CancelToken | None = None) -> torch.Tensor:
    """Raw logits (N, 4) in eval mode, in the set's order, on the model's device unless `device` is given."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    with torch.inference_mode(), autocast_for(device, enabled=device.type == "cuda"):
        for features, prompts in batches(data, batch_size, cancel):
            out.append(model(features.to(device), prompts).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, NUM_CLASSES)
