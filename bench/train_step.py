"""Training throughput and inference latency of every architecture at full size, random weights.

    python -m bench.train_step [--archs cnn6,bts] [--device cpu|cuda] [--steps 2] [--batch-size N]

Training: cycles/s of forward + backward + Adam step at the recipe's batch size (docs/method.md section 7:
128 for the CNNs, 8 for CLAP and AST), mixed precision on CUDA. Inference: ms per cycle at batch 1.
A warm-up step is run and not timed. Prints a table and the machine it ran on.
"""
from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

from bench.machine import describe
from lungkd.core.models.registry import create_model, list_models
from lungkd.core.models.inference import autocast_for

RECIPE_BATCH = {"cnn6": 128, "resnet18": 128, "efficientnet_b0": 128, "ast": 8, "audio_clap": 8, "bts": 8}
PROMPT = "This sound was recorded from the left anterior chest of an adult male patient, using a Meditron stethoscope."


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _batch(info, batch: int, device: torch.device):
    x = torch.randn(batch, *info.input_shape, device=device)
    prompts = [PROMPT] * batch if info.needs_prompts else None
    return x, prompts


def train_throughput(info, batch: int, steps: int, device: torch.device) -> float:
    model = create_model(info.name).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-5)
    x, prompts = _batch(info, batch, device)
    y = torch.randint(0, 4, (batch,), device=device)
    amp = device.type == "cuda"
    for step in range(steps + 1):  # the first is warm-up
        if step == 1:
            _sync(device)
            start = time.perf_counter()
        with autocast_for(device, amp):
            loss = F.cross_entropy(model(x, prompts).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    _sync(device)
    return batch * steps / (time.perf_counter() - start)


def inference_latency_ms(info, device: torch.device, repeats: int = 3) -> float:
    model = create_model(info.name).to(device).eval()
    x, prompts = _batch(info, 1, device)
    with torch.inference_mode(), autocast_for(device, device.type == "cuda"):
        model(x, prompts)
        _sync(device)
        start = time.perf_counter()
        for _ in range(repeats):
            model(x, prompts)
        _sync(device)
    return (time.perf_counter() - start) / repeats * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", default=",".join(RECIPE_BATCH))
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--batch-size", type=int, help="override the recipe's batch size (e.g. on a small CPU)")
    args = parser.parse_args()
    device = torch.device(args.device)
    infos = {i.name: i for i in list_models()}
    print(describe())
    print(f"device {device}, {'bf16/fp16 autocast' if device.type == 'cuda' else 'fp32'}, {args.steps} timed steps\n")
    print(f"{'arch':<16}{'params':>12}{'batch':>7}{'train cycles/s':>16}{'infer ms/cycle':>16}")
    for name in args.archs.split(","):
        info = infos[name]
        batch = args.batch_size or RECIPE_BATCH[name]
        try:
            throughput = f"{train_throughput(info, batch, args.steps, device):.1f}"
        except torch.OutOfMemoryError:
            throughput = "OOM"
        latency = inference_latency_ms(info, device)
        print(f"{name:<16}{info.params:>12,}{batch:>7}{throughput:>16}{latency:>16.1f}", flush=True)


if __name__ == "__main__":
    main()
