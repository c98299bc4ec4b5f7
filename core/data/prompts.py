"""BTS text prompts from recording metadata (docs/method.md section 5), worded as the BTS reference does.

Each of the four parts (age group, sex, location, device) is a word, "unknown", or None to leave
it out of the sentence.
"""
from __future__ import annotations

from typing import Literal

from lungkd.core.data.metadata import parse_recording_name
from lungkd.core.data.patient_metadata import PatientFacts
from lungkd.core.data.records import Patient, Recording

LOCATION_WORDS = {
    "Tc": "trachea", "Al": "left anterior chest", "Ar": "right anterior chest", "Pl": "left posterior chest",
    "Pr": "right posterior chest", "Ll": "left lateral chest", "Lr": "right lateral chest",
}
MICROPHONES = {"AKGC417L"}
ADULT_AGE = 19
UNKNOWN = "unknown"
PARTS = ("age", "sex", "location", "device")

LocationSource = Literal["patient", "filename"]
MissingPolicy = Literal["reference", "unknown"]
MISSING_WORDING = {"reference": "the reference's missing-value wording (a missing age is pediatric, a missing sex "
                                "female, as the BTS code has it)",
                   "unknown": "the 'unknown' missing-value wording"}


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _patient_phrase(age_group: str | None, sex: str | None) -> str | None:
    """`an adult male patient`, `a female pediatric patient`, `a male patient of unknown age`, ..."""
    if age_group and sex:
        if age_group == sex == UNKNOWN:  # a case the BTS code never produces
            return "a patient of unknown age and sex"
        if age_group == UNKNOWN:
            return f"a {sex} patient of unknown age"
        if sex == UNKNOWN:
            return f"{_article(age_group)} {age_group} patient of unknown sex"
        if age_group == "pediatric":
            return f"a {sex} pediatric patient"
        return f"an adult {sex} patient"
    if age_group:
        return "a patient of unknown age" if age_group == UNKNOWN else f"{_article(age_group)} {age_group} patient"
    if sex:
        return "a patient of unknown sex" if sex == UNKNOWN else f"a {sex} patient"
    return None


def _device_phrase(device: str) -> str:
    if device == UNKNOWN:
        return "an unknown device"
    return f"an {device} microphone" if device in MICROPHONES else f"a {device} stethoscope"


def build_prompt(age_group: str | None = None, sex: str | None = None, location: str | None = None,
                 device: str | None = None) -> str:
    """The BTS sentence from words: age_group adult/pediatric, sex male/female, location a word of
    LOCATION_WORDS' values, device a device name; "unknown" for an unknown value, None to drop the part."""
    patient = _patient_phrase(age_group, sex)
    sentence = "This sound was recorded" if location or device else "This patient is"
    if location:
        sentence += " from an unknown region" if location == UNKNOWN else f" from the {location}"
        if patient:
            patient = patient.replace(" of ", " with ")  # "of a male patient with unknown age"
    if patient:
        joiner = " of " if location else (" from " if device else " ")
        sentence += joiner + patient
    if device:
        sentence += f", using {_device_phrase(device)}" if patient else f" with {_device_phrase(device)}"
    return sentence + "."


def recording_prompt(recording: Recording, patient: Patient | None, *, location_source: LocationSource = "patient",
                     missing: MissingPolicy = "reference", parts: tuple[str, ...] = PARTS) -> str:
    """Prompt of one recording.

    `location_source="patient"` takes the location from metadata_with_location.txt as the BTS code
    does; "filename" from the recording's name. `missing="reference"` turns a missing age into
    "pediatric" and a missing sex into "female", as the BTS code does; "unknown" says unknown.
    """
    age = patient.age if patient else None
    sex = patient.sex if patient else None
    if age is None:
        age_group = "pediatric" if missing == "reference" else UNKNOWN
    else:
        age_group = "adult" if age >= ADULT_AGE else "pediatric"
    if sex is None:
        sex_word = "female" if missing == "reference" else UNKNOWN
    else:
        sex_word = {"M": "male", "F": "female"}.get(sex, UNKNOWN)
    code = patient.chest_location if location_source == "patient" and patient and patient.chest_location \
        else recording.location
    location = LOCATION_WORDS.get(code or "", UNKNOWN)
    device = recording.device or UNKNOWN
    words = {"age": age_group, "sex": sex_word, "location": location, "device": device}
    return build_prompt(*(words[p] if p in parts else None for p in PARTS))


def dataset_prompts(index, **options) -> dict[str, str]:
    """Recording name -> prompt for every recording of a DatasetIndex."""
    return {rec.name: recording_prompt(rec, index.patients.get(rec.patient), **options) for rec in index.recordings}


def patient_prompt(stem: str, facts: PatientFacts | None, *, location_source: LocationSource = "patient",
                   missing: MissingPolicy = "reference", parts: tuple[str, ...] = PARTS) -> str:
    """The prompt of one recording known by its file name and what is known of its patient
    (core.data.patient_metadata), through the function and wording training uses. A location or device the
    facts give for the recording itself stands where its ICBHI name would; without facts the prompt is the one
    training builds for a recording whose patient has no demographics."""
    parsed = parse_recording_name(stem)
    recording = Recording(name=stem, patient=parsed.patient if parsed else stem,
                          location=(facts and facts.location) or (parsed.location if parsed else None),
                          device=(facts and facts.device) or (parsed.device if parsed else None))
    return recording_prompt(recording, facts.patient if facts else None, location_source=location_source,
                            missing=missing, parts=parts)


def file_prompt(stem: str, *, missing: MissingPolicy = "reference") -> str:
    """The prompt of a recording known only by its file name (no patient metadata)."""
    return patient_prompt(stem, None, location_source="filename", missing=missing)
