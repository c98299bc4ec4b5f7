"""A model predicts as it was trained (issue 20): a tiny BTS trained one epoch by `lungkd train` on generated
recordings with demographics gives the same per-cycle probabilities through `lungkd predict` (the patient
metadata from the side files beside the recordings) as through `lungkd evaluate`, for both missing-value
policies; with the metadata removed, `predict` says which prompt it fell back to."""
import json
import shutil

import numpy as np
import pytest

from lungkd.core.cli import main
from lungkd.core.data.metadata import DEMOGRAPHICS_FILE, METADATA_FILE, SPLIT_FILE
from lungkd.core.data.prompts import MISSING_WORDING, file_prompt
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.models.card import read_model_card

pytestmark = pytest.mark.slow  # two tiny BTS trained, CLAP inputs at 48 kHz

RECIPE = """
name = "bts-{missing}"
selection = "last"
device = "cpu"
[data]
path = "{data}"
missing = "{missing}"
calibration_fraction = 0.0
[model]
arch = "bts"
size = "tiny"
[train]
epochs = 1
batch_size = 8
"""


@pytest.fixture(scope="module")
def dataset(synthetic_dir, tmp_path_factory):
    """The synthetic recordings with their side files, one test patient's age and sex unknown (NA): the
    missing-value wording decides that patient's prompt."""
    folder = tmp_path_factory.mktemp("with-demographics") / "data"
    shutil.copytree(synthetic_dir, folder)
    test_recording = next(line.split()[0] for line in (folder / SPLIT_FILE).read_text().splitlines()
                          if line.split()[1:] == ["test"])
    pid = test_recording.split("_")[0]
    for name, newline in ((DEMOGRAPHICS_FILE, "\r\n"), (METADATA_FILE, "\n")):
        rows = [line.split("\t") for line in (folder / name).read_text().splitlines()]
        rows = [[row[0], "NA", "NA", *row[3:]] if row[0] == pid else row for row in rows]
        (folder / name).write_bytes("".join("\t".join(row) + newline for row in rows).encode())
    return folder, pid


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    return tmp_path_factory.mktemp("workspace")  # one cache of CLAP inputs for both models


def run(capsys, *args) -> tuple[int, str, str]:
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture(scope="module", params=["reference", "unknown"])
def model(request, dataset, workspace, tmp_path_factory):
    folder, _ = dataset
    recipe = tmp_path_factory.mktemp("recipe") / f"bts-{request.param}.toml"
    recipe.write_text(RECIPE.format(data=folder, missing=request.param))
    assert main(["train", str(recipe), "--workspace", str(workspace)]) == 0
    (model_dir,) = workspace.glob(f"runs/bts-{request.param}-*/model")
    assert read_model_card(model_dir).inputs.prompts.missing == request.param
    return model_dir, request.param


def test_predict_gives_the_probabilities_and_prompts_of_evaluate(model, dataset, workspace, capsys):
    model_dir, missing = model
    folder, pid = dataset
    code, out, _ = run(capsys, "evaluate", model_dir, folder, "--json", "--per-cycle", "--workspace", workspace)
    assert code == 0
    evaluated = json.loads(out)["per_cycle"]
    recordings = sorted({c["recording"] for c in evaluated})
    code, out, err = run(capsys, "predict", model_dir, *(folder / f"{r}.wav" for r in recordings), "--json")
    assert code == 0, err
    predicted = {(a["path"].rsplit("/", 1)[-1].removesuffix(".wav"), c["start"]): (a, c)
                 for a in json.loads(out) for c in a["cycles"]}
    assert len(predicted) == len(evaluated)
    for cycle in evaluated:
        analysis, prediction = predicted[(cycle["recording"], cycle["start"])]
        assert analysis["prompt"] == cycle["prompt"]
        assert analysis["prompt_source"] == f"the ICBHI side files in {folder}"
        np.testing.assert_allclose([prediction[n] for n in CLASS_NAMES],
                                   [cycle["probabilities"][n] for n in CLASS_NAMES], rtol=0, atol=1e-5)
    unknown_patient = {c["prompt"] for c in evaluated if c["recording"].startswith(f"{pid}_")}
    wording = "female pediatric patient" if missing == "reference" else "a patient with unknown age and sex"
    assert unknown_patient and all(wording in prompt for prompt in unknown_patient)
    assert "no patient metadata" not in err


def test_without_the_metadata_predict_says_which_prompt_it_fell_back_to(model, dataset, tmp_path, capsys):
    model_dir, missing = model
    folder, _ = dataset
    recording = next(folder.glob("*.wav"))
    shutil.copy(recording, tmp_path / recording.name)  # the recording alone, as a clinician has it
    code, out, err = run(capsys, "predict", model_dir, tmp_path / recording.name)
    assert code == 0, err
    fallback = file_prompt(recording.stem, missing=missing)
    assert (f"note: no patient metadata for {recording.stem}: prompt built with {MISSING_WORDING[missing]}: "
            f"'{fallback}'") in err
    assert f"  prompt: {fallback}\n" in out
