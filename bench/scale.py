"""Scaling out: k tiny teachers trained in this process, one after another, against the same teachers as Ray
tasks on a local Ray with `--workers` CPUs; then the expected wall time of `paper-bts-random15` on 1, 4 and 16
GPUs, from the per-epoch cost of a full-size BTS measured here.

    python -m bench.scale [--teachers 4] [--workers 2] [--epochs 2] [--recordings 24] [--skip-bts]

Both teacher runs start from a copy of one workspace whose dataset and prepared inputs are already there, so
they time training alone. A full-size BTS epoch is timed from one training step (batch 8, the paper's) and one
inference batch of the real model on random inputs of the real shape, on the device "auto" picks (the GPU
where there is one), and scaled to ICBHI's 4,142 training and 2,756 test cycles (evaluated every epoch for the
papers' best_test selection).
"""
from __future__ import annotations

import argparse
import math
import shutil
import tempfile
import time
from pathlib import Path

import torch

from bench.machine import describe
from lungkd.core.data.sources import resolve_dataset
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import build_cycle_sets
from lungkd.core.kd.executors import InProcessExecutor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.kd.ray_executor import RayExecutor
from lungkd.core.models.registry import create_model, model_info
from lungkd.core.recipes import load_experiment, parse_experiment
from lungkd.core.training.estimates import training_throughput
from lungkd.core.models.inference import autocast_for, resolve_device
from lungkd.core.workspace.layout import cache_folder

ICBHI_TRAIN_CYCLES, ICBHI_TEST_CYCLES = 4142, 2756
RECIPES = Path(__file__).resolve().parents[1] / "resources" / "recipes"


def teachers_stage_seconds(recipe, workspace: Path, executor) -> float:
    """Wall time from the teachers stage's start to its end, as the driver saw it."""
    times = {}

    def on_event(event):
        if event.stage == "teachers" and event.run is None and event.kind in ("started", "finished"):
            times[event.kind] = time.perf_counter()

    Experiment(recipe, workspace, on_event=on_event, executor=executor).run()
    return times["finished"] - times["started"]


def teachers_in_process_and_on_ray(args) -> None:
    recipe = parse_experiment({
        "name": "scale", "data": {"synthetic": {"recordings": args.recordings, "seed": 0}},
        "teachers": {"arch": "cnn6", "size": "tiny", "k": args.teachers,
                     "train": {"epochs": args.epochs, "batch_size": 16}}})
    root = Path(tempfile.mkdtemp(prefix="lungkd-scale-"))
    template = root / "template"
    index = resolve_dataset(recipe.data, template)  # the dataset and its prepared inputs, once for both runs
    build_cycle_sets(index, model_info("cnn6").inputs, cache=FeatureCache(cache_folder(template)))
    for name in ("inprocess", "ray"):
        shutil.copytree(template, root / name)
    print(f"{args.teachers} tiny CNN6 teachers, {args.epochs} epochs, {len(index.recordings)} synthetic recordings",
          flush=True)
    in_process = teachers_stage_seconds(recipe, root / "inprocess", InProcessExecutor())
    print(f"  in this process, one after another ({torch.get_num_threads()} torch threads): {in_process:.1f} s",
          flush=True)
    executor = RayExecutor(workers=args.workers)  # a local Ray with `workers` CPUs, one per task
    try:
        on_ray = teachers_stage_seconds(recipe, root / "ray", executor)
    finally:
        executor.close()
    print(f"  Ray tasks on a local Ray with {args.workers} CPUs (1 torch thread each): {on_ray:.1f} s")
    print(f"  ratio: {in_process / on_ray:.2f}x", flush=True)
    shutil.rmtree(root, ignore_errors=True)


def bts_costs() -> tuple[float, float, str]:
    """Seconds per full-size BTS epoch on ICBHI (training + the test evaluation), seconds for one teacher's
    logits on every cycle, and the device."""
    device = resolve_device("auto")
    train_rate = training_throughput("bts", "full", batch_size=8, device="auto")
    info = model_info("bts")
    model = create_model("bts").to(device).eval()
    x = torch.randn(8, *info.input_shape, device=device)
    prompts = ["This sound was recorded from the trachea of an adult male patient."] * 8
    with torch.inference_mode(), autocast_for(device, device.type == "cuda"):
        for step in range(2):  # one untimed warm-up
            if step == 1:
                start = time.perf_counter()
            model(x, prompts)
            if device.type == "cuda":
                torch.cuda.synchronize()
    infer_rate = 8 / (time.perf_counter() - start)
    seconds = ICBHI_TRAIN_CYCLES / train_rate + ICBHI_TEST_CYCLES / infer_rate
    print(f"full-size BTS on {device}: training {train_rate:.2f} cycles/s, inference {infer_rate:.2f} cycles/s -> "
          f"{seconds / 60:.1f} min per epoch ({ICBHI_TRAIN_CYCLES} training cycles, {ICBHI_TEST_CYCLES} test cycles)")
    return seconds, (ICBHI_TRAIN_CYCLES + ICBHI_TEST_CYCLES) / infer_rate, str(device)


def paper_wall_time(epoch_s: float, logits_s: float, gpus: int) -> float:
    """paper-bts-random15 on `gpus` GPUs, one BTS run per GPU (its gpu_share is 1): the teachers in waves, then
    each teacher's logits on every cycle, then the students in waves (they wait for every teacher)."""
    recipe = load_experiment(RECIPES / "paper-bts-random15.toml")
    teachers, (student,) = recipe.teachers, recipe.students
    waves = math.ceil(teachers.k / gpus)
    return (waves * (teachers.train.epochs * epoch_s + logits_s)
            + math.ceil(len(student.seeds) / gpus) * student.train.epochs * epoch_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teachers", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--recordings", type=int, default=24)
    parser.add_argument("--skip-bts", action="store_true", help="leave out the full-size BTS measurement")
    args = parser.parse_args()
    print(describe(), flush=True)
    teachers_in_process_and_on_ray(args)
    if args.skip_bts:
        return
    epoch_s, logits_s, device = bts_costs()
    print(f"\npaper-bts-random15 (15 BTS teachers and 5 BTS students, 50 epochs each), with the {device} costs above "
          "per GPU:")
    print("| GPUs | expected wall time | speed-up |")
    print("|---|---|---|")
    one = paper_wall_time(epoch_s, logits_s, 1)
    for gpus in (1, 4, 16):
        hours = paper_wall_time(epoch_s, logits_s, gpus) / 3600
        print(f"| {gpus} | {hours:,.0f} h ({hours / 24:.1f} days) | {one / 3600 / hours:.1f}x |")


if __name__ == "__main__":
    main()
