"""A model whose test Score does not show it can be trusted — no better than answering "normal" for every cycle,
or measured on fewer than 50 cycles or 5 patients — carries typed warnings on its card, computed when it is
saved and derived again for cards written before, and they reach every place a user meets the model: the notes
`lungkd predict` and the Studio show, and `lungkd models trained`."""
import json

import pytest

from lungkd.core.cancel import CancelToken
from lungkd.core.cli import main
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import DataSpec, resolve_dataset
from lungkd.core.kd.executors import ProcessExecutor
from lungkd.core.kd.jobs import FinishedRun, RunJob, RunSpec
from lungkd.core.models.card import (MIN_TEST_CYCLES, MIN_TEST_PATIENTS, all_normal_score, card_path, model_notes,
                                     read_model_card, write_model_card)
from lungkd.core.models.inventory import find_models
from lungkd.core.recipes import ModelSpec, RunSettings, TrainConfig, load_recipe
from lungkd.core.training.single_run import train_from_recipe

HANDFUL = """
name = "handful"
selection = "last"
[data]
synthetic = { recordings = 8, seed = 2 }
split = "patient"
[model]
arch = "cnn6"
size = "tiny"
[train]
epochs = 1
batch_size = 8
lr = 1e-3
"""

# what "Train on these recordings" gave on 10 real recordings (issue 21): 18 test cycles of 4 patients
BELOW_ALL_NORMAL = {"sp": 30.0, "se": 50.0, "score": 40.0,
                    "counts": {"normal": 10, "crackle": 4, "wheeze": 3, "both": 1}}


@pytest.fixture(scope="module")
def handful(tmp_path_factory):
    """`lungkd train` of a tiny CNN6 on 8 generated recordings: its workspace, recipe and model folder."""
    folder = tmp_path_factory.mktemp("handful")
    (folder / "handful.toml").write_text(HANDFUL)
    recipe = load_recipe(folder / "handful.toml")
    _, model = train_from_recipe(recipe, folder / "ws")
    return folder / "ws", recipe, model


def _test_patients(index) -> set[str]:
    return {r.patient for r in index.recordings if r.split == "test" and r.usable_audio and r.cycles}


def test_a_model_trained_on_a_handful_of_recordings_says_its_score_counts_for_little(handful):
    workspace, recipe, model = handful
    card = read_model_card(model)
    patients = _test_patients(resolve_dataset(recipe.data, workspace, selection=recipe.selection))
    assert card.test_data.patients == len(patients) < MIN_TEST_PATIENTS
    assert card.test_data.cycles == sum(card.test.counts.values()) < MIN_TEST_CYCLES
    kinds = [w.kind for w in card.test_warnings]
    assert {"few_test_cycles", "few_test_patients"} <= set(kinds)
    # the all-normal answer's Score on these very test cycles; the model is marked exactly when it is not above it
    trivial = all_normal_score(card.test.counts)
    assert trivial == 50.0
    assert ("not_above_all_normal" in kinds) == (card.score is None or card.score <= trivial)
    # computed when saved: the file itself holds them
    stored = json.loads(card_path(model).read_text())["test_warnings"]
    assert [w["kind"] for w in stored] == kinds
    assert stored[kinds.index("few_test_patients")] == {"kind": "few_test_patients", "value": len(patients),
                                                        "limit": MIN_TEST_PATIENTS}


def test_a_score_at_or_below_all_normal_is_marked_against_the_counts_of_its_own_test_set(handful):
    card = read_model_card(handful[2])
    below = card.replace(test=BELOW_ALL_NORMAL)
    warning = below.test_warnings[0]
    assert (warning.kind, warning.value, warning.limit) == ("not_above_all_normal", 40.0, 50.0)
    assert "no better than answering \"normal\" for every cycle (50.0 on the same test cycles)" in warning.text
    at = card.replace(test={**BELOW_ALL_NORMAL, "sp": 100.0, "se": 0.0, "score": 50.0})
    assert at.test_warnings[0].kind == "not_above_all_normal"  # "at or below"
    above = card.replace(test={**BELOW_ALL_NORMAL, "sp": 100.0, "se": 0.5, "score": 50.25},
                         test_data={"dataset": "d", "split": "test", "cycles": 400, "patients": 30})
    assert above.test_warnings == ()
    # without normal cycles there is no Score to beat, for the model or for the all-normal answer
    assert all_normal_score({"normal": 0, "crackle": 5, "wheeze": 0, "both": 0}) is None


