"""Adapting a trained model to new recordings (`lungkd adapt`, the Studio's "Adapt a model to these
recordings"): a clinic's own stethoscope, with the few recordings it can annotate.

The model goes on training on the new recordings' training patients — its last layers only (the head, or the
head and the backbone's last block) or the whole of it — from its own weights, with the input contract of its
card (the same preparation, features and prompts: adapting never changes what the model reads). Its limits are
then fitted again on the new recordings (core.training.calibration.fit_limits): the temperature and the distance
limit on patients held out of the adaptation, the training statistics on the patients it adapted on. The
held-out test patients score the model before and after. The new model's card names its parent (its name and the
sha256 of its card) and the data it adapted on.

Where the model is an experiment's student, its teachers can take part (`distil`): each cycle's target is then
half its annotation and half the teachers' logit-mean ensemble on it (core.kd.soft_labels), so what the teachers
know of sounds like these tempers a handful of new annotations without overruling them. That is why adapting
lives beside the experiments: it reads an experiment's teachers (core.kd.store).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Literal

import numpy as np
import torch
from pydantic import Field

from lungkd.core.cancel import CancelToken
from lungkd.core.data.dataset import DatasetIndex, load_dataset
from lungkd.core.data.sources import CALIBRATION_SPLIT, DataSpec, dataset_label, describe_training_data
from lungkd.core.data.splits import patient_split, validation_split
from lungkd.core.errors import DataError, LungKDError
from lungkd.core.features.cache import FeatureCache
from lungkd.core.features.cycle_sets import CycleSet, build_cycle_sets
from lungkd.core.kd.soft_labels import mean_teacher_targets
from lungkd.core.kd.store import teachers_for_model
from lungkd.core.labels import NUM_CLASSES
from lungkd.core.metrics import Scores, scores_from_logits
from lungkd.core.models.card import InputContract, ModelCard, ParentModel, PromptPolicy, card_path, read_model_card
from lungkd.core.models.classifiers import Classifier
from lungkd.core.models.inference import load_saved_model, predict_logits
from lungkd.core.models.inventory import card_name
from lungkd.core.models.registry import model_info, save_model
from lungkd.core.recipes import RunSettings, TrainConfig
from lungkd.core.schema import Spec
from lungkd.core.storage import file_sha256
from lungkd.core.training.calibration import TrainingStatistics, fit_limits
from lungkd.core.training.trainer import Progress, Trainer
from lungkd.core.workspace.layout import MODEL_FOLDER, adapted_model_folder, cache_folder, valid_name

Layers = Literal["head", "last", "all"]
LAYER_WORDS = {"head": "the head", "last": "the head and the last block", "all": "the whole model"}
DISTIL_WEIGHT = 0.5  # the teachers' share of each target; the annotation's one-hot has the rest
MIN_PATIENTS = 3  # one to adapt on, one to calibrate on, one to test on


class AdaptSettings(Spec):
    layers: Layers = "last"
    epochs: int = Field(20, ge=1, le=10_000)
    batch_size: int = Field(8, ge=1, le=65_536)
    lr: float | None = Field(None, gt=0.0, le=10.0)  # None: the architecture's own training rate
    distil: bool = False
    seed: int = Field(1, ge=0)
    device: str = "auto"
    test_fraction: float = Field(0.3, gt=0.0, lt=1.0)  # of the patients, where the folder has no split file
    calibration_fraction: float = Field(0.3, gt=0.0, lt=1.0)  # of the training patients

    def train_config(self, arch: str) -> TrainConfig:
        """Few cycles and few epochs: no SpecAugment (it slows learning on little data, bench/README.md) and no
        weight averaging."""
        lr = self.lr or model_info(arch).paper_train["lr"]
        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=lr, specaugment=False)


@dataclass(frozen=True)
class HeldOutCheck:
    """A model on the new recordings' test patients: its Scores and the share of their cycles it marks as
    unlike its training data (None where its card holds no statistics)."""

    scores: Scores | None
    unlike_share: float | None

    def text(self) -> str:
        if self.scores is None:
            return "not tested (no test patients)"
        unlike = "" if self.unlike_share is None else f", {self.unlike_share:.0%} of the cycles marked unlike"
        return f"{self.scores}{unlike}"


@dataclass(frozen=True)
class Adaptation:
    folder: Path
    card: ModelCard
    cycles: dict[str, int]  # per split: train (adapted on), calibration, test
    before: HeldOutCheck  # the parent model
    after: HeldOutCheck

    def summary(self) -> list[str]:
        """What was done and what it gave, in sentences (the command line's and the Studio's)."""
        cycles = self.cycles
        return [f"Adapted: {self.card.parent.how} ({cycles['train']} cycles); limits fitted on "
                f"{cycles.get(CALIBRATION_SPLIT, 0)} held-out cycles; tested on {cycles.get('test', 0)} cycles of "
                "other patients.", f"Before: {self.before.text()}", f"After: {self.after.text()}"]


def adaptation_split(index: DatasetIndex, settings: AdaptSettings = AdaptSettings(), seed: int = 0) -> None:
    """Splits the new recordings patient-wise in place: the folder's own split file where it has one (ICBHI
    layout), else `test_fraction` of the patients for testing; then `calibration_fraction` of the training
    patients held out for calibration. Refused unless each of the three gets a patient."""
    usable = {r.patient for r in index.recordings if r.usable_audio and r.cycles}
    if len(usable) < MIN_PATIENTS:
        raise DataError(f"adapting needs annotated recordings of at least {MIN_PATIENTS} patients (one to adapt on, "
                        f"one to calibrate on, one to test on); this folder has {len(usable)}.", path=index.root,
                        fix="annotate recordings of more patients; the patient is the first part of an ICBHI name "
                            "(101_1b1_Al_sc_Meditron: patient 101).")
    if not index.has_split_file:
        index.apply_split(patient_split(index, settings.test_fraction, seed))
    sides = {split: {r.patient for r in index.recordings if r.split == split and r.patient in usable}
             for split in ("train", "test")}
    if len(sides["train"]) < 2 or not sides["test"]:
        raise DataError(f"the folder's split file leaves {len(sides['train'])} training and {len(sides['test'])} test "
                        "patients with annotated audio; adapting needs 2 training patients (one is held out to "
                        "calibrate) and 1 test patient.", path=index.root,
                        fix="list more patients in the split file, or remove it to split by patient.")
    index.apply_split(validation_split(index, settings.calibration_fraction, seed, into=CALIBRATION_SPLIT))


def trainable_modules(model: Classifier, layers: Layers) -> list[torch.nn.Module] | None:
    """The modules that learn; None: all of them."""
    return {"head": [model.head], "last": [*model.last_block(), model.head], "all": None}[layers]


def adapt_model(base_folder: str | Path, index: DatasetIndex, out_folder: str | Path, settings: AdaptSettings,
                data: DataSpec, *, cache: FeatureCache | None = None,
                on_progress: Callable[[Progress], None] | None = None,
                cancel: CancelToken | None = None) -> Adaptation:
    """Adapts the model in `base_folder` to `index` (split: train, calibration, test; `adaptation_split`) and
    saves it, with its card, to `out_folder`. `data` is how the recordings are described on the card."""
    base_folder = Path(base_folder)
    teachers = teachers_for_model(base_folder) if settings.distil else []
    if settings.distil and not teachers:
        raise LungKDError("this model has no teachers at hand to distil from.", path=base_folder,
                          fix="adapt without distilling; only an experiment's students have their teachers beside "
                              "them (in the workspace where the experiment ran).")
    model, base_card = load_saved_model(base_folder)
    sets = _cycle_sets(index, base_card.inputs, cache, cancel)
    if "train" not in sets:
        raise DataError("no training cycles with audio to adapt on.", path=index.root,
                        fix="check the recordings' audio and annotations (`lungkd data stats FOLDER`).")
    test = sets.get("test")
    before = held_out_check(model, base_card, test)
    targets = distillation_targets(teachers, index, sets["train"], cache, cancel) if teachers else None
    trainer = Trainer(settings.train_config(base_card.architecture), seed=settings.seed,
                      settings=RunSettings(selection="last", device=settings.device), on_progress=on_progress,
                      cancel=cancel)
    # the test patients are scored once, at the end: the epochs are not chosen on them (selection "last")
    result = trainer.fit(model, sets["train"], targets=targets, trainable=trainable_modules(model, settings.layers))
    recordings = sum(1 for r in index.recordings if r.split == "train" and r.usable_audio and r.cycles)
    epochs = f"{settings.epochs} epoch" + ("s" if settings.epochs != 1 else "")
    how = (f"{LAYER_WORDS[settings.layers]} trained {epochs} on {recordings} recordings of "
           f"{dataset_label(data)}" + (f", half of each target from {_teachers(len(teachers))}" if teachers else ""))
    parent = ParentModel(name=_name(base_folder, base_card)[:200], card_sha256=file_sha256(card_path(base_folder)),
                         how=how[:200])
    card = result.model_card(
        size=base_card.size, pretrained=str(base_folder), inputs=base_card.inputs, seed=settings.seed,
        training_labels=f"hard+mean_{len(teachers)}" if teachers else "hard", parent=parent,
        description=f"{parent.name}, adapted: {how}"[:1000], data_fingerprint=index.fingerprint(),
        training_data=describe_training_data(data, index),
        test_data={"dataset": dataset_label(data), "split": "test", "cycles": len(test)} if test else None,
        **fit_limits(result.model, sets, cancel=cancel))
    after = held_out_check(result.model, card, test)
    if after.scores is not None:
        card = card.replace(test=after.scores.to_dict())
    card = read_model_card(save_model(result.model, out_folder, card))  # as saved: with its files' checksums
    return Adaptation(Path(out_folder), card, {name: len(s) for name, s in sets.items()}, before, after)


def adapted_name(folder: str | Path) -> str:
    """The name an adapted model gets unless told otherwise: its recordings' folder's."""
    return valid_name(Path(folder).resolve().name, "-adapted")


def adapt_to_folder(base_folder: str | Path, folder: str | Path, workspace: Path, name: str | None,
                    settings: AdaptSettings, *, on_progress: Callable[[Progress], None] | None = None,
                    cancel: CancelToken | None = None) -> Adaptation:
    """`lungkd adapt` and the Studio's adaptation: the recordings in `folder`, split by patient
    (`adaptation_split`), the new model saved as the workspace's adapted model `name` (default `adapted_name`),
    never over one that exists."""
    out = adapted_model_folder(workspace, name or adapted_name(folder))
    if out.exists():
        raise LungKDError("an adapted model of this name exists already.", path=out,
                          fix="give the new model another name, or delete that folder first.")
    index = load_dataset(folder)
    adaptation_split(index, settings)
    data = DataSpec(path=str(folder), split="official" if index.has_split_file else "patient")
    return adapt_model(base_folder, index, out, settings, data, cache=FeatureCache(cache_folder(workspace)),
                       on_progress=on_progress, cancel=cancel)


def _cycle_sets(index: DatasetIndex, inputs: InputContract, cache: FeatureCache | None,
                cancel: CancelToken | None) -> dict[str, CycleSet]:
    """The recordings as the model's contract builds its inputs, prompts included."""
    policy = inputs.prompts or PromptPolicy()
    return build_cycle_sets(index, inputs.spec(), cache=cache, location_source=policy.location_source,
                            missing=policy.missing, cancel=cancel)


