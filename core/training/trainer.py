"""Training one model on a set of cycles: the paper's recipe (docs/method.md section 7), checkpoint selection
(section 8), resumable every epoch, cancellable every step.

The model (`nn.Module`, core.models) is kept apart from the loop here (Lightning's split). Data order,
SpecAugment and dropout draw from generators seeded by (seed, epoch), so a run resumed from an epoch
checkpoint continues exactly as an uninterrupted one would.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.errors import LungKDError
from lungkd.core.features.cycle_sets import CycleSet
from lungkd.core.features.spectral import specaugment
from lungkd.core.metrics import Scores, scores_from_logits
from lungkd.core.models.registry import model_info
from lungkd.core.recipes import RunSettings, TrainConfig
from lungkd.core.storage import save_torch_atomic

MIN_SE_FOR_SELECTION = 5.0  # the papers ignore epochs whose Se is below 5 %
STATE_FILE = "train_state.pt"


class TrainingError(LungKDError):
    """A run that cannot go on: out of memory, a bad setting, data that does not fit the model."""


class SoftTargetProvider(Protocol):
    """Targets that change per epoch (the random teacher of docs/method.md section 9)."""

    def for_epoch(self, epoch: int) -> torch.Tensor: ...


Targets = torch.Tensor | SoftTargetProvider | None  # None: the set's hard labels


@dataclass
class Progress:
    stage: str
    epoch: int
    epochs: int
    step: int
    steps: int
    eta_s: float | None = None
    loss: float | None = None
    metrics: dict | None = None
    message: str = ""
    lr: float | None = None


@dataclass
class EpochRecord:
    epoch: int
    loss: float
    lr: float
    test: dict | None = None
    val: dict | None = None
    seconds: float = 0.0  # training steps of this epoch, evaluation excluded
    data_seconds: float = 0.0  # of which spent gathering, augmenting and moving batches


@dataclass
class TrainResult:
    model: torch.nn.Module  # carries the selected checkpoint's weights
    selection: str
    selected_epoch: int
    scores: Scores | None  # of the selected checkpoint on the test set
    history: list[EpochRecord] = field(default_factory=list)
    device: str = "cpu"
    selection_note: str = ""  # set when no epoch qualified for the selection and it fell back to another


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(requested: str, notify: Callable[[str], None] | None = None) -> torch.device:
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if notify:
            notify("No GPU found: training on the CPU, which is much slower for full-size models.")
        return torch.device("cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise TrainingError(f"device '{requested}' was asked for but no CUDA GPU is available.",
                            fix="set device = \"auto\" or \"cpu\" in the recipe.")
    return torch.device(requested)


def predict_logits(model: torch.nn.Module, data: CycleSet, batch_size: int = 64, device: torch.device | None = None,
                   cancel: CancelToken | None = None) -> torch.Tensor:
    """Raw logits (N, 4) in eval mode, in the set's order."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    with torch.inference_mode(), autocast_for(device, enabled=device.type == "cuda"):
        for start in range(0, len(data), batch_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled while computing predictions.")
            stop = start + batch_size
            prompts = data.prompts[start:stop] if data.prompts is not None else None
            out.append(model(data.features[start:stop].to(device), prompts).float().cpu())
    return torch.cat(out) if out else torch.zeros(0, 4)


def autocast_for(device: torch.device, enabled: bool):
    if not enabled or device.type != "cuda":
        return torch.autocast("cpu", enabled=False)
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def cosine_lr(base_lr: float, epoch: int, epochs: int, final_ratio: float) -> float:
    """The reference schedule: epochs count from 1, and the last epoch runs at base_lr * final_ratio."""
    floor = base_lr * final_ratio
    return floor + (base_lr - floor) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def _average_weights(model: torch.nn.Module, before: dict[str, torch.Tensor], keep: float) -> None:
    """The reference code's averaging after each step, buffers included (BN statistics too)."""
    with torch.no_grad():
        for name, value in model.state_dict().items():
            if value.is_floating_point():
                value.mul_(1.0 - keep).add_(before[name], alpha=keep)


def _selection_value(record: EpochRecord, selection: str) -> float:
    scores = record.test if selection == "best_test" else record.val
    if not scores or scores["score"] is None or (scores["se"] or 0.0) <= MIN_SE_FOR_SELECTION:
        return -math.inf
    return scores["score"]


def _fallback_note(selection: str, best_value: float, epoch: int) -> str:
    """What to tell the user when no epoch had Se above the threshold: the selection kept the first epoch."""
    if selection == "last" or best_value > -math.inf:
        return ""
    split = "test" if selection == "best_test" else "validation"
    return (f"no epoch reached Se > {MIN_SE_FOR_SELECTION:g} % on the {split} set, so {selection} had nothing to "
            f"choose from and epoch {epoch} (the first) was used")


class Trainer:
    """Trains one model. `run_dir` holds the resumable state; None keeps everything in memory."""

    def __init__(self, config: TrainConfig, *, seed: int = 1, settings: RunSettings = RunSettings(),
                 run_dir: str | Path | None = None, on_progress: Callable[[Progress], None] | None = None,
                 cancel: CancelToken | None = None):
        self.config = config
        self.seed = seed
        self.settings = settings
        self.run_dir = Path(run_dir) if run_dir else None
        self.on_progress = on_progress or (lambda p: None)
        self.cancel = cancel or CancelToken()

    def _notify(self, message: str) -> None:
        self.on_progress(Progress("notice", 0, self.config.epochs, 0, 0, message=message))

    def fit(self, model: torch.nn.Module, train: CycleSet, test: CycleSet | None = None, val: CycleSet | None = None,
            targets: Targets = None) -> TrainResult:
        cfg = self.config
        if self.settings.selection == "best_val" and val is None:
            raise TrainingError("selection best_val needs a validation set.",
                                fix="carve one from train (splits.validation_split) or use best_test.")
        if self.settings.selection == "best_test" and test is None:
            raise TrainingError("selection best_test needs the test set.", fix="pass the test cycles or use last.")
        if len(train) == 0:
            raise TrainingError("no training cycles.", fix="check the dataset and its split.")
        if self.settings.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        seed_everything(self.seed)
        device = resolve_device(self.settings.device, self._notify)
        model.to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        use_amp = cfg.mixed_precision and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and not torch.cuda.is_bf16_supported())
        history: list[EpochRecord] = []
        best_state, best_epoch, best_value = None, 0, -math.inf
        start_epoch = 1
        resumed = self._load_state()
        if resumed is not None:
            model.load_state_dict(resumed["model"])
            optimizer.load_state_dict(resumed["optimizer"])
            if "scaler" in resumed:
                scaler.load_state_dict(resumed["scaler"])
            history = [EpochRecord(**r) for r in json.loads(resumed["history"])]
            best_state, best_epoch, best_value = resumed["best_model"], resumed["best_epoch"], resumed["best_value"]
            start_epoch = resumed["epoch"] + 1
            self._notify(f"Resuming from epoch {resumed['epoch']}.")

        augment = cfg.specaugment and model_info(model.arch_name).input_kind == "fbank"
        steps = math.ceil(len(train) / cfg.batch_size)
        started = time.monotonic()
        for epoch in range(start_epoch, cfg.epochs + 1):
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(cfg.lr, epoch, cfg.epochs, cfg.final_lr_ratio)
            epoch_start = time.perf_counter()
            loss, data_seconds = self._train_epoch(model, optimizer, scaler, train, targets, epoch, steps, augment,
                                                   device, use_amp, started, start_epoch)
            record = EpochRecord(epoch, loss, optimizer.param_groups[0]["lr"],
                                 seconds=time.perf_counter() - epoch_start, data_seconds=data_seconds)
            for name, data in (("test", test), ("val", val)):
                if data is not None:
                    logits = predict_logits(model, data, max(cfg.batch_size, 64), device, self.cancel)
                    setattr(record, name, scores_from_logits(logits, data.labels).to_dict())
            history.append(record)
            value = _selection_value(record, self.settings.selection)
            if self.settings.selection == "last" or value > best_value or best_state is None:
                best_value, best_epoch = value, epoch
                best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            self._save_state(model, optimizer, scaler, history, best_state, best_epoch, best_value, epoch)
            self.on_progress(Progress("epoch", epoch, cfg.epochs, steps, steps, loss=loss,
                                      metrics={"test": record.test, "val": record.val}, lr=record.lr))
        model.load_state_dict(best_state)
        scores = None
        if test is not None:
            scores = scores_from_logits(predict_logits(model, test, max(cfg.batch_size, 64), device), test.labels)
        return TrainResult(model, self.settings.selection, best_epoch, scores, history, str(device),
                           selection_note=_fallback_note(self.settings.selection, best_value, best_epoch))

    def _train_epoch(self, model, optimizer, scaler, train: CycleSet, targets: Targets, epoch: int, steps: int,
                     augment: bool, device, use_amp: bool, started: float, start_epoch: int) -> float:
        cfg = self.config
        generator = _epoch_generator(self.seed, epoch)
        torch.manual_seed(self.seed * 100_003 + epoch)  # dropout: the same per epoch, resumed or not
        order = torch.randperm(len(train), generator=generator)
        soft = targets.for_epoch(epoch) if hasattr(targets, "for_epoch") else targets
        model.train()
        total, count, data_seconds = 0.0, 0, 0.0
        for step in range(steps):
            if self.cancel.is_set():
                raise Cancelled("training cancelled; the last finished epoch is kept and the run resumes from it.")
            fetch_start = time.perf_counter()
            idx = order[step * cfg.batch_size:(step + 1) * cfg.batch_size]
            x = train.features[idx]
            if augment:
                x = specaugment(x, generator)
            x = x.to(device, non_blocking=True)
            y = (soft[idx] if soft is not None else train.labels[idx]).to(device)
            prompts = [train.prompts[i] for i in idx.tolist()] if train.prompts is not None else None
            data_seconds += time.perf_counter() - fetch_start
            before = ({k: v.detach().clone() for k, v in model.state_dict().items()}
                      if cfg.weight_averaging else None)
            try:
                with autocast_for(device, use_amp):
                    logits = model(x, prompts)
                loss = F.cross_entropy(logits.float(), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
            except torch.OutOfMemoryError:
                raise TrainingError(f"the GPU ran out of memory at batch size {cfg.batch_size}.",
                                    fix=f"lower batch_size (e.g. to {max(1, cfg.batch_size // 2)}) or use a smaller "
                                        "model; mixed precision must stay on.") from None
            if before is not None:
                _average_weights(model, before, cfg.weight_averaging)
            loss = loss.item()
            total += loss * len(idx)
            count += len(idx)
            done = (epoch - start_epoch) * steps + step + 1
            remaining = (cfg.epochs - start_epoch + 1) * steps - done
            elapsed = time.monotonic() - started
            self.on_progress(Progress("train", epoch, cfg.epochs, step + 1, steps, eta_s=elapsed / done * remaining,
                                      loss=loss))
        return total / max(count, 1), data_seconds

    def _identity(self) -> str:
        """What a resumed run must share with the one that wrote the state."""
        return json.dumps({"train": self.config.model_dump(mode="json"), "seed": self.seed,
                           "settings": self.settings.model_dump(mode="json")}, sort_keys=True)

    def _state_path(self) -> Path | None:
        return self.run_dir / STATE_FILE if self.run_dir else None

    def _load_state(self) -> dict | None:
        path = self._state_path()
        if path is None or not path.exists():
            return None
        state = torch.load(path, map_location="cpu", weights_only=True)
        if state.get("config") != self._identity():
            raise TrainingError("this run folder holds a run with other settings.", path=path,
                                fix="use a new run folder, or restore the settings it was started with.")
        return state

    def _save_state(self, model, optimizer, scaler, history, best_state, best_epoch, best_value,
                    epoch) -> None:
        path = self._state_path()
        if path is None:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                 "history": json.dumps([asdict(r) for r in history]), "best_model": best_state,
                 "best_epoch": best_epoch, "best_value": best_value, "epoch": epoch,
                 "config": self._identity()}
        if scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        save_torch_atomic(path, state)
