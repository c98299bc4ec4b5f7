"""Patient metadata at prediction (core/data/patient_metadata.py): a model that reads prompts (BTS) gets the
prompt training gave the recording, from the ICBHI side files, a sidecar `REC.patient.json` or a
`--metadata` table, and the card's prompt policy; without metadata the model's own missing-value wording,
said. The same prompts through `lungkd predict` and `lungkd evaluate`: tests/core/test_predict_as_trained.py."""
import json
import shutil
from dataclasses import replace

import pytest

from lungkd.core.analysis.predict import analyse_recording, prompt_for
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.metadata import DEMOGRAPHICS_FILE, METADATA_FILE
from lungkd.core.data.patient_metadata import (PatientMetadata, patient_facts, read_patient_table, sidecar_path,
                                               write_sidecar)
from lungkd.core.data.prompts import dataset_prompts
from lungkd.core.errors import DataError
from lungkd.core.models.card import PromptPolicy
from tiny_model import tiny_bts

REC_107 = "107_2b3_Al_mc_AKGC417L"


@pytest.fixture(scope="module")
def bts(tmp_path_factory):
    return tiny_bts(tmp_path_factory.mktemp("bts") / "model", PromptPolicy())


# ---------------------------------------------------------------- the bug of issue 20, on the real files


def test_predict_gives_107_the_prompt_training_gave_it_from_the_side_files_beside_its_folder(icbhi_audio_dir, bts):
    """Training said "left lateral chest of an adult female patient"; prediction used to say "left anterior
    chest of a female pediatric patient" (the file name's location and the reference's missing values)."""
    trained = dataset_prompts(load_dataset(icbhi_audio_dir.parent, probe_audio_files=False))[REC_107]
    assert trained == ("This sound was recorded from the left lateral chest of an adult female patient, using an "
                       "AKGC417L microphone.")
    analysis = analyse_recording(icbhi_audio_dir / f"{REC_107}.wav", bts)  # the side files are in the parent
    assert analysis.prompt == trained
    assert analysis.prompt_source == f"the ICBHI side files in {icbhi_audio_dir.parent}"
    assert analysis.prompt_notes == []


def test_the_cards_location_source_is_honoured(icbhi_audio_dir):
    recording = icbhi_audio_dir / f"{REC_107}.wav"
    by_name = prompt_for(recording, PromptPolicy(location_source="filename"))
    assert by_name.text == dataset_prompts(load_dataset(icbhi_audio_dir.parent, probe_audio_files=False),
                                           location_source="filename")[REC_107]
    assert "left anterior chest of an adult female patient" in by_name.text


def test_without_metadata_the_models_missing_value_wording_is_used_and_said(icbhi_audio_dir, tmp_path):
    alone = tmp_path / f"{REC_107}.wav"
    shutil.copy(icbhi_audio_dir / alone.name, alone)
    reference = prompt_for(alone, PromptPolicy(missing="reference"))
    assert reference.text == ("This sound was recorded from the left anterior chest of a female pediatric patient, "
                              "using an AKGC417L microphone.")
    assert reference.source == ""
    assert reference.notes[0].startswith(f"no patient metadata for {REC_107}: prompt built with the reference's "
                                         "missing-value wording")
    assert f"'{reference.text}'" in reference.notes[0] and f"{REC_107}.patient.json" in reference.notes[0]
    unknown = prompt_for(alone, PromptPolicy(missing="unknown"))
    assert "a patient with unknown age and sex" in unknown.text
    assert "the 'unknown' missing-value wording" in unknown.notes[0]


# ---------------------------------------------------------------- the sidecar and the table


def test_a_sidecar_is_written_atomically_read_back_and_stands_for_the_recordings_location(tmp_path):
    recording = tmp_path / "clinic-patient-7.wav"  # not an ICBHI name: nothing in it says where or with what
    written = write_sidecar(recording, PatientMetadata(age=8, sex="female", weight_kg=25.5, height_cm=128,
                                                       chest_location="Pl", device="Littmann CORE"))
    assert written == sidecar_path(recording) == tmp_path / "clinic-patient-7.patient.json"
    assert json.loads(written.read_text()) == {"age": 8.0, "sex": "F", "weight_kg": 25.5, "height_cm": 128.0,
                                               "chest_location": "Pl", "device": "Littmann CORE"}
    assert [p.name for p in tmp_path.iterdir()] == [written.name]  # no temporary file left behind
    facts, problems = patient_facts(recording)
    assert facts.source == written.name and problems == []
    for source in ("patient", "filename"):
        assert prompt_for(recording, PromptPolicy(location_source=source)).text == (
            "This sound was recorded from the left posterior chest of a female pediatric patient, using a Littmann "
            "CORE stethoscope.")