def _teachers(count: int) -> str:
    return "its teacher" if count == 1 else f"the ensemble of its {count} teachers"


def _name(folder: Path, card: ModelCard) -> str:
    """The parent as the model picker names it: by what made it, else by its folder."""
    return card_name(card) or (folder.parent if folder.name == MODEL_FOLDER else folder).name


def held_out_check(model: torch.nn.Module, card: ModelCard, test: CycleSet | None) -> HeldOutCheck:
    """The model (with `card`, its limits) on the test cycles."""
    if test is None:
        return HeldOutCheck(None, None)
    scores = scores_from_logits(predict_logits(model, test), test.labels)
    statistics = TrainingStatistics.from_card(card.training_statistics)
    if statistics is None:
        return HeldOutCheck(scores, None)
    return HeldOutCheck(scores, float(np.mean(statistics.distances(test.features) > statistics.limit)))


def distillation_targets(teachers: list[Path], index: DatasetIndex, train: CycleSet, cache: FeatureCache | None,
                         cancel: CancelToken | None) -> torch.Tensor:
    """(N, 4) targets of the training cycles: DISTIL_WEIGHT of the teachers' logit-mean ensemble (each teacher
    reading its own inputs, as its card says) and the rest the annotation."""
    logits = []
    for folder in teachers:
        teacher, card = load_saved_model(folder)
        own = _cycle_sets(index, card.inputs, cache, cancel)["train"]
        row = {cycle: i for i, cycle in enumerate(own.cycle_ids)}
        logits.append(predict_logits(teacher, own, cancel=cancel).numpy()[[row[c] for c in train.cycle_ids]])
    soft = mean_teacher_targets(np.stack(logits, axis=1), list(range(len(logits))))
    onehot = np.eye(NUM_CLASSES)[train.labels.numpy()]
    return torch.from_numpy((DISTIL_WEIGHT * soft + (1 - DISTIL_WEIGHT) * onehot).astype(np.float32))
