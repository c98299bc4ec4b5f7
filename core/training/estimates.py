"""How long a training will take, measured rather than guessed: one timed step of the real model."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from lungkd.core.models.registry import create_model, model_info
from lungkd.core.models.inference import autocast_for, resolve_device

_PROMPT = "This sound was recorded from the trachea of an adult male patient, using a Meditron stethoscope."


def training_throughput(arch: str, size: str = "full", batch_size: int = 8, device: str = "auto") -> float:
    """Cycles per second of forward + backward + Adam step on random inputs of the real shape
    (after one untimed warm-up step)."""
    info = model_info(arch)
    dev = resolve_device(device)
    model = create_model(arch, size=size).to(dev).train()
    optimizer = torch.optim.Adam(model.parameters())
    x = torch.randn(batch_size, *info.input_shape, device=dev)
    y = torch.randint(0, 4, (batch_size,), device=dev)
    prompts = [_PROMPT] * batch_size if info.needs_prompts else None
    for step in range(2):
        if step == 1:
            start = time.perf_counter()
        with autocast_for(dev, dev.type == "cuda"):
            loss = F.cross_entropy(model(x, prompts).float(), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()
    return batch_size / (time.perf_counter() - start)


def training_seconds(cycles: int, epochs: int, runs: int, throughput: float) -> float:
    """Training steps only; evaluation adds roughly a third of an epoch's time per epoch."""
    return runs * epochs * cycles / throughput * 1.3