def test_a_finished_run_with_its_card_survives_the_trip_as_json(handful):
    card = read_model_card(handful[2]).replace(test=BELOW_ALL_NORMAL)
    run = FinishedRun(role="teacher", arch="cnn6", seed=1, labels="hard", folder="f", card=card)
    assert FinishedRun.model_validate(run.model_dump(mode="json")) == run
    assert FinishedRun.model_validate_json(run.model_dump_json()).card.test_warnings == card.test_warnings


def test_an_old_card_gets_its_warnings_on_reading_and_a_file_cannot_talk_them_away(handful, tmp_path):
    card = read_model_card(handful[2])
    document = card.replace(test=BELOW_ALL_NORMAL, test_data={"dataset": "d", "split": "test", "cycles": 18}).to_json()
    document["test_warnings"] = []  # what a card written before the field, or edited by hand, says
    folder = tmp_path / "old"
    folder.mkdir()
    card_path(folder).write_text(json.dumps(document))
    old = read_model_card(folder)
    assert [w.kind for w in old.test_warnings] == ["not_above_all_normal", "few_test_cycles"]  # no patients known
    del document["test_warnings"]
    card_path(folder).write_text(json.dumps(document))
    assert read_model_card(folder).test_warnings == old.test_warnings


@pytest.mark.slow
def test_an_experiments_runs_record_their_test_patients_and_bring_their_warnings_back_from_a_worker(
        synthetic_dir, tmp_path):
    spec = RunSpec(role="teacher", model=ModelSpec(arch="cnn6", size="tiny"), labels="hard", seed=1,
                   train=TrainConfig(epochs=1, batch_size=16))
    index = load_dataset(synthetic_dir)
    job = RunJob(spec=spec, stage="teachers", workspace=str(tmp_path), folder=str(tmp_path / "teacher"),
                 data=DataSpec(path=str(synthetic_dir)), settings=RunSettings(selection="last"),
                 data_fingerprint=index.fingerprint())
    # through a worker process: the finished run travels back as JSON, its card with its warnings
    card = ProcessExecutor(workers=1).run([job], lambda event: None, CancelToken())[0].card
    assert card.test_data.patients == len(_test_patients(index)) == 2  # 5 test recordings of 2 patients
    assert {"few_test_cycles", "few_test_patients"} <= {w.kind for w in card.test_warnings}
    assert card == read_model_card(tmp_path / "teacher" / "model")


def test_predict_and_the_studios_notes_say_why_and_models_trained_marks_it(handful, capsys):
    workspace, _, model = handful
    write_model_card(model, read_model_card(model).replace(test=BELOW_ALL_NORMAL))
    notes = model_notes(read_model_card(model)).warnings()
    assert notes[0].startswith("Its test Score, 40.0, is no better than answering \"normal\"")
    recording = next((workspace / "datasets").rglob("*.wav"))
    assert main(["predict", str(model), str(recording)]) == 0
    err = capsys.readouterr().err
    assert "note: Its test Score, 40.0, is no better than answering" in err
    assert "note: Its test Score was measured on the recordings of only" in err

    entries = find_models(workspace)
    assert [e.test_warnings[0].kind for e in entries] == ["not_above_all_normal"]
    assert main(["models", "trained", "--workspace", str(workspace)]) == 0
    out = capsys.readouterr().out
    assert "⚠ Score  40.0  run handful · cnn6 · seed 1, on the test split of synthetic-8-seed2-noise0" in out
    assert "  Score  89.0  demo-cnn6" in out  # the shipped model, unmarked
    assert main(["models", "trained", "--workspace", str(workspace), "--json"]) == 0
    listed = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert [w["kind"] for w in listed["run handful · cnn6 · seed 1"]["warnings"]][0] == "not_above_all_normal"
    assert listed["demo-cnn6"]["warnings"] == []
