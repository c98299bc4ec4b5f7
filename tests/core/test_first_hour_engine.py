"""What a new user meets in the first hour on the command line and in the engine: outputs that never take an
input's place, messages instead of tracebacks, shipped recipes by name, data that cannot be trained on refused
before anything trains, checkpoint selections that fell back said so, experiments renamed and deleted, killed
runs told apart from running ones."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from lungkd.core.cli import main
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import check_trainable, trainability_problem
from lungkd.core.errors import DataError, LungKDError
from lungkd.core.events import Event
from lungkd.core.kd.executors import InProcessExecutor
from lungkd.core.kd.experiment import Experiment
from lungkd.core.kd.jobs import ExperimentError
from lungkd.core.kd.progress import ExperimentClock, PlannedRun, describe
from lungkd.core.kd.report import ExperimentReport, ScoreSummary
from lungkd.core.kd.report_pages import markdown_report
from lungkd.core.kd.store import ExperimentStore, delete_experiment, rename_experiment
from lungkd.core.workspace.status import gain_text, is_running, status_text
from lungkd.core.models.card import read_model_card
from lungkd.core.models.inventory import find_models, shipped_models_folder
from lungkd.core.models.registry import create_model
from lungkd.core.recipes import RecipeError, RunSettings, TrainConfig, find_recipe, load_experiment, shipped_recipes
from lungkd.core.training.trainer import Trainer
from lungkd.core.workspace.catalog import Catalog
from lungkd.core.workspace.locks import FolderBusy
from recorded_experiment import recorded_experiment
from tiny_model import tiny_model_folder

DEMO_MODEL = shipped_models_folder() / "demo-cnn6"


def run_cli(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def model_folder(synthetic_dir, tmp_path_factory):
    return tiny_model_folder(synthetic_dir, tmp_path_factory)


# ---------------------------------------------------------------- predict: outputs and inputs


@pytest.fixture
def two_recordings(synthetic_dir, tmp_path):
    names = [p.name for p in sorted(synthetic_dir.glob("*.wav"))[:2]]
    for name in names:
        shutil.copy(synthetic_dir / name, tmp_path / name)
    return [tmp_path / name for name in names]


def test_csv_never_swallows_a_recording_and_no_output_overwrites_an_input(capsys, two_recordings, tmp_path):
    first, second = two_recordings
    original = first.read_bytes()
    code, out, err = run_cli(capsys, "predict", DEMO_MODEL, "--csv", first, second)
    assert code == 0, err
    assert first.read_bytes() == original  # it was a recording to analyse, not the CSV's destination
    rows = out.splitlines()
    assert rows[0].startswith("recording,cycle_source,start,end,prediction")
    assert {row.split(",")[0] for row in rows[1:]} == {first.stem, second.stem}

    code, _, err = run_cli(capsys, "predict", DEMO_MODEL, "--csv", "--out", first, first)
    assert code == 2 and "one of the inputs" in err and first.read_bytes() == original
    code, _, err = run_cli(capsys, "predict", DEMO_MODEL, "--json", "-o", DEMO_MODEL / "lungkd.json", first)
    assert code == 2 and "inside an input folder" in err

    existing = tmp_path / "predictions.csv"
    existing.write_text("kept\n")
    code, _, err = run_cli(capsys, "predict", DEMO_MODEL, "--csv", "--out", existing, first)
    assert code == 2 and "exists already" in err and "--force" in err and existing.read_text() == "kept\n"
    code, _, err = run_cli(capsys, "predict", DEMO_MODEL, "--csv", "--out", existing, "--force", first)
    assert code == 0, err
    assert existing.read_text().splitlines() == [rows[0]] + [r for r in rows[1:] if r.startswith(f"{first.stem},")]


def test_predicting_a_missing_file_or_a_folder_gives_the_reason(capsys, tmp_path):
    code, _, err = run_cli(capsys, "predict", DEMO_MODEL, tmp_path / "typo.wav", tmp_path)
    assert code == 1
    assert "typo.wav: no such file. Fix: check the path" in err
    assert f"{tmp_path}: the folder is empty. Fix: give a folder of wav, flac or ogg recordings." in err
    assert "annotation" not in err and "unsupported audio format" not in err


# ---------------------------------------------------------------- messages, not tracebacks


@pytest.mark.parametrize("arguments, message", [
    (["--recordings", "0"], "needs at least 1 recording, not 0"),
    (["--label-noise", "1.5"], "between 0 and 1, not 1.5"),
])
def test_data_synth_refuses_bad_arguments_with_a_message(capsys, tmp_path, arguments, message):
    code, _, err = run_cli(capsys, "data", "synth", "--out", tmp_path / "out", *arguments)
    assert code == 2 and err.startswith("lungkd: error: ") and message in err and "Fix:" in err
    assert "Traceback" not in err and not (tmp_path / "out").exists()


def test_data_synth_into_a_folder_with_files_says_so(capsys, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    code, _, err = run_cli(capsys, "data", "synth", "--out", tmp_path, "--recordings", 2)
    assert code == 2 and "the folder is not empty" in err and "new or empty folder" in err
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]


def test_reading_commands_never_create_a_workspace(capsys, tmp_path):
    typo = tmp_path / "workspcae"
    code, _, err = run_cli(capsys, "runs", "--workspace", typo)
    assert code == 2 and "no workspace here: the folder does not exist" in err and not typo.exists()
    code, _, err = run_cli(capsys, "report", "demo-cpu", "--workspace", typo)
    assert code == 2 and not typo.exists()
    (tmp_path / "ws").mkdir()
    code, _, err = run_cli(capsys, "report", "no-such-experiment", "--workspace", tmp_path / "ws")
    assert code == 2 and "there is no experiment 'no-such-experiment'" in err and "lungkd runs" in err


def test_an_unfinished_experiment_has_no_report_and_says_how_to_continue(capsys, tmp_path, model_folder):
    folder = recorded_experiment(tmp_path / "ws", model_folder, "halfway", finished=False)
    code, _, err = run_cli(capsys, "report", "halfway", "--workspace", tmp_path / "ws")
    assert code == 2 and "has no report yet" in err and f"lungkd run {folder / 'recipe.toml'}" in err


# ---------------------------------------------------------------- recipes by name


def test_shipped_recipes_are_listed_and_found_by_name(capsys):
    code, out, _ = run_cli(capsys, "recipes")
    assert code == 0
    shipped = shipped_recipes()
    assert {r.name for r in shipped} >= {"demo-cpu", "paper-bts-mean5", "paper-students", "cnn6-tiny-synthetic"}
    for recipe in shipped:
        assert f"  {recipe.name}" in out and recipe.description[:40] in out
    assert out.index("experiment recipes") < out.index("paper-bts-mean5") < out.index("training recipes") < \
        out.index("cnn6-tiny-synthetic")
    assert find_recipe("paper-bts-mean5") == next(r.path for r in shipped if r.name == "paper-bts-mean5")
    assert load_experiment(find_recipe("paper-bts-mean5")).teachers.arch == "bts"
    with pytest.raises(RecipeError, match="no shipped recipe of that name.*demo-cpu"):
        find_recipe("paper-bts-mean6")


def test_a_recipe_given_to_the_wrong_command_names_the_right_one(capsys):
    code, _, err = run_cli(capsys, "run", "cnn6-tiny-synthetic")
    assert code == 2 and "this is a training recipe" in err and "`lungkd train cnn6-tiny-synthetic`" in err
    code, _, err = run_cli(capsys, "train", "demo-cpu")
    assert code == 2 and "this is an experiment recipe" in err and "`lungkd run demo-cpu`" in err


# ---------------------------------------------------------------- data that cannot be trained on


def _without_test_audio(synthetic_dir: Path, folder: Path) -> Path:
    """The synthetic dataset with every annotation and side file, but audio for the training split only."""
    index = load_dataset(synthetic_dir)
    folder.mkdir()
    for path in synthetic_dir.iterdir():
        keep = path.suffix != ".wav" or index.recording(path.stem).split == "train"
        if keep:
            (folder / path.name).symlink_to(path)
    return folder


def test_a_split_without_audio_is_refused_before_training_with_the_reason(synthetic_dir, tmp_path):
    index = load_dataset(_without_test_audio(synthetic_dir, tmp_path / "no-test-audio"))
    stats = index.stats()
    assert stats["cycles_with_audio"]["test"] == 0 < sum(stats["cycles"]["test"].values())
    with pytest.raises(DataError) as refused:
        check_trainable(index, "best_test")
    message = refused.value.problem.message
    assert message.startswith('selection = "best_test" needs cycles with audio in the test split')
    assert f"its {sum(stats['cycles']['test'].values())} annotated cycles have no readable audio here" in message
    assert '"last"' in refused.value.problem.fix
    check_trainable(index, "last")  # the training split has audio: nothing to refuse


def test_the_real_icbhi_files_here_cannot_select_on_test(icbhi_dir):
    stats = load_dataset(icbhi_dir).stats()
    message, fix = trainability_problem(stats, "best_test")
    assert "the test split, but its 2756 annotated cycles have no readable audio here" in message
    assert trainability_problem(stats, "last") is None  # ten training recordings have their audio


def test_an_experiment_on_such_data_stops_before_any_teacher_and_frees_its_name(synthetic_dir, tmp_path):
    data = _without_test_audio(synthetic_dir, tmp_path / "no-test-audio")
    recipe = load_experiment(find_recipe("demo-cpu")).replace(data={"path": str(data)})
    events = []
    with pytest.raises(DataError, match="needs cycles with audio in the test split"):
        Experiment(recipe, tmp_path / "ws", on_event=events.append, executor=InProcessExecutor()).run()
    assert not [e for e in events if e.stage == "teachers"]
    # nothing was trained, so the same name takes another recipe instead of refusing it
    ExperimentStore(tmp_path / "ws", recipe.replace(selection="last")).open().close()


# ---------------------------------------------------------------- checkpoint selection that fell back


def test_a_selection_with_no_epoch_above_five_percent_se_says_which_epoch_it_used(synthetic_sets):
    torch.manual_seed(0)
    model = create_model("cnn6", size="tiny")
    with torch.no_grad():  # a head that answers "normal" whatever it hears: Se is 0 in every epoch
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([50.0, 0.0, 0.0, 0.0]))
    trainer = Trainer(TrainConfig(epochs=2, batch_size=16, lr=1e-9), settings=RunSettings(device="cpu"))
    result = trainer.fit(model, synthetic_sets["train"], synthetic_sets["test"])
    assert [r.test["se"] for r in result.history] == [0.0, 0.0]
    assert result.selected_epoch == 1
    assert result.selection_note == ("no epoch reached Se > 5 % on the test set, so best_test had nothing to choose "
                                     "from and epoch 1 (the first) was used")
    last = Trainer(TrainConfig(epochs=1, batch_size=16, lr=1e-9), settings=RunSettings(selection="last", device="cpu"))
    assert last.fit(model, synthetic_sets["train"], synthetic_sets["test"]).selection_note == ""


def test_the_report_the_log_and_the_headline_carry_the_fallback(tmp_path, model_folder):
    folder = recorded_experiment(tmp_path / "ws", model_folder, "fell-back")
    report = ExperimentReport.read(folder / "report.json")
    # a student without a hard-label baseline (the paper recipes' baseline = false) reports no gain, and no crash
    assert report.student_groups[0].baseline.model_dump() == {"mean": None, "std": None, "n": 0}
    assert report.student_groups[0].gain is None
    note = "no epoch reached Se > 5 % on the test set, so best_test had nothing to choose from and epoch 1 (the first) " \
           "was used"
    teacher = report.teachers[0].model_copy(update={"selection_note": note})
    report = report.model_copy(update={"teachers": [teacher, *report.teachers[1:]]})
    assert report.selection_notes() == [f"teacher seed 1: {note}."]
    assert f"- teacher seed 1: {note}." in markdown_report(report)
    assert f"note: teacher seed 1: {note}." in report.headline()
    card = {"selected_epoch": 1, "selection": "best_test", "test": {"sp": 100.0, "se": 0.0, "score": 50.0},
            "selection_note": note}
    sentence = describe(Event("teachers", "finished", run="teacher seed 1", data={"run": {"card": card}}))
    assert sentence == f"Teacher seed 1 finished: epoch 1 chosen by best_test, test Score 50.00 (Sp 100.00, Se 0.00). " \
                       f"Note: {note}."


# ---------------------------------------------------------------- experiments: names, locks, status


def test_rename_moves_everything_and_the_renamed_recipe_continues_it(tmp_path, model_folder):
    workspace = tmp_path / "ws"
    folder = recorded_experiment(workspace, model_folder, "first-try")
    teachers = sorted((workspace / "teachers").rglob("*.safetensors"))
    new = rename_experiment(workspace, "first-try", "second-look")
    assert not folder.exists() and new == workspace / "experiments" / "second-look"
    stored = load_experiment(new / "recipe.toml")
    assert stored.name == "second-look"
    ExperimentStore(workspace, stored).open().close()  # the renamed recipe is this experiment's, not a changed one
    assert json.loads((new / "report.json").read_text())["name"] == "second-look"
    assert "# LungKD experiment second-look\n" in (new / "report.md").read_text()
    (student,) = new.rglob("lungkd.json")
    assert read_model_card(student.parent).experiment == "second-look"
    with Catalog.for_workspace(workspace) as catalog:
        (row,) = catalog.experiments()
        assert (row.name, row.folder) == ("second-look", new)
        assert all(run.checkpoint.is_dir() for run in catalog.runs(row.id))
    assert sorted((workspace / "teachers").rglob("*.safetensors")) == teachers  # shared teachers stay where they are
    assert {m.name for m in find_models(workspace)} == {"second-look · student cnn6 mean_1 · seed 1",
                                                         "second-look · teacher cnn6 · seed 1"}
    recorded_experiment(workspace, model_folder, "other")
    with pytest.raises(ExperimentError, match="exists already"):
        rename_experiment(workspace, "second-look", "other")
    with pytest.raises(LungKDError, match="not a valid experiment name"):
        rename_experiment(workspace, "second-look", "../escape")


def test_delete_removes_the_experiment_and_keeps_the_shared_teachers(tmp_path, model_folder):
    workspace = tmp_path / "ws"
    folder = recorded_experiment(workspace, model_folder, "abandoned", finished=False)
    teachers = sorted((workspace / "teachers").rglob("lungkd.json"))
    delete_experiment(workspace, "abandoned")
    assert not folder.exists()
    with Catalog.for_workspace(workspace) as catalog:
        assert catalog.experiments() == []
    assert teachers and sorted((workspace / "teachers").rglob("lungkd.json")) == teachers
    with pytest.raises(ExperimentError, match="there is no experiment 'abandoned'"):
        delete_experiment(workspace, "abandoned")


def test_a_running_experiment_is_locked_and_a_killed_one_is_stopped(tmp_path, model_folder):
    workspace = tmp_path / "ws"
    folder = recorded_experiment(workspace, model_folder, "killed", finished=False)
    recipe = load_experiment(folder / "recipe.toml")
    assert status_text("running", folder, workspace) == \
        f"stopped — resume with lungkd run {folder / 'recipe.toml'} --workspace {workspace}"
    with ExperimentStore(workspace, recipe).open():
        assert is_running(folder) and status_text("running", folder, workspace) == "running"
        with pytest.raises(FolderBusy, match="is being written by process"):
            Experiment(recipe, workspace, executor=InProcessExecutor()).run()
        with pytest.raises(ExperimentError, match="is running"):
            delete_experiment(workspace, "killed")
    assert not is_running(folder)
    assert status_text("finished", folder, workspace) == "finished"


@pytest.mark.slow
def test_a_process_killed_mid_run_shows_as_stopped(tmp_path):
    from tiny_recipe import tiny_recipe

    worker = Path(__file__).with_name("experiment_worker.py")
    process = subprocess.Popen([sys.executable, str(worker), str(tiny_recipe(tmp_path, name="killed")),
                                str(tmp_path / "ws")], stdout=subprocess.PIPE, text=True)
    folder = tmp_path / "ws" / "experiments" / "killed"
    for line in process.stdout:
        if json.loads(line)["kind"] == "metrics":  # a teacher is training
            assert status_text("running", folder, tmp_path / "ws") == "running"
            process.kill()
            break
    process.wait()
    with Catalog.for_workspace(tmp_path / "ws") as catalog:
        (row,) = catalog.experiments()
    assert row.status == "running"  # what the catalog was last told
    assert status_text(row.status, folder, tmp_path / "ws").startswith("stopped — resume with lungkd run ")


# ---------------------------------------------------------------- models named by what made them


def test_models_are_named_by_experiment_role_and_seed_with_the_data_of_their_score(tmp_path, model_folder):
    recorded_experiment(tmp_path / "ws", model_folder, "demo-cpu")
    entries = {e.name: e for e in find_models(tmp_path / "ws", shipped_models_folder())}
    student = entries["demo-cpu · student cnn6 mean_1 · seed 1"]
    assert student.score == 51.5 and student.scored_on == "the test split of synthetic-14-seed1-noise0 (25 cycles)"
    assert "demo-cpu · teacher cnn6 · seed 1" in entries
    demo = entries["demo-cnn6"]
    assert demo.scored_on == "the test split of synthetic-360-seed0-noise0 (545 cycles)"
    assert not any("/" in name for name in entries)  # no workspace paths


def test_the_run_sentences_read_as_sentences():
    events = [Event("teachers", "metrics", run="teacher seed 2", step=3, total=4,
                    data={"epoch": 3, "loss": 0.91234, "lr": 1e-3, "test": {"sp": 80.0, "se": 30.5, "score": 55.25},
                          "val": None}),
              Event("ensembles", "metrics", run="first 3", data={"sp": 81.0, "se": 33.0, "score": 57.0}),
              Event("teachers", "artifact", "model saved", run="teacher seed 2", data={"kind": "model", "path": "/m"})]
    assert [describe(e) for e in events] == [
        "Teacher seed 2, epoch 3 of 4: loss 0.9123, test Score 55.25 (Sp 80.00, Se 30.50).",
        "Ensemble of the first 3 teachers: Score 57.00 (Sp 81.00, Se 33.00).",
        "Teacher seed 2: model saved to /m."]
    assert describe(Event("teachers", "progress", run="teacher seed 2", step=1, total=8)) is None


def test_the_time_left_copes_with_a_run_whose_only_step_is_its_last():
    """A training set smaller than one batch: the run's first progress event is its last step, so its speed is
    not known yet; the clock says what it knows instead of failing the experiment."""
    seen = []
    clock = ExperimentClock([PlannedRun("student cnn6 mean_2 seed 1", "cnn6", "tiny", 16, 1),
                             PlannedRun("baseline cnn6 hard seed 1", "cnn6", "tiny", 16, 1)], seen.append,
                            interval_s=0.0)
    clock(Event("students", "progress", run="student cnn6 mean_2 seed 1", step=1, total=1, eta_s=0.0))
    assert [e.eta_s for e in seen if e.stage == "experiment"] == [0.0]
    clock(Event("students", "progress", run="baseline cnn6 hard seed 1", step=1, total=4, eta_s=3.0))
    # 1 s a step measured, the training set now known as 4 batches: the student still ahead takes 4 s more
    assert seen[-1].stage == "experiment" and seen[-1].eta_s == pytest.approx(3.0 + 4.0)


def test_the_time_left_counts_teachers_trained_together_as_one_group():
    """Teachers trained together report their steps under the group's name: the whole experiment's time left
    comes from the start, and a group step is one step of each teacher."""
    group = "teachers seeds 1, 2 together"
    seen = []
    clock = ExperimentClock([PlannedRun("teacher seed 1", "cnn6", "tiny", 16, 2, group),
                             PlannedRun("teacher seed 2", "cnn6", "tiny", 16, 2, group),
                             PlannedRun("student cnn6 mean_2 seed 1", "cnn6", "tiny", 16, 2)], seen.append,
                            interval_s=0.0)
    clock(Event("teachers", "progress", run=group, step=1, total=8, eta_s=14.0))  # 2 s a group step: 1 s a model
    assert seen[-1].stage == "experiment" and seen[-1].eta_s == pytest.approx(14.0 + 8 * 1.0)
    for seed in (1, 2):
        clock(Event("teachers", "finished", run=f"teacher seed {seed}"))
    clock(Event("students", "progress", run="student cnn6 mean_2 seed 1", step=2, total=8, eta_s=6.0))
    assert seen[-1].eta_s == pytest.approx(6.0) and seen[-1].step == 2


@pytest.mark.slow
def test_train_on_a_terminal_shows_progress_within_each_epoch(tmp_path):
    import os
    import pty

    recipe = tmp_path / "tiny.toml"
    recipe.write_text('name = "tty"\nselection = "last"\n[data]\nsynthetic = { recordings = 12, seed = 1 }\n'
                      '[model]\narch = "cnn6"\nsize = "tiny"\n[train]\nepochs = 2\nbatch_size = 16\n')
    main_fd, terminal = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "lungkd.core.cli", "train", str(recipe), "--workspace",
                                str(tmp_path / "ws")], stdout=terminal, stderr=subprocess.PIPE)
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(main_fd, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not chunk:
            break
        output += chunk
    assert process.wait() == 0, process.stderr.read()
    text = output.decode()
    bars = [part for part in text.split("\r") if part.startswith("epoch   1/2 |")]
    assert len(bars) >= 2 and "%" in bars[-1] and "ETA" in bars[0]  # redrawn in place within epoch 1
    assert "\nepoch   1/2  loss " in text and "selected epoch 2 (last)" in text


def test_scores_and_gains_are_written_as_people_write_them():
    """One model has no spread (not "± n/a (n=1)"); a gain carries its sign either way."""
    assert ScoreSummary.of([62.0]).text() == "62.00 (one model)"
    assert ScoreSummary.of([60.0, 64.0]).text() == "62.00 ± 2.83 (n=2)"
    assert ScoreSummary.of([None]).text() == "—"
    assert [gain_text(g) for g in (2.138, -0.5, 0.0)] == ["+2.14", "-0.50", "+0.00"]
    assert gain_text(None) == "n/a" and gain_text(None, dash=True) == "—"
