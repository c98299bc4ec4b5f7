"""The model card: `lungkd.json` beside a model's weights, and the one way it is read and written.

A `ModelCard` says what the model is (architecture, size, classes), what its input depends on (the
`InputContract`: sample rate, clip length and padding, the features and their normalisation, and for models
with prompts the prompt policy), how it was made (role, recipe, seed, selection protocol and epoch, data
fingerprint, versions), what it learnt from, its Scores with the data they were measured on, the warnings
those Scores call for (`test_warnings`: no better than answering "normal" for every cycle, or measured on too
few cycles or patients), and its limits (the temperature that calibrates its probabilities and the statistics
of its training data). A saved model
predicts from its card's contract, whatever the registry's defaults become (timm's `PretrainedCfg` travelling
with the weights is the example).

A model folder is what users pass to each other, so the card is untrusted input: it is read only as a
regular file of bounded size and nesting, and validated whole — every field typed and ranged, the statistics
of the dimensions they claim, a temperature that calibration could have fitted — before a tensor is built.
Every failure is a DamagedModelError that names the file, the field and what to do. Cards written before
the schema (version 1) are brought forward on reading.
"""
from __future__ import annotations

import base64
import binascii
import json
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (BaseModel, ConfigDict, Field, PlainSerializer, PlainValidator, StringConstraints, TypeAdapter,
                      ValidationError, field_validator, model_validator)

from lungkd.core.errors import LungKDError
from lungkd.core.features.inputs import ClapFeatureSettings, FbankSettings, InputSpec, PrepSettings
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.storage import UnreadableFileError, json_text, read_regular_file, write_text_atomic
from lungkd.core.workspace.layout import CARD_FILE

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 2
MAX_CARD_BYTES = 1 << 20  # a card is a few kB (the demo's: 12 kB); no honest one comes near this
MAX_CARD_DEPTH = 16  # the deepest honest path is made_by.recipe.students[0].train.lr: 6 levels
TEMPERATURE_RANGE = (0.05, 20.0)  # where calibration searches (core.training.calibration); nothing else is fitted
MAX_CLIP_SECONDS = 60.0
SIZES = ("full", "tiny")  # every architecture's: the paper's, and a small one for tests and CPU demos
DAMAGED_FIX = ("copy the model folder again from where it came from; a model LungKD trained in this workspace is "
               "trained again by running its recipe again (`lungkd run` / `lungkd train`).")


class DamagedModelError(LungKDError):
    """A saved model whose files are not what a LungKD model folder holds: cut short, changed on disk, or made
    by hand."""


Text = Annotated[str, StringConstraints(max_length=1000)]
Name = Annotated[str, StringConstraints(max_length=200)]
FileName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")]
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
Percent = Annotated[float, Field(ge=0.0, le=100.0)]
Count = Annotated[int, Field(ge=0, le=10**9)]
Seed = Annotated[int, Field(ge=0, le=2**63 - 1)]
FileSize = Annotated[int, Field(ge=0, le=1 << 36)]  # 64 GB: ten times the largest model LungKD trains


class CardPart(BaseModel):
    """Closed (unknown keys are refused), finite, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# ---------------------------------------------------------------- what the input depends on


class PromptPolicy(CardPart):
    """How a model with prompts had its prompts built (core.data.prompts): the parts of the sentence, the
    wording of missing values and where the chest location comes from."""

    parts: tuple[Literal["age", "sex", "location", "device"], ...] = ("age", "sex", "location", "device")
    missing: Literal["reference", "unknown"] = "reference"
    location_source: Literal["patient", "filename"] = "patient"


_FEATURE_KINDS = {"fbank": FbankSettings, "clap": ClapFeatureSettings}
_FEATURE_BOUNDS = {"num_mel_bins": (1, 512), "feature_size": (1, 512), "hop_length": (16, 48000),
                   "fft_window_size": (16, 65536), "max_length_s": (1, MAX_CLIP_SECONDS)}


def _settings(cls: type, value: Any, what: str):
    """A settings dataclass from its JSON table: every field present and of its type, nothing else, and the
    class's own checks (its __post_init__)."""
    if not isinstance(value, dict):
        raise ValueError(f"the {what} must be a table")
    names = set(cls.__dataclass_fields__)
    if set(value) != names:
        odd = sorted(set(value) ^ names)
        raise ValueError(f"the {what} must name exactly {', '.join(sorted(names))} (not: {', '.join(odd)})")
    for name, (low, high) in _FEATURE_BOUNDS.items():
        number = value.get(name)
        if isinstance(number, (int, float)) and not low <= number <= high:
            raise ValueError(f"{name} = {number} is outside {low}..{high:g}")
    try:
        return TypeAdapter(cls).validate_json(json.dumps(value), strict=True)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise ValueError(f"{'.'.join(map(str, first['loc'])) or what}: {first['msg']}") from None