@pytest.mark.parametrize("content, words", [
    ("{not json", "is not JSON"),
    ("[70, \"F\"]", "is not a JSON object"),
    ('{"gender": "F"}', "gender: is not a field (the fields are age, sex, bmi"),
    ('{"age": 300}', "age: Input should be less than or equal to 125"),
    ('{"age": "old"}', "age: Input should be a valid number"),
    ('{"sex": "X"}', "sex: Input should be 'M' or 'F'"),
    ('{"chest_location": "chest"}', "chest_location: Input should be 'Tc', 'Al'"),
    ('{"device": "a\\nb"}', "device: String should match pattern"),
    ("{" + " " * (65 << 10) + "}", "larger than 64 kB"),
])
def test_a_sidecar_that_is_not_valid_is_refused_naming_the_file_and_the_field(tmp_path, content, words):
    recording = tmp_path / "101_1b1_Al_sc_Meditron.wav"
    sidecar_path(recording).write_text(content)
    with pytest.raises(DataError) as caught:
        patient_facts(recording)
    assert words in str(caught.value) and str(sidecar_path(recording)) in str(caught.value)
    assert "docs/cli.md" in caught.value.problem.fix


def test_a_metadata_table_names_recordings_by_file_or_stem_and_na_is_unknown(tmp_path):
    table = tmp_path / "patients.csv"
    table.write_text("recording,age,sex,bmi,chest_location,device\n"
                     "101_1b1_Al_sc_Meditron.wav,70,M,NA,Pr,\n"
                     "\n"
                     "visit 2 , , female,21.5,,\n", encoding="utf-8")
    read = read_patient_table(table)
    assert read.rows["101_1b1_Al_sc_Meditron"] == (2, PatientMetadata(age=70, sex="M", chest_location="Pr"))
    assert read.rows["visit 2"] == (4, PatientMetadata(sex="F", bmi=21.5))
    facts = read.facts(tmp_path / "sub" / "101_1b1_Al_sc_Meditron.flac")
    assert facts.source == "patients.csv line 2" and facts.patient.pid == "101" and facts.patient.age == 70


@pytest.mark.parametrize("content, line, words", [
    ("name,age\nx,3\n", 1, "unknown column(s) 'name'"),
    ("age,sex\n3,M\n", 1, "no 'recording' column"),
    ("recording,age,age\nx,3,4\n", 1, "a column named twice"),
    ("recording,age\nx,3\nx.wav,4\n", 3, "the recording 'x' is listed again (first on line 2)"),
    ("recording,age\nx,3,4\n", 2, "3 cells where the header has 2"),
    ("recording,age\nx,-2\n", 2, "age: Input should be greater than or equal to 0"),
    ("recording,sex\n,M\n", 2, "the recording cell is empty"),
])
def test_a_metadata_table_with_a_bad_cell_is_refused_naming_the_line(tmp_path, content, line, words):
    table = tmp_path / "patients.csv"
    table.write_text(content)
    with pytest.raises(DataError) as caught:
        read_patient_table(table)
    assert caught.value.problem.line == line and words in caught.value.problem.message
    assert str(table) in str(caught.value)


def test_the_first_source_that_knows_the_recording_gives_all_of_it(synthetic_dir, tmp_path):
    """The table before the sidecar, the sidecar before the side files; the side files of the folder or its
    parent, by the patient id of the ICBHI name."""
    folder = tmp_path / "data"
    (folder / "audio").mkdir(parents=True)
    for name in (DEMOGRAPHICS_FILE, METADATA_FILE):
        shutil.copy(synthetic_dir / name, folder / name)
    wav = next(synthetic_dir.glob("*.wav"))
    recording = folder / "audio" / wav.name
    shutil.copy(wav, recording)
    pid = wav.name.split("_")[0]
    from_side_files, _ = patient_facts(recording)
    expected = load_dataset(synthetic_dir, probe_audio_files=False).patients[pid]
    assert from_side_files.patient == replace(expected, diagnosis=None) and from_side_files.source.endswith(str(folder))
    write_sidecar(recording, PatientMetadata(age=4))
    from_sidecar, _ = patient_facts(recording)
    assert from_sidecar.patient.age == 4 and from_sidecar.patient.sex is None  # whole, not merged
    table = tmp_path / "t.csv"
    table.write_text(f"recording,age\n{recording.stem},50\n")
    from_table, _ = patient_facts(recording, read_patient_table(table))
    assert from_table.patient.age == 50 and from_table.source == "t.csv line 2"


def test_lungkd_predict_reads_a_metadata_table_and_names_the_rows_it_did_not_use(bts, synthetic_dir, tmp_path,
                                                                               capsys):
    from lungkd.core.cli import main

    wav = next(p for p in sorted(synthetic_dir.glob("*.wav")) if "_Tc_" not in p.name)
    recording = tmp_path / wav.name
    shutil.copy(wav, recording)
    table = tmp_path / "patients.csv"
    table.write_text(f"recording,age,sex,chest_location\n{wav.name},45,F,Ll\nnot-given.wav,3,M,\n")
    assert main(["predict", str(bts.path), str(recording), "--metadata", str(table), "--json"]) == 0
    out, err = capsys.readouterr()
    (analysis,) = json.loads(out)
    device = wav.stem.split("_")[-1]
    using = "an AKGC417L microphone" if device == "AKGC417L" else f"a {device} stethoscope"
    assert analysis["prompt"] == ("This sound was recorded from the left lateral chest of an adult female patient, "
                                  f"using {using}.")
    assert analysis["prompt_source"] == "patients.csv line 2" and analysis["prompt_notes"] == []
    assert f"lungkd: warning: {table} names 1 recording(s) that were not analysed: not-given" in err
    assert "no patient metadata" not in err
