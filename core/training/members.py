"""What the trainer trains: one model, or k models of one architecture as one batched model.

`StackedMembers` keeps the k members' parameters and buffers stacked along a new first axis
(`torch.func.stack_module_state`) and calls the architecture once for all of them through
`torch.func.vmap` over `functional_call` — the batching rule of each convolution turns it into one grouped
convolution. Each member keeps its own weights, BatchNorm statistics (updated in place in the stacked
buffers), optimiser state (Adam is elementwise) and inputs, so a member trained together computes what it
would compute alone, up to the float rounding of a grouped convolution.

Both kinds take inputs shaped (k, B, ...) — member i's batch at [i] — and give logits (k, B, 4).
"""
from __future__ import annotations

import copy
from typing import Iterable, Sequence

import torch
from torch import nn

from lungkd.core.cancel import CancelToken
from lungkd.core.features.cycle_sets import CycleSet
from lungkd.core.models.inference import autocast_for, batches, predict_logits


class SingleMember:
    """One model, called as it is. With `trainable` (some of its modules) only those learn: the rest get no
    gradient, stay in eval mode (their BatchNorm statistics and dropout as in use) and are not averaged, so
    their weights stay bit for bit as they were (core.training.adapt)."""

    def __init__(self, model: nn.Module, trainable: Sequence[nn.Module] | None = None):
        self.model = model
        self.count = 1
        self.arch_name = model.arch_name
        self.trainable = None if trainable is None else tuple(trainable)
        self._learning = set(model.state_dict())
        if self.trainable is not None:
            prefixes = [f"{name}." if name else "" for name, module in model.named_modules()
                        if any(module is t for t in trainable)]
            self._learning = {name for name in self._learning if name.startswith(tuple(prefixes))}
            learning = {id(p) for module in self.trainable for p in module.parameters()}
            for parameter in model.parameters():
                parameter.requires_grad_(id(parameter) in learning)

    def to(self, device: torch.device) -> None:
        self.model.to(device)

    def train(self, mode: bool = True) -> None:
        if self.trainable is None:
            self.model.train(mode)
            return
        self.model.eval()
        for module in self.trainable:
            module.train(mode)

    def parameters(self) -> Iterable[torch.Tensor]:
        if self.trainable is None:
            return self.model.parameters()
        return list({id(p): p for module in self.trainable for p in module.parameters()}.values())

    def tensors(self) -> dict[str, torch.Tensor]:
        """Every parameter and buffer that learns, as the tensors that hold the weights (for in-place averaging)."""
        return {name: value for name, value in self.model.state_dict().items() if name in self._learning}

    def logits(self, x: torch.Tensor, prompts: list[list[str]] | None) -> torch.Tensor:
        return self.model(x[0], prompts[0] if prompts is not None else None)[None]

    def predict(self, data: CycleSet, batch_size: int, device: torch.device,
                cancel: CancelToken | None = None) -> torch.Tensor:
        """(1, N, 4) raw logits in eval mode."""
        return predict_logits(self.model, data, batch_size, device, cancel)[None]

    def state(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        self.model.load_state_dict(state)

    def member_state(self, member: int) -> dict[str, torch.Tensor]:
        return {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}

    def member_model(self, member: int, state: dict[str, torch.Tensor]) -> nn.Module:
        self.model.load_state_dict(state)
        return self.model


class StackedMembers:
    """k models of one architecture (each built with its own seed) trained as one batched model."""

    def __init__(self, models: list[nn.Module]):
        from torch.func import stack_module_state

        self.models = models
        self.count = len(models)
        self.arch_name = models[0].arch_name
        self.params, self.buffers = stack_module_state(models)
        self._skeleton = copy.deepcopy(models[0]).to("meta")  # the structure functional_call runs with

    def _call(self, params, buffers, x, prompts):
        from torch.func import functional_call

        return functional_call(self._skeleton, (params, buffers), (x, prompts))

    def to(self, device: torch.device) -> None:
        for stacked in (self.params, self.buffers):
            for name, value in stacked.items():
                moved = value.detach().to(device)
                stacked[name] = moved.requires_grad_(value.requires_grad)

    def train(self, mode: bool = True) -> None:
        self._skeleton.train(mode)

    def parameters(self) -> Iterable[torch.Tensor]:
        return self.params.values()

    def tensors(self) -> dict[str, torch.Tensor]:
        return {**self.params, **self.buffers}

    def logits(self, x: torch.Tensor, prompts: list[list[str]] | None) -> torch.Tensor:
        from torch.func import vmap

        # dropout draws differently per member; prompts are not batched (BTS never trains together)
        return vmap(lambda p, b, xi: self._call(p, b, xi, None), randomness="different")(self.params, self.buffers, x)

    def predict(self, data: CycleSet, batch_size: int, device: torch.device,
                cancel: CancelToken | None = None) -> torch.Tensor:
        """(k, N, 4) raw logits in eval mode, every member on the same cycles."""
        from torch.func import vmap

        self._skeleton.eval()
        out = []
        with torch.inference_mode(), autocast_for(device, enabled=device.type == "cuda"):
            for features, _ in batches(data, batch_size, cancel):
                call = vmap(lambda p, b: self._call(p, b, features.to(device), None), randomness="different")
                out.append(call(self.params, self.buffers).float().cpu())
        return torch.cat(out, dim=1) if out else torch.zeros(self.count, 0, 4)

    def state(self) -> dict[str, torch.Tensor]:
        return {k: v.detach() for k, v in self.tensors().items()}

    def load_state(self, state: dict[str, torch.Tensor]) -> None:
        with torch.no_grad():
            for name, value in self.tensors().items():
                value.copy_(state[name])

    def member_state(self, member: int) -> dict[str, torch.Tensor]:
        return {k: v[member].detach().cpu().clone() for k, v in self.tensors().items()}

    def member_model(self, member: int, state: dict[str, torch.Tensor]) -> nn.Module:
        model = self.models[member]
        model.load_state_dict(state)
        return model