def _preparation(value: Any) -> PrepSettings:
    prep = value if isinstance(value, PrepSettings) else _settings(PrepSettings, value, "preparation")
    if prep.clip_seconds > MAX_CLIP_SECONDS:
        raise ValueError(f"clip_seconds = {prep.clip_seconds} is beyond the {MAX_CLIP_SECONDS:g} s any model uses")
    return prep


def _features(value: Any) -> FbankSettings | ClapFeatureSettings:
    if isinstance(value, tuple(_FEATURE_KINDS.values())):
        return value
    kind = value.get("kind") if isinstance(value, dict) else None
    if not isinstance(kind, str) or kind not in _FEATURE_KINDS:  # a list there is no key of the table
        raise ValueError(f"the features need a kind, one of {', '.join(_FEATURE_KINDS)}")
    settings = {k: v for k, v in value.items() if k != "kind"}
    return _settings(_FEATURE_KINDS[value["kind"]], settings, f"{value['kind']} features")


def feature_kind(features: FbankSettings | ClapFeatureSettings) -> str:
    return next(kind for kind, cls in _FEATURE_KINDS.items() if isinstance(features, cls))


class InputContract(CardPart):
    """Everything a model's input depends on; inference builds inputs from it, never from the registry."""

    preparation: Annotated[PrepSettings, PlainValidator(_preparation), PlainSerializer(asdict)]
    features: Annotated[FbankSettings | ClapFeatureSettings, PlainValidator(_features),
                        PlainSerializer(lambda f: {"kind": feature_kind(f), **asdict(f)})]
    prompts: PromptPolicy | None = None  # None: the model reads no prompt

    @property
    def kind(self) -> str:
        return feature_kind(self.features)

    @classmethod
    def from_spec(cls, spec: InputSpec, prompts: PromptPolicy | None = None) -> "InputContract":
        """The contract of a model trained on `spec`'s inputs, with the prompt policy its data used."""
        return cls(preparation=spec.prep, features=spec.features, prompts=(prompts or PromptPolicy())
                   if spec.prompts else None)

    def spec(self) -> InputSpec:
        return InputSpec(self.preparation, self.features, prompts=self.prompts is not None)


# ---------------------------------------------------------------- scores, data, limits


class TestScores(CardPart):
    """The ICBHI metrics of the selected checkpoint on its test set (`core.metrics.Scores.to_dict()`)."""

    sp: Percent | None
    se: Percent | None
    score: Percent | None
    macro_f1: Percent | None = None
    recall: dict[Literal[CLASS_NAMES], Percent | None] = {}  # type: ignore[valid-type]
    counts: dict[Literal[CLASS_NAMES], Count] = {}  # type: ignore[valid-type]
    confusion: list[list[Count]] | None = None

    @field_validator("confusion")
    @classmethod
    def _square(cls, value):
        if value is not None and (len(value) != len(CLASS_NAMES) or any(len(r) != len(CLASS_NAMES) for r in value)):
            raise ValueError(f"the confusion matrix must be {len(CLASS_NAMES)} x {len(CLASS_NAMES)}")
        return value


class TestData(CardPart):
    dataset: Name
    split: Name
    cycles: Count
    patients: Count | None = None  # None: a card written before it was recorded


MIN_TEST_CYCLES = 50  # below this one cycle moves the Score by a point or more (over 2 for 20 cycles)
MIN_TEST_PATIENTS = 5  # below this the Score says how the model does on these few people, not on others


