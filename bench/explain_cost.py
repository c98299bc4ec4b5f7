"""What an explanation of one cycle costs (core/analysis/explain.py) beside one forward pass of the model.

    python -m bench.explain_cost [--cycles 6] [--device cpu]

For each model: the shipped demo model (a tiny CNN6), a full-size CNN6 (the paper's, random weights: the cost
does not depend on them) and a tiny BTS (CLAP input and a prompt). The cycles are generated recordings' cycles
prepared as `lungkd predict` prepares them; each figure is the median over the cycles, measured in one run:
one forward pass of one cycle (no gradients) and one explanation (integrated gradients, 32 steps with their
backward passes), and their ratio.
"""
from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from bench.machine import describe
from lungkd.core.analysis.explain import explain_cycle
from lungkd.core.data.prompts import file_prompt
from lungkd.core.data.records import Cycle
from lungkd.core.data.synth import plan_dataset, render_recording
from lungkd.core.features.prepare import clip_batches
from lungkd.core.models.inference import load_saved_model
from lungkd.core.models.registry import create_model, model_info

DEMO_MODEL = Path(__file__).resolve().parents[1] / "resources" / "models" / "demo-cnn6"


def cycles(count: int, seed: int = 11):
    """(recording name, samples, rate, start, end) of the first cycle of `count` generated recordings."""
    _, plans = plan_dataset(4 * count, seed)
    for index, plan in enumerate(plans[:count]):
        edges = plan.breathing.annotated_edges
        yield plan.name, render_recording(plan, seed, index).astype(np.float32), plan.sample_rate, edges[0], edges[1]


def model_input(model, name: str, samples, sr: int, start: float, end: float) -> torch.Tensor:
    inputs = model_info(model.arch_name).inputs
    batch = next(clip_batches(samples, sr, [Cycle(name, 0, start, end, 0, 0)], inputs.prep, 1))
    return torch.from_numpy(inputs.features.compute(batch.clips))


def timed(run) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


def measure(label: str, model, recorded: list, device: str) -> None:
    model = model.to(device).eval()
    forwards, explanations = [], []
    prompts = model_info(model.arch_name).needs_prompts
    for name, samples, sr, start, end in recorded:
        x = model_input(model, name, samples, sr, start, end).to(device)
        prompt = file_prompt(name) if prompts else None
        with torch.no_grad():
            model(x, [prompt]) if prompt else model(x)  # warm-up
            forwards.append(statistics.median(timed(lambda: model(x, [prompt]) if prompt else model(x))
                                              for _ in range(3)))
        explanations.append(timed(lambda: explain_cycle(model, x, start, end, prompt=prompt)))
    forward, explanation = statistics.median(forwards), statistics.median(explanations)
    print(f"| {label} | {forward * 1000:.1f} | {explanation * 1000:.0f} | {explanation / forward:.0f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cycles", type=int, default=6)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    print(describe(), f"\ndevice: {args.device}\n")
    recorded = list(cycles(args.cycles))
    print(f"{len(recorded)} cycles, median per cycle\n")
    print("| model | one forward pass, ms | one explanation, ms | ratio |")
    print("|---|---|---|---|")
    measure("demo-cnn6 (tiny CNN6, shipped)", load_saved_model(DEMO_MODEL)[0], recorded, args.device)
    torch.manual_seed(0)
    measure("CNN6, full size", create_model("cnn6", size="full"), recorded, args.device)
    measure("BTS, tiny (CLAP input, a prompt)", create_model("bts", size="tiny"), recorded, args.device)


if __name__ == "__main__":
    main()
