"""BTS prompts (docs/method.md section 5) on the paper's examples and on the real ICBHI metadata."""
import pytest

from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.prompts import build_prompt, dataset_prompts, recording_prompt
from lungkd.core.data.records import Patient, Recording


@pytest.mark.parametrize("words, sentence", [
    (("adult", "male", "left anterior chest", "Meditron"),
     "This sound was recorded from the left anterior chest of an adult male patient, using a Meditron stethoscope."),
    (("pediatric", "female", "trachea", "AKGC417L"),
     "This sound was recorded from the trachea of a female pediatric patient, using an AKGC417L microphone."),
    (("unknown", "male", "left lateral chest", "Litt3200"),
     "This sound was recorded from the left lateral chest of a male patient with unknown age, using a Litt3200 stethoscope."),
])
def test_spec_example_sentences(words, sentence):
    assert build_prompt(*words) == sentence


@pytest.mark.parametrize("kwargs, sentence", [
    (dict(age_group="adult", sex="male"), "This patient is an adult male patient."),
    (dict(age_group="pediatric"), "This patient is a pediatric patient."),
    (dict(sex="unknown"), "This patient is a patient of unknown sex."),
    (dict(age_group="adult", device="Meditron"), "This sound was recorded from an adult patient, using a Meditron stethoscope."),
    (dict(location="trachea"), "This sound was recorded from the trachea."),
    (dict(device="LittC2SE"), "This sound was recorded with a LittC2SE stethoscope."),
    (dict(age_group="adult", sex="unknown", location="trachea"),
     "This sound was recorded from the trachea of an adult patient with unknown sex."),
])
def test_parts_left_out_are_dropped(kwargs, sentence):
    assert build_prompt(**kwargs) == sentence


def test_patient_223_missing_values_reference_and_unknown(icbhi_dir):
    index = load_dataset(icbhi_dir, probe_audio_files=False)
    rec = next(r for r in index.recordings if r.patient == "223")
    patient = index.patients["223"]
    assert recording_prompt(rec, patient) == (
        "This sound was recorded from the left lateral chest of a female pediatric patient, using a Meditron stethoscope.")
    assert recording_prompt(rec, patient, missing="unknown") == (
        "This sound was recorded from the left lateral chest of a patient with unknown age and sex, "
        "using a Meditron stethoscope.")


def test_location_source_patient_or_filename():
    rec = Recording(name="101_1b1_Al_sc_Meditron", patient="101", location="Al", device="Meditron")
    patient = Patient("101", age=3.0, sex="F", chest_location="Pr")
    assert recording_prompt(rec, patient) == ("This sound was recorded from the right posterior chest of a female "
                                              "pediatric patient, using a Meditron stethoscope.")
    assert "left anterior chest" in recording_prompt(rec, patient, location_source="filename")


def test_53_distinct_prompts_over_the_920_recordings(icbhi_dir):
    index = load_dataset(icbhi_dir, probe_audio_files=False)
    prompts = dataset_prompts(index)
    assert len(prompts) == 920
    assert len(set(prompts.values())) == 53
    # the file-name location differs from the per-patient one for 698 of the 920 files (docs/method.md section 2)
    differ = sum(r.location != index.patients[r.patient].chest_location for r in index.recordings)
    assert differ == 698
    assert len(set(dataset_prompts(index, location_source="filename").values())) == 68


def test_a_recording_analysed_without_metadata_gets_the_training_wording(synthetic_dir, tmp_path):
    """At analysis time only the file name is known: the prompt is the one training builds for a recording
    whose patient has no demographics (one function builds both)."""
    import shutil

    from lungkd.core.data.dataset import load_dataset
    from lungkd.core.data.prompts import dataset_prompts, file_prompt

    bare = tmp_path / "recordings"  # the recordings alone, as a user has them: no demographics, no split
    bare.mkdir()
    for wav in synthetic_dir.glob("*.wav"):
        shutil.copy(wav, bare / wav.name)
    prompts = dataset_prompts(load_dataset(bare))
    assert prompts and all(file_prompt(name) == prompt for name, prompt in prompts.items())
    assert file_prompt("101_1b1_Al_sc_Meditron") == ("This sound was recorded from the left anterior chest of a "
                                                     "female pediatric patient, using a Meditron stethoscope.")