class TestWarning(CardPart):
    """Why a model's test Score does not show that it can be trusted: `value` against `limit`."""

    kind: Literal["not_above_all_normal", "few_test_cycles", "few_test_patients"]
    value: float  # the model's Score, or its test cycles or patients
    limit: float  # the Score of answering "normal" for every test cycle, or the least cycles or patients that count

    @property
    def text(self) -> str:
        if self.kind == "not_above_all_normal":
            return (f"Its test Score, {self.value:.1f}, is no better than answering \"normal\" for every cycle "
                    f"({self.limit:.1f} on the same test cycles): it has not learnt to tell the classes apart, and "
                    "its predictions should not be trusted.")
        if self.kind == "few_test_cycles":
            return (f"Its test Score was measured on only {self.value:.0f} cycles (fewer than {self.limit:.0f}): "
                    "the figure may be far from how it does on other recordings; test it on more before trusting it.")
        return (f"Its test Score was measured on the recordings of only {self.value:.0f} patients (fewer than "
                f"{self.limit:.0f}): it may not hold for other patients; test it on more before trusting it.")


def all_normal_score(counts: dict[str, int]) -> float | None:
    """The Score of answering "normal" for every cycle of a test set with these class counts (Sp 100, Se 0:
    50 where both normal and abnormal cycles are there); None where a class group is missing, as for any model."""
    if not counts:
        return None
    import numpy as np  # here, not above: listing models reads cards without numpy

    from lungkd.core.metrics import scores_from_confusion

    confusion = np.zeros((len(CLASS_NAMES), len(CLASS_NAMES)), dtype=np.int64)
    confusion[:, 0] = [counts.get(name, 0) for name in CLASS_NAMES]
    score = scores_from_confusion(confusion).score
    return None if np.isnan(score) else score


def assess_test_score(test: TestScores | None, data: TestData | None) -> tuple[TestWarning, ...]:
    """The warnings a test Score calls for, from the Score, its class counts and the cycles and patients it was
    measured on; none where the card records no test at all."""
    found = []
    trivial = all_normal_score(test.counts) if test is not None else None
    if test is not None and test.score is not None and trivial is not None and test.score <= trivial:
        found.append(TestWarning(kind="not_above_all_normal", value=test.score, limit=trivial))
    cycles = data.cycles if data is not None else sum(test.counts.values()) if test is not None and test.counts \
        else None
    if cycles is not None and cycles < MIN_TEST_CYCLES:
        found.append(TestWarning(kind="few_test_cycles", value=cycles, limit=MIN_TEST_CYCLES))
    if data is not None and data.patients is not None and data.patients < MIN_TEST_PATIENTS:
        found.append(TestWarning(kind="few_test_patients", value=data.patients, limit=MIN_TEST_PATIENTS))
    return tuple(found)


class SplitSummary(CardPart):
    recordings: Count
    patients: Count
    cycles: dict[Name, Count]
    devices: dict[Name, Count]
    sample_rates: dict[Name, Count]


class TrainingData(CardPart):
    """What the model learnt from (core.data.sources.describe_training_data)."""

    kind: Literal["synthetic", "dataset", "folder", "datasets"]  # datasets: several pooled (core.data.pooled)
    name: Name
    path: Text | None = None
    generator: dict[Name, int | float | str | bool | None] | None = None
    train: SplitSummary | None = None
    val: SplitSummary | None = None
    calibration: SplitSummary | None = None
    held_out_source: Name | None = None  # where the calibration cycles came from, when not from this data
    limits_fitted_by: Name | None = None  # set when the limits were fitted after training


class SplitCount(CardPart):
    split: Name
    cycles: Count


class ReliabilityBin(CardPart):
    low: float = Field(ge=0.0, le=1.0)
    high: float = Field(ge=0.0, le=1.0)
    count: Count
    confidence: float | None = Field(None, ge=0.0, le=1.0)
    accuracy: float | None = Field(None, ge=0.0, le=1.0)


class Calibration(CardPart):
    """Temperature scaling fitted on held-out cycles; `temperature` None (with the reason) when too few were
    held out. A temperature of 0 or below, or outside the range calibration searches, was not fitted."""

    temperature: float | None = Field(None, ge=TEMPERATURE_RANGE[0], le=TEMPERATURE_RANGE[1])
    reason: Text = ""
    fitted_on: SplitCount | None = None
    measured_on: SplitCount | None = None
    ece_before: float | None = Field(None, ge=0.0, le=1.0)
    ece_after: float | None = Field(None, ge=0.0, le=1.0)
    reliability_before: list[ReliabilityBin] = Field([], max_length=100)
    reliability_after: list[ReliabilityBin] = Field([], max_length=100)


