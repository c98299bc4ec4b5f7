"""Training one model on a set of cycles: the paper's recipe (docs/method.md section 7), checkpoint selection
(section 8), resumable every epoch, cancellable every step.

The model (`nn.Module`, core.models) is kept apart from the loop here (Lightning's split). Data order,
SpecAugment and dropout draw from generators seeded by (seed, epoch), so a run resumed from an epoch
checkpoint continues exactly as an uninterrupted one would.
"""
from __future__ import annotations

import json
import math
import platform
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
from lungkd.core.about import lungkd_version
from lungkd.core.metrics import Scores, scores_from_logits
from lungkd.core.models.card import InputContract, ModelCard
from lungkd.core.models.registry import model_info
from lungkd.core.models.inference import autocast_for, predict_logits, resolve_device
from lungkd.core.training.members import SingleMember, StackedMembers
from lungkd.core.recipes import RunSettings, TrainConfig
from lungkd.core.selection import Selection
from lungkd.core.storage import save_torch_atomic
from lungkd.core.workspace.layout import STATE_FILE

_STATE_KEYS = {"model", "optimizer", "members", "best_models", "epoch", "config"}
_MISSING_SPLITS = {"val": ("a validation set", "carve one from train (splits.validation_split) or use best_test."),
                   "test": ("the test set", "pass the test cycles or use last.")}


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
    member: int | None = None  # which of the models trained together this epoch's figures belong to


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
    selection: Selection
    selected_epoch: int
    scores: Scores | None  # of the selected checkpoint on the test set
    history: list[EpochRecord] = field(default_factory=list)
    device: str = "cpu"
    selection_note: str = ""  # set when no epoch qualified for the selection and it fell back to another

    def model_card(self, *, size: str, pretrained: str | None, inputs: InputContract, seed: int, **made) -> ModelCard:
        """The card of the selected checkpoint: what it is, the input it was trained on, its selection and test
        Scores, the versions that made it, and `made` (how and on what: role, experiment, data fingerprint,
        training data, test data, limits...)."""
        return ModelCard(architecture=self.model.arch_name, size=size, pretrained=pretrained, inputs=inputs, seed=seed,
                         selection=self.selection.value, selected_epoch=self.selected_epoch,
                         selection_note=self.selection_note, test=self.scores.to_dict() if self.scores else None,
                         versions={"lungkd": lungkd_version(), "torch": torch.__version__,
                                   "python": platform.python_version()}, **made)


def seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def cosine_lr(base_lr: float, epoch: int, epochs: int, final_ratio: float) -> float:
    """The reference schedule: epochs count from 1, and the last epoch runs at base_lr * final_ratio."""
    floor = base_lr * final_ratio
    return floor + (base_lr - floor) * (1 + math.cos(math.pi * epoch / epochs)) / 2


def _epoch_generator(seed: int, epoch: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed * 100_003 + epoch)


def _average_weights(tensors: dict[str, torch.Tensor], before: dict[str, torch.Tensor], keep: float) -> None:
    """The reference code's averaging after each step, buffers included (BN statistics too)."""
    with torch.no_grad():
        for name, value in tensors.items():
            if value.is_floating_point():
                value.mul_(1.0 - keep).add_(before[name], alpha=keep)


@dataclass
class _Member:
    """One member's bookkeeping across epochs: its history and its best checkpoint so far."""

    seed: int
    history: list[EpochRecord] = field(default_factory=list)
    best_state: dict | None = None
    best_epoch: int = 0
    best_value: float = -math.inf


