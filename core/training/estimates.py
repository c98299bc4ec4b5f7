"""How long training will take, measured rather than guessed: timed steps of the real model on inputs of its
real shape on the device that will run, and the real preparation of one recording of the data; then one run's
time as its job spends it (training steps, each epoch's evaluation, the selected model's predictions).
core.kd.estimate puts these together for a whole experiment.

A rate is timed over enough steps to leave warm-up behind (the first steps of a model on a CPU run at a
fraction of its speed while the allocator and the convolution primitives settle), so one slow step does not
turn minutes into an hour.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lungkd.core.data.dataset import DatasetIndex
from lungkd.core.features.cache import FeatureCache, entry_key, prepare_dataset
from lungkd.core.features.inputs import InputSpec
from lungkd.core.models.inference import autocast_for, resolve_device
from lungkd.core.models.registry import create_model, model_info
from lungkd.core.pool import default_workers
from lungkd.core.recipes import ModelSpec, TrainConfig
from lungkd.core.storage import file_sha256

_PROMPT = "This sound was recorded from the trachea of an adult male patient, using a Meditron stethoscope."
WARM_UP_STEPS = 3
TIMED_SECONDS = 2.0  # each rate is timed over at least this long, and at least TIMED_STEPS steps
TIMED_STEPS = 3


def evaluation_batch(train: TrainConfig) -> int:
    """The batch size evaluation predicts at (core.training.trainer)."""
    return max(train.batch_size, 64)


@dataclass(frozen=True)
class ModelSpeed:
    """Cycles per second of one model on one device: training (forward, backward, Adam step at the recipe's
    batch size) and prediction (at the evaluation's batch size)."""

    train: float
    predict: float


def _timed_rate(step, batch_size: int) -> float:
    """Cycles per second of `step()`, after the warm-up."""
    for _ in range(WARM_UP_STEPS):
        step()
    steps, start = 0, time.perf_counter()
    while steps < TIMED_STEPS or time.perf_counter() - start < TIMED_SECONDS:
        step()
        steps += 1
    return steps * batch_size / (time.perf_counter() - start)


def measure_speed(model_spec: ModelSpec, train: TrainConfig, device: torch.device) -> ModelSpeed:
    """The model's training and prediction rates on random inputs of its real shape (its own random weights:
    pretrained ones compute the same)."""
    info = model_info(model_spec.arch)
    model = create_model(model_spec.arch, size=model_spec.size).to(device)
    optimizer = torch.optim.Adam(model.parameters())
    amp = train.mixed_precision and device.type == "cuda"

    def inputs(batch: int) -> tuple[torch.Tensor, list[str] | None]:
        return (torch.randn(batch, *info.input_shape, device=device),
                [_PROMPT] * batch if info.needs_prompts else None)

    x, prompts = inputs(train.batch_size)
    y = torch.randint(0, 4, (train.batch_size,), device=device)

    def train_step() -> None:
        with autocast_for(device, amp):
            loss = F.cross_entropy(model(x, prompts).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        _synchronise(device)

    model.train()
    train_rate = _timed_rate(train_step, train.batch_size)
    batch = evaluation_batch(train)
    x_eval, prompts_eval = inputs(batch)

    def predict_step() -> None:
        with torch.inference_mode(), autocast_for(device, device.type == "cuda"):
            model(x_eval, prompts_eval)
        _synchronise(device)

    model.eval()
    return ModelSpeed(train_rate, _timed_rate(predict_step, batch))


def _synchronise(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass(frozen=True)
class PreparationSpeed:
    """Seconds per cycle to prepare a dataset's inputs (None: they are in the cache already) and to load them
    from the cache, as every worker process does."""

    prepare_s_per_cycle: float | None
    load_s_per_cycle: float
    workers: int  # the preparation's process pool

    def prepare_seconds(self, cycles: int) -> float:
        return 0.0 if self.prepare_s_per_cycle is None else self.prepare_s_per_cycle * cycles / self.workers

    def load_seconds(self, cycles: int) -> float:
        return self.load_s_per_cycle * cycles


def measure_preparation(index: DatasetIndex, inputs: InputSpec, cache: FeatureCache) -> PreparationSpeed:
    """The cost per cycle of preparing the dataset's inputs (None when its last recording is in the cache: the
    dataset was prepared) and of reading them from the cache, timed on its first usable recording, which is
    left in the cache as training would leave it."""
    usable = [r for r in index.recordings if r.usable_audio and r.cycles and r.split]
    if not usable:
        return PreparationSpeed(None, 0.0, 1)
    first, cycles = usable[0], len(usable[0].cycles)
    start = time.perf_counter()
    prepare_dataset([first], inputs.prep, inputs.features, workers=1)  # computed, whatever the cache holds
    prepare_s = time.perf_counter() - start
    prepare_dataset([first], inputs.prep, inputs.features, cache, workers=1)  # in the cache now
    start = time.perf_counter()
    prepare_dataset([first], inputs.prep, inputs.features, cache, workers=1)
    load_s = time.perf_counter() - start
    last = usable[-1]
    key = entry_key(file_sha256(last.audio_path), last.cycles, inputs.prep, inputs.features)
    prepared = cache.get(key, str(last.audio_path), len(last.cycles)) is not None
    return PreparationSpeed(None if prepared else prepare_s / cycles, load_s / cycles, default_workers())


@dataclass(frozen=True)
class RunSeconds:
    """One model's run as its job spends it: the training steps, and the evaluation (each epoch's test and
    validation Scores, then the selected model's test Scores, test logits and calibration, and for a teacher
    its logits on every split)."""

    training: float
    evaluation: float
    teacher_logits: float = 0.0

    @property
    def total(self) -> float:
        return self.training + self.evaluation + self.teacher_logits


def run_seconds(cycles: dict[str, int], train: TrainConfig, speed: ModelSpeed, *, teacher: bool) -> RunSeconds:
    """The seconds of one run on `cycles` (per split, after the split: train, test, and val or calibration)."""
    steps = math.ceil(cycles.get("train", 0) / train.batch_size) * train.batch_size
    scored = cycles.get("test", 0) + cycles.get("val", 0)  # every epoch
    held_out = cycles.get("val", 0) or cycles.get("calibration", 0)
    finished = 2 * cycles.get("test", 0) + held_out  # the selected model's Scores and test logits; calibration
    logits = sum(cycles.values()) if teacher else 0
    return RunSeconds(training=train.epochs * steps / speed.train,
                      evaluation=(train.epochs * scored + finished) / speed.predict,
                      teacher_logits=logits / speed.predict)


def device_name(device: torch.device) -> str:
    """The device as a person reads it: "cpu", or "cuda:0 (NVIDIA H100 80GB HBM3)"."""
    if device.type != "cuda":
        return device.type
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


# ---------------------------------------------------------------- the wizard's Teachers page (to be replaced by
# core.kd.estimate.estimate_experiment, which covers the whole experiment on the recipe's own data)


def training_throughput(arch: str, size: str = "full", batch_size: int = 8, device: str = "auto") -> float:
    """Cycles per second of training one model of `arch` at `batch_size` on `device`."""
    return measure_speed(ModelSpec(arch=arch, size=size), TrainConfig(batch_size=batch_size),
                         resolve_device(device)).train


def training_seconds(cycles: int, epochs: int, runs: int, throughput: float) -> float:
    """Training steps only; evaluation adds roughly a third of an epoch's time per epoch."""
    return runs * epochs * cycles / throughput * 1.3