class StatisticsCard(CardPart):
    """Where the model's training inputs lie (core.training.calibration.TrainingStatistics), the arrays as
    base64 little-endian float64; or only the reason they were not fitted."""

    reason: Text = ""
    summary: Text = ""
    distance: Text = ""
    limit: float | None = Field(None, gt=0.0)
    limit_quantile: float | None = Field(None, gt=0.0, le=100.0)
    train_cycles: Count | None = None
    held_out_cycles: Count | None = None
    held_out_split: Name | None = None
    dimensions: int | None = Field(None, ge=1, le=256)
    mean: str | None = None
    precision: str | None = None

    @model_validator(mode="after")
    def _whole(self) -> "StatisticsCard":
        arrays = (self.mean, self.precision, self.dimensions, self.limit)
        if all(a is None for a in arrays):
            return self
        if any(a is None for a in arrays):
            raise ValueError("the statistics need dimensions, limit, mean and precision together")
        self.array("mean", (self.dimensions,))
        self.array("precision", (self.dimensions, self.dimensions))
        return self

    @property
    def fitted(self) -> bool:
        return self.precision is not None

    def array(self, name: str, shape: tuple[int, ...]) -> np.ndarray:
        """The decoded array, checked: exactly `shape` float64 values, all finite."""
        import numpy as np

        try:
            raw = base64.b64decode(getattr(self, name), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{name} is not base64 text") from None
        expected = int(np.prod(shape)) * 8
        if len(raw) != expected:
            raise ValueError(f"{name} holds {len(raw) // 8} numbers where its {len(shape)}-d shape "
                             f"{'x'.join(map(str, shape))} needs {expected // 8}")
        values = np.frombuffer(raw, dtype="<f8").reshape(shape)
        if not np.isfinite(values).all():
            raise ValueError(f"{name} holds numbers that are not finite")
        return values


class ParentModel(CardPart):
    """The model this one started from (fine-tuned or adapted): its name and the sha256 of its card."""

    name: Name
    card_sha256: Sha256
    how: Name = ""


# ---------------------------------------------------------------- the card


Role = Literal["teacher", "student", "baseline"]


class ModelCard(CardPart):
    schema_version: Literal[2] = SCHEMA_VERSION
    architecture: Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,31}$")]
    size: Literal["full", "tiny"] = "full"
    pretrained: Text | None = None  # the starting weights (a Hugging Face id or a folder); None: random
    num_classes: int = Field(len(CLASS_NAMES), ge=2, le=64)
    classes: tuple[Name, ...] = CLASS_NAMES
    inputs: InputContract | None = None  # None only in cards written before it was recorded (see read)
    # how it was made
    role: Role | None = None
    training_labels: Name | None = None  # "hard" or the soft-label mode, e.g. "mean_3"
    experiment: Name | None = None
    run: Name | None = None  # a `lungkd train` run
    seed: Seed | None = None
    selection: Literal["best_test", "best_val", "last"] | None = None
    selected_epoch: Count | None = None
    selection_note: Text = ""
    trained_together_with: list[Seed] | None = None
    data_fingerprint: Name | None = None
    training_data: TrainingData | None = None
    parent: ParentModel | None = None
    description: Text = ""
    made_by: dict[Name, Any] | None = None  # how a shipped model was made: command, recipe, its teachers' Scores
    versions: dict[Name, Name] = {}
    # what it scores and where it stops
    test: TestScores | None = None
    test_data: TestData | None = None
    test_warnings: tuple[TestWarning, ...] = ()  # derived from test and test_data (below), never taken as given
    test_logits_sha256: Sha256 | None = None
    calibration: Calibration | None = None
    training_statistics: StatisticsCard | None = None
    checksums: dict[FileName, Sha256] = {}
    file_sizes: dict[FileName, FileSize] = {}  # bytes of each file of `checksums` (a .lungkd is checked against them)

    @model_validator(mode="after")
    def _classes(self) -> "ModelCard":
        if len(self.classes) != self.num_classes:
            raise ValueError(f"classes names {len(self.classes)} classes but num_classes is {self.num_classes}")
        if not set(self.file_sizes) <= set(self.checksums):
            raise ValueError("file_sizes names files that checksums does not")
        return self

    @model_validator(mode="after")
    def _derive_test_warnings(self) -> "ModelCard":
        """`test_warnings` follow from `test` and `test_data` whenever a card is made or read: a card written
        before the field, or changed by hand, gets the warnings its Scores call for, whatever it says."""
        object.__setattr__(self, "test_warnings", assess_test_score(self.test, self.test_data))  # frozen otherwise
        return self

    @property
    def temperature(self) -> float | None:
        return self.calibration.temperature if self.calibration else None

    @property
    def score(self) -> float | None:
        return self.test.score if self.test else None

    def to_json(self) -> dict:
        return self.model_dump(mode="json", exclude_none=True)

    def text(self) -> str:
        return json_text(self.to_json())

    def replace(self, **changes) -> "ModelCard":
        """A copy with `changes` (values as JSON or as card parts), validated as a card read from disk is."""
        parts = {key: value.model_dump(mode="json") if isinstance(value, BaseModel) else value
                 for key, value in changes.items()}
        return validate_card({**self.to_json(), **parts})