class Trainer:
    """Trains one model (`fit`) or k models of one architecture as one batched model (`fit_together`).
    `run_dir` holds the resumable state; None keeps everything in memory."""

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
            targets: Targets = None, *, trainable: list[torch.nn.Module] | None = None) -> TrainResult:
        """One model; with `trainable` only those of its modules learn, the others stay as they are."""
        return self._fit(SingleMember(model, trainable), [self.seed], train, test, val, targets)[0]

    def fit_together(self, models: list[torch.nn.Module], seeds: list[int], train: CycleSet,
                     test: CycleSet | None = None, val: CycleSet | None = None) -> list[TrainResult]:
        """k models (each initialised with its own seed) on the hard labels, as one batched model; member i
        draws its data order and SpecAugment from seed i, as it would alone."""
        if len(models) != len(seeds) or len(set(seeds)) != len(seeds):
            raise ValueError("fit_together needs one distinct seed per model")
        return self._fit(StackedMembers(models), list(seeds), train, test, val, None)

    def _fit(self, members: SingleMember | StackedMembers, seeds: list[int], train: CycleSet,
             test: CycleSet | None, val: CycleSet | None, targets: Targets) -> list[TrainResult]:
        cfg, selection = self.config, self.settings.selection
        for split, data in (("val", val), ("test", test)):
            if split in selection.needs and data is None:
                what, fix = _MISSING_SPLITS[split]
                raise TrainingError(f"selection {selection} needs {what}.", fix=fix)
        if len(train) == 0:
            raise TrainingError("no training cycles.", fix="check the dataset and its split.")
        if self.settings.deterministic:
            torch.use_deterministic_algorithms(True, warn_only=True)
        seed_everything(seeds[0])
        device = resolve_device(self.settings.device, self._notify)
        members.to(device)
        optimizer = torch.optim.Adam(members.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        use_amp = cfg.mixed_precision and device.type == "cuda"
        scaler = torch.amp.GradScaler("cuda", enabled=use_amp and not torch.cuda.is_bf16_supported())
        book = [_Member(seed) for seed in seeds]
        start_epoch = 1
        resumed = self._load_state(seeds)
        if resumed is not None:
            members.load_state(resumed["model"])
            optimizer.load_state_dict(resumed["optimizer"])
            if "scaler" in resumed:
                scaler.load_state_dict(resumed["scaler"])
            for member, saved, state in zip(book, json.loads(resumed["members"]), resumed["best_models"]):
                member.history = [EpochRecord(**r) for r in saved["history"]]
                member.best_epoch, member.best_value, member.best_state = saved["best_epoch"], saved["best_value"], state
            start_epoch = resumed["epoch"] + 1
            self._notify(f"Resuming from epoch {resumed['epoch']}.")

        augment = cfg.specaugment and model_info(members.arch_name).input_kind == "fbank"
        steps = math.ceil(len(train) / cfg.batch_size)
        started = time.monotonic()
        for epoch in range(start_epoch, cfg.epochs + 1):
            for group in optimizer.param_groups:
                group["lr"] = cosine_lr(cfg.lr, epoch, cfg.epochs, cfg.final_lr_ratio)
            epoch_start = time.perf_counter()
            losses, data_seconds = self._train_epoch(members, seeds, optimizer, scaler, train, targets, epoch, steps,
                                                     augment, device, use_amp, started, start_epoch)
            seconds = time.perf_counter() - epoch_start
            evaluated = {name: (members.predict(data, max(cfg.batch_size, 64), device, self.cancel), data.labels)
                         for name, data in (("test", test), ("val", val)) if data is not None}
            for i, member in enumerate(book):
                record = EpochRecord(epoch, losses[i], optimizer.param_groups[0]["lr"], seconds=seconds,
                                     data_seconds=data_seconds)
                for name, (logits, labels) in evaluated.items():
                    setattr(record, name, scores_from_logits(logits[i], labels).to_dict())
                member.history.append(record)
                value = selection.epoch_value(record.test, record.val)
                if selection.prefers(value, member.best_value) or member.best_state is None:
                    member.best_value, member.best_epoch = value, epoch
                    member.best_state = members.member_state(i)
            self._save_state(members, optimizer, scaler, book, epoch)
            for i, member in enumerate(book):
                record = member.history[-1]
                self.on_progress(Progress("epoch", epoch, cfg.epochs, steps, steps, loss=record.loss,
                                          metrics={"test": record.test, "val": record.val}, lr=record.lr,
                                          member=i if members.count > 1 else None))
        results = []
        for i, member in enumerate(book):
            model = members.member_model(i, member.best_state)
            scores = None
            if test is not None:
                scores = scores_from_logits(predict_logits(model, test, max(cfg.batch_size, 64), device), test.labels)
            results.append(TrainResult(model, selection, member.best_epoch, scores, member.history, str(device),
                                       selection_note=selection.fallback_note(member.best_value,
                                                                              member.best_epoch)))
        return results

    def _train_epoch(self, members, seeds: list[int], optimizer, scaler, train: CycleSet, targets: Targets,
                     epoch: int, steps: int, augment: bool, device, use_amp: bool, started: float,
                     start_epoch: int) -> tuple[list[float], float]:
        """One epoch; each member's data order and SpecAugment draw from its own (seed, epoch) generator."""
        cfg = self.config
        generators = [_epoch_generator(seed, epoch) for seed in seeds]
        torch.manual_seed(seeds[0] * 100_003 + epoch)  # dropout: the same per epoch, resumed or not
        orders = [torch.randperm(len(train), generator=g) for g in generators]
        soft = targets.for_epoch(epoch) if hasattr(targets, "for_epoch") else targets
        labels = soft if soft is not None else train.labels
        members.train()
        totals, count, data_seconds = [0.0] * members.count, 0, 0.0
        for step in range(steps):
            if self.cancel.is_set():
                raise Cancelled("training cancelled; the last finished epoch is kept and the run resumes from it.")
            fetch_start = time.perf_counter()
            rows = [order[step * cfg.batch_size:(step + 1) * cfg.batch_size] for order in orders]
            xs = [train.features[idx] for idx in rows]
            if augment:
                xs = [specaugment(x, g) for x, g in zip(xs, generators)]
            x = torch.stack(xs).to(device, non_blocking=True)
            y = torch.stack([labels[idx] for idx in rows]).to(device)
            prompts = [[train.prompts[i] for i in idx.tolist()] for idx in rows] if train.prompts is not None else None
            data_seconds += time.perf_counter() - fetch_start
            before = ({k: v.detach().clone() for k, v in members.tensors().items()}
                      if cfg.weight_averaging else None)
            try:
                with autocast_for(device, use_amp):
                    logits = members.logits(x, prompts)
                per_member = torch.stack([F.cross_entropy(logits[i].float(), y[i]) for i in range(members.count)])
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(per_member.sum()).backward()  # members are independent: each gets its own gradient
                scaler.step(optimizer)
                scaler.update()
            except torch.OutOfMemoryError:
                raise TrainingError(f"the GPU ran out of memory at batch size {cfg.batch_size}.",
                                    fix=f"lower batch_size (e.g. to {max(1, cfg.batch_size // 2)}) or use a smaller "
                                        "model; mixed precision must stay on.") from None
            if before is not None:
                _average_weights(members.tensors(), before, cfg.weight_averaging)
            losses = per_member.detach().tolist()
            size = len(rows[0])
            totals = [total + loss * size for total, loss in zip(totals, losses)]
            count += size
            done = (epoch - start_epoch) * steps + step + 1
            remaining = (cfg.epochs - start_epoch + 1) * steps - done
            elapsed = time.monotonic() - started
            self.on_progress(Progress("train", epoch, cfg.epochs, step + 1, steps, eta_s=elapsed / done * remaining,
                                      loss=sum(losses) / len(losses)))
        return [total / max(count, 1) for total in totals], data_seconds

    def _identity(self, seeds: list[int]) -> str:
        """What a resumed run must share with the one that wrote the state."""
        return json.dumps({"train": self.config.model_dump(mode="json"), "seeds": seeds,
                           "settings": self.settings.model_dump(mode="json")}, sort_keys=True)

    def _state_path(self) -> Path | None:
        return self.run_dir / STATE_FILE if self.run_dir else None

    def _load_state(self, seeds: list[int]) -> dict | None:
        path = self._state_path()
        if path is None or not path.exists():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if not isinstance(state, dict) or not _STATE_KEYS <= state.keys():
                raise ValueError("not a LungKD training state")
        except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError... for a damaged file
            # Only the progress of this run is lost, never a result: start it again from epoch 1.
            self._notify(f"{path} is damaged ({str(exc).splitlines()[0][:120]}); this run starts again from "
                         "epoch 1.")
            path.unlink(missing_ok=True)
            return None
        if state.get("config") != self._identity(seeds):
            raise TrainingError("this run folder holds a run with other settings.", path=path,
                                fix="use a new run folder, or restore the settings it was started with.")
        return state

    def _save_state(self, members, optimizer, scaler, book: list[_Member], epoch: int) -> None:
        path = self._state_path()
        if path is None:
            return
        saved = [{"history": [asdict(r) for r in m.history], "best_epoch": m.best_epoch, "best_value": m.best_value}
                 for m in book]
        state = {"model": members.state(), "optimizer": optimizer.state_dict(), "members": json.dumps(saved),
                 "best_models": [m.best_state for m in book], "epoch": epoch,
                 "config": self._identity([m.seed for m in book])}
        if scaler.is_enabled():
            state["scaler"] = scaler.state_dict()
        save_torch_atomic(path, state)
