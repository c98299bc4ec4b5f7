"""The model card (core/models/card.py): one reader for every command, cards written by earlier LungKD versions
brought forward, a saved model predicting from its own input contract whatever the registry's defaults become,
and a card from someone else treated as untrusted input: bounded, typed and ranged, refused with the field named."""
import copy
import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from lungkd.core.analysis.limits import load_model_with_limits
from lungkd.core.analysis.predict import analyse_recording
from lungkd.core.features.inputs import FbankSettings
from lungkd.core.kd.report import ExperimentReport
from lungkd.core.kd.report_pages import html_report, markdown_report
from lungkd.core.errors import LungKDError
from lungkd.core.models import registry
from lungkd.core.models.card import (CARD_FILE, MAX_CARD_BYTES, DamagedModelError, ModelCard, parse_card,
                                     read_model_card, write_model_card)
from lungkd.core.models.inference import load_saved_model
from lungkd.core.models.inventory import find_models, shipped_models_folder

V1 = Path(__file__).parent / "data" / "v1"  # a card and a report written by LungKD before the schema (issue 19)
DEMO = shipped_models_folder() / "demo-cnn6"


def _v1(name: str) -> dict:
    return json.loads((V1 / name).read_text())


# ---------------------------------------------------------------- earlier versions


def test_a_version_1_card_loads_with_its_labels_and_input_contract_brought_forward():
    student = parse_card(_v1("student-card.json"))
    assert student.schema_version == 2 and student.role == "student" and student.training_labels == "mean_2"
    assert student.classes == ("normal", "crackle", "wheeze", "both")  # "labels" meant the soft labels here
    assert student.inputs.preparation.sample_rate == 16000 and student.inputs.preparation.clip_seconds == 8.0
    assert student.inputs.features == FbankSettings(num_mel_bins=128, normalization="per_sample")
    assert student.inputs.prompts is None  # a CNN6 reads no prompt
    demo = parse_card(_v1("demo-card.json"))
    assert demo.made_by["command"] == "make demo-model" and demo.temperature == pytest.approx(0.7487, abs=1e-4)
    assert demo.training_statistics.dimensions == 24 and demo.test.score == pytest.approx(88.958, abs=1e-3)
    assert demo == read_model_card(DEMO)  # the shipped card, written again as version 2, says the same


def test_a_version_1_report_loads_and_renders_as_it_did():
    report = ExperimentReport.read(V1 / "report.json")
    assert report.name == "v1-report" and [t.seed for t in report.teachers] == [1, 2]
    assert report.teachers[0].role == "teacher" and report.teachers[0].labels == "hard"  # keys v1 did not write
    assert [(s.role, s.labels) for s in report.students] == [("student", "mean_2"), ("baseline", "hard")]
    assert report.summary().students[0].gain == pytest.approx(report.student_groups[0].gain)
    markdown = markdown_report(report)
    assert markdown.startswith("# LungKD experiment v1-report\n") and "| student | distilled Score" in markdown
    assert html_report(report).count("<table>") >= 4
    assert report.headline()[0].startswith("best teacher: seed ")


# ---------------------------------------------------------------- a saved model predicts as it was trained


def test_a_saved_model_keeps_its_predictions_when_the_registry_defaults_change(synthetic_dir, monkeypatch):
    recording = sorted(synthetic_dir.glob("*.wav"))[0]
    before = analyse_recording(recording, load_model_with_limits(DEMO))
    cnn6 = registry.model_info("cnn6")
    changed = replace(cnn6, inputs=replace(cnn6.inputs, features=FbankSettings(num_mel_bins=64,
                                                                               normalization="audioset")))
    monkeypatch.setitem(registry._REGISTRY, "cnn6", changed)
    assert registry.model_info("cnn6").inputs.features.num_mel_bins == 64  # the defaults did change
    after = analyse_recording(recording, load_model_with_limits(DEMO))
    np.testing.assert_array_equal([c.probabilities for c in after.cycles], [c.probabilities for c in before.cycles])


def test_a_card_written_before_the_contract_existed_gets_its_architectures_inputs():
    document = _v1("student-card.json")
    del document["preparation"], document["features"]
    card = parse_card(document)
    assert card.inputs is None  # said nothing: inference takes the registry's inputs of its time
    from lungkd.core.models.inference import input_contract

    assert input_contract(card).spec() == registry.model_info("cnn6").inputs


# ---------------------------------------------------------------- untrusted cards


@pytest.fixture
def demo_copy(tmp_path) -> Path:
    folder = tmp_path / "demo"
    shutil.copytree(DEMO, folder)
    return folder


def _tampered(folder: Path, change) -> Path:
    document = json.loads((folder / CARD_FILE).read_text())
    change(document)
    (folder / CARD_FILE).write_text(json.dumps(document))
    return folder


def _set(path: str, value):
    def change(document):
        *parents, key = path.split(".")
        target = document
        for part in parents:
            target = target[part]
        target[key] = value
    return change


def _drop(key: str):
    return lambda document: document.pop(key)