def validate_card(document: dict) -> ModelCard:
    """Strict JSON validation: no "4" for 4, no list where a table belongs, nothing unknown."""
    return ModelCard.model_validate_json(json.dumps(document), strict=True)


# ---------------------------------------------------------------- reading and writing


def card_path(folder: str | Path) -> Path:
    return Path(folder) / CARD_FILE


def read_model_card(folder: str | Path) -> ModelCard | None:
    """The card of a model folder; None when the folder has none (no finished model there, or a hub-style
    checkpoint). A card that cannot be trusted raises DamagedModelError naming the file and the field."""
    path = card_path(folder)
    if not path.exists() and not path.is_symlink():
        return None
    return parse_card(_card_document(path), path)


def parse_card(document: Any, path: str | Path | None = None) -> ModelCard:
    """A card from its JSON document (as read, or as it arrives in an archive), brought forward from version 1."""
    if not isinstance(document, dict):
        raise DamagedModelError("the model card is not a JSON object.", path=path, fix=DAMAGED_FIX)
    version = document.get("schema_version", 1)
    if isinstance(version, int) and not isinstance(version, bool) and version > SCHEMA_VERSION:
        raise DamagedModelError(f"the model card has schema version {version}, newer than the version {SCHEMA_VERSION} "
                                "this LungKD reads.", path=path, fix="upgrade LungKD to use this model.")
    if version == 1:
        document = _from_version_1(document)
    try:
        return validate_card(document)
    except ValidationError as exc:
        raise DamagedModelError(_validation_message(exc), path=path, fix=DAMAGED_FIX) from None


def write_model_card(folder: str | Path, card: ModelCard) -> Path:
    """Writes the card atomically (a reader sees the old card or the new one, never half)."""
    path = card_path(folder)
    write_text_atomic(path, card.text())
    return path


NOT_A_MODEL_FIX = "give the `model` folder of a finished run (`lungkd runs` lists them)."


def require_model_card(folder: str | Path) -> ModelCard:
    """The card of a model folder; a folder without one is refused (LungKDError), as no LungKD model."""
    card = read_model_card(folder)
    if card is None:
        raise LungKDError("not a LungKD model folder (no lungkd.json).", path=folder, fix=NOT_A_MODEL_FIX)
    return card


def update_model_card(folder: str | Path, **fields) -> ModelCard:
    """The card of an existing model folder with `fields` replaced, validated and written atomically: how a
    model trained before calibration existed gets its limits (`lungkd models fit-limits`)."""
    card = require_model_card(folder).replace(**fields)
    write_model_card(folder, card)
    return card


def _card_document(path: Path) -> Any:
    try:
        raw = read_regular_file(path, MAX_CARD_BYTES)
    except UnreadableFileError as exc:
        raise DamagedModelError(f"the model card is not read: {exc.reason}.", path=path, fix=DAMAGED_FIX) from None
    except OSError as exc:
        raise DamagedModelError(f"the model card cannot be read ({exc.strerror or exc}).", path=path,
                                fix=DAMAGED_FIX) from None
    return card_json(raw, path)


def card_json(raw: bytes, path: str | Path | None = None) -> Any:
    """The JSON document of a card's bytes (read from a file, or from an archive member of at most
    MAX_CARD_BYTES), nested no deeper than any card is."""
    try:
        document = json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise DamagedModelError(f"the model card is nested deeper than {MAX_CARD_DEPTH} levels.", path=path,
                                fix=DAMAGED_FIX) from None
    except (UnicodeDecodeError, ValueError) as exc:
        raise DamagedModelError(f"the model card is not JSON ({exc}).", path=path, fix=DAMAGED_FIX) from None
    if _depth(document) > MAX_CARD_DEPTH:
        raise DamagedModelError(f"the model card is nested deeper than {MAX_CARD_DEPTH} levels.", path=path,
                                fix=DAMAGED_FIX)
    return document