REFUSED = [
    ("architecture unknown", _set("architecture", "gpt5"), "architecture 'gpt5'"),
    ("architecture a path", _set("architecture", "../../etc/passwd"), "architecture"),
    ("architecture missing", _drop("architecture"), "architecture"),
    ("architecture a number", _set("architecture", 6), "architecture"),
    ("architecture a list", _set("architecture", ["cnn6"]), "architecture"),
    ("checksums a list", _set("checksums", ["ab"]), "checksums"),
    ("checksum of a path", _set("checksums", {"../x": "0" * 64}), "checksums"),
    ("temperature as text", _set("calibration.temperature", "0.7"), "calibration.temperature"),
    ("temperature negative", _set("calibration.temperature", -0.75), "calibration.temperature"),
    ("temperature zero", _set("calibration.temperature", 0), "calibration.temperature"),
    ("statistics of other dimensions", _set("training_statistics.dimensions", 25), "training_statistics"),
    ("statistics cut short", lambda d: d["training_statistics"].update(mean=d["training_statistics"]["mean"][:-12]),
     "training_statistics"),
    ("statistics not finite", _set("training_statistics.limit", None), "training_statistics"),
    ("a clip an hour long", _set("inputs.preparation.clip_seconds", 3600.0), "clip_seconds"),
    ("a feature setting unknown", _set("inputs.features.hop", 1), "features"),
    ("an unknown key", _set("owner", "me"), "owner"),
    ("a newer schema", _set("schema_version", 99), "upgrade LungKD"),
]


@pytest.mark.parametrize("change, words", [(c, w) for _, c, w in REFUSED], ids=[i for i, _, _ in REFUSED])
def test_a_tampered_card_is_refused_naming_the_field(demo_copy, change, words):
    _tampered(demo_copy, change)
    with pytest.raises(DamagedModelError) as caught:
        load_model_with_limits(demo_copy)
    problem = caught.value.problem
    assert words in f"{problem.message} {problem.fix}" and problem.path == str(demo_copy / CARD_FILE) and problem.fix


def test_a_card_that_is_not_json_too_deep_too_large_or_not_a_file_is_refused_by_reading_it_bounded(demo_copy):
    card = demo_copy / CARD_FILE
    for text, words in (("{not json", "not JSON"), ("[" * 100_000 + "]" * 100_000, "nested deeper"),
                        ('{"a": ' * 20 + "1" + "}" * 20, "nested deeper"), ("[1, 2]", "not a JSON object")):
        card.write_text(text)
        with pytest.raises(DamagedModelError, match=words):
            read_model_card(demo_copy)
    card.write_bytes(b" " * (MAX_CARD_BYTES + 1))
    with pytest.raises(DamagedModelError, match="larger than 1 MB"):
        read_model_card(demo_copy)
    card.unlink()
    os.mkfifo(card)  # opening a FIFO for reading would wait for a writer for ever
    with pytest.raises(DamagedModelError, match="it is a pipe, not a regular file"):
        read_model_card(demo_copy)


def test_the_model_list_keeps_a_damaged_card_as_unusable_after_the_others(demo_copy, tmp_path):
    _tampered(demo_copy, _set("calibration.temperature", -0.75))
    shutil.copytree(DEMO, tmp_path / "good")
    assert [(m.path, m.usable) for m in find_models(tmp_path)] == [(tmp_path / "good", True), (demo_copy, False)]


def test_checksums_recomputed_to_match_still_cannot_make_weights_of_another_shape_load(demo_copy):
    from safetensors.torch import save_file
    import torch

    save_file({"weight": torch.zeros(4, 7), "bias": torch.zeros(4)}, str(demo_copy / "head.safetensors"))
    card = read_model_card(demo_copy)
    from lungkd.core.storage import file_sha256

    write_model_card(demo_copy, card.replace(checksums={**card.checksums,
                                                        "head.safetensors": file_sha256(demo_copy / "head.safetensors")}))
    with pytest.raises(LungKDError, match="head"):
        load_saved_model(demo_copy)


MUTATIONS = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=True),
                      st.text(max_size=20), st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5),
                                                                                                 st.integers(),
                                                                                                 max_size=3))


def _paths(value, prefix=()):
    if isinstance(value, dict):
        for key, item in value.items():
            yield prefix + (key,)
            yield from _paths(item, prefix + (key,))


DEMO_DOCUMENT = json.loads((DEMO / CARD_FILE).read_text())
DEMO_PATHS = list(_paths(DEMO_DOCUMENT))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(where=st.sampled_from(DEMO_PATHS), value=MUTATIONS)
@example(where=("inputs", "features", "kind"), value=[])  # found by this test: a list was looked up as a key
def test_any_field_changed_to_anything_parses_or_is_refused_as_damaged(where, value):
    document = copy.deepcopy(DEMO_DOCUMENT)
    target = document
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    try:
        card = parse_card(document)
    except DamagedModelError as exc:
        assert exc.problem.message.startswith("the model card")
        return
    assert isinstance(card, ModelCard) and card.architecture