def _depth(document: Any) -> int:
    """How deep the JSON value nests, counted without recursion."""
    deepest, stack = 0, [(document, 1)]
    while stack:
        value, depth = stack.pop()
        deepest = max(deepest, depth)
        children = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def _validation_message(exc: ValidationError) -> str:
    """The first few problems, each naming its field as a dotted path."""
    problems = []
    for error in exc.errors(include_url=False)[:3]:
        where = ".".join(str(part) for part in error["loc"] if not str(part).startswith("function-")) or "the card"
        problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    more = len(exc.errors()) - len(problems)
    return "the model card is not valid (" + "; ".join(problems) + (f"; and {more} more" if more > 0 else "") + ")."


_DROPPED_V1 = {"history"}  # the epoch history lives in the workspace catalog (`lungkd runs NAME --epochs`)


def _from_version_1(document: dict) -> dict:
    """A version-1 card (a plain dict written before the schema) in version 2's form: `labels` was the class
    names or, for an experiment's runs, the soft-label mode; `preparation` and `features` (a cache key such as
    'fbank:{"normalization": ...}') become the input contract."""
    card = {key: value for key, value in document.items() if key not in _DROPPED_V1}
    labels = card.pop("labels", None)
    if isinstance(labels, str):
        card["training_labels"] = labels
    elif isinstance(labels, list):
        card["classes"] = labels
    preparation, features = card.pop("preparation", None), card.pop("features", None)
    if isinstance(preparation, dict) and isinstance(features, str) and ":" in features:
        kind, _, settings = features.partition(":")
        try:
            settings = json.loads(settings)
        except ValueError:
            settings = None
        card["inputs"] = {"preparation": preparation,
                          "features": {"kind": kind, **settings} if isinstance(settings, dict) else None}
    card["schema_version"] = SCHEMA_VERSION
    return card


# ---------------------------------------------------------------- what a user is told


class ModelNotes(BaseModel):
    """What a user is told beside a model's predictions: what it learnt from and what its numbers mean."""

    model_config = ConfigDict(frozen=True)

    source: str  # e.g. "synthetic recordings only", "ICBHI 2017 Respiratory Sound Database"
    amount: str  # e.g. "74 recordings, 458 cycles, 4 device(s), 4–44.1 kHz"
    synthetic_only: bool
    calibrated: bool
    marks_unlike: bool  # its card holds statistics of its training data
    test_warnings: tuple[TestWarning, ...] = ()  # its card's: a test Score that does not show it can be trusted

    @property
    def trained_on(self) -> str:
        return f"{self.source}: {self.amount}" if self.amount else self.source

    def warnings(self) -> list[str]:
        out = [warning.text for warning in self.test_warnings]
        if self.synthetic_only:
            out.append("Trained on synthetic recordings only: on real recordings its predictions are a "
                       "demonstration, not a diagnosis.")
        if not self.calibrated:
            out.append("Uncalibrated: its probabilities were never fitted to cycles it did not train on, and may "
                       "be far surer than it is right.")
        if not self.marks_unlike:
            out.append("Its card holds no statistics of its training data: cycles outside that data cannot be marked.")
        return out


def model_notes(card: ModelCard | None) -> ModelNotes:
    calibrated = card is not None and card.temperature is not None
    marks = card is not None and card.training_statistics is not None and card.training_statistics.fitted
    data = card.training_data if card is not None else None
    test_warnings = card.test_warnings if card is not None else ()
    if data is None:
        return ModelNotes(source="unknown data (its card does not say)", amount="", synthetic_only=False,
                          calibrated=calibrated, marks_unlike=marks, test_warnings=test_warnings)
    train = data.train
    counts = []
    if train is not None:
        rates = sorted(int(r) for r in train.sample_rates if r.isdigit())
        counts = [f"{train.recordings} recordings", f"{sum(train.cycles.values())} cycles",
                  f"{len(train.devices)} device(s)"]
        if rates:
            low, high = rates[0] / 1000, rates[-1] / 1000
            counts.append(f"{low:g}–{high:g} kHz" if len(rates) > 1 else f"{low:g} kHz")
    synthetic = data.kind == "synthetic"
    where = "synthetic recordings only" if synthetic else data.name
    return ModelNotes(source=where, amount=", ".join(counts), synthetic_only=synthetic, calibrated=calibrated,
                      marks_unlike=marks, test_warnings=test_warnings)
