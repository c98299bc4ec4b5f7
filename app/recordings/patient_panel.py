"""The patient panel: what is known of the current recording's patient (age, sex, BMI or height and weight,
chest location, device), where it came from, and the prompt the chosen model read with its cycles. The user
corrects or completes it and saves it as the sidecar `REC.patient.json` beside the recording (written
atomically); the page then has the models that read prompts predict the recording again."""
from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QHBoxLayout, QLabel, QPushButton,
                               QVBoxLayout, QWidget)

from lungkd.core.analysis.predict import RecordingAnalysis
from lungkd.core.data.metadata import DEVICES, LOCATIONS
from lungkd.core.data.patient_metadata import (PatientMetadata, PatientMetadataError, field_range, patient_facts,
                                               sidecar_path, write_sidecar)
from lungkd.core.data.prompts import LOCATION_WORDS

UNKNOWN = "unknown"
SEXES = ((UNKNOWN, None), ("female", "F"), ("male", "M"))


def _number(low: float, high: float, suffix: str, decimals: int = 1) -> QDoubleSpinBox:
    """A number within a person's range; one step below it reads "unknown"."""
    box = QDoubleSpinBox(decimals=decimals, suffix=suffix, keyboardTracking=False)
    box.setRange(low - 1, high)
    box.setSpecialValueText(UNKNOWN)
    box.setValue(low - 1)
    return box


class PatientPanel(QGroupBox):
    saved = Signal(object)  # the Path of the recording whose sidecar was written

    def __init__(self, parent: QWidget | None = None):
        super().__init__("Patient", parent)
        self.recording: Path | None = None
        self.age = _number(*field_range("age"), " years")
        self.sex = QComboBox()
        for text, value in SEXES:
            self.sex.addItem(text, value)
        self.bmi = _number(*field_range("bmi"), " kg/m²")
        self.weight = _number(*field_range("weight_kg"), " kg")
        self.height = _number(*field_range("height_cm"), " cm", decimals=0)
        self.location = QComboBox()
        self.location.addItem(UNKNOWN, None)
        for code in LOCATIONS:
            self.location.addItem(f"{LOCATION_WORDS[code]} ({code})", code)
        self.device = QComboBox(editable=True)
        self.device.addItems(["", *DEVICES])
        self.device.lineEdit().setPlaceholderText("from the file name")
        self.save_button = QPushButton("Save beside the recording")
        self.save_button.clicked.connect(self.save)
        self.source = QLabel(wordWrap=True, objectName="hint", textFormat=Qt.TextFormat.PlainText)
        self.prompt = QLabel(wordWrap=True, objectName="reason", textFormat=Qt.TextFormat.PlainText)
        self.prompt.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        form = QFormLayout()
        form.addRow("Age", self.age)
        form.addRow("Sex", self.sex)
        form.addRow("BMI (adults)", self.bmi)
        size = QHBoxLayout()
        size.addWidget(self.height)
        size.addWidget(self.weight)
        form.addRow("Height, weight", size)
        self.height.setToolTip("Height in cm (ICBHI records it for children)")
        self.weight.setToolTip("Weight in kg (ICBHI records it for children)")
        form.addRow("Chest location", self.location)
        form.addRow("Device", self.device)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.save_button)
        layout.addWidget(self.source)
        layout.addWidget(self.prompt)
        self.setToolTip("Models that read prompts (BTS) read the patient's age group, sex, the chest location and "
                        "the device; BMI, height and weight are kept with them. Saved as REC.patient.json beside the "
                        "recording, it comes before the ICBHI side files.")
        self.show_recording(None)

    # ---------------------------------------------------------------- what is shown

    def show_recording(self, recording: Path | None) -> None:
        """The recording's patient as the analysis finds it (the sidecar, else the ICBHI side files)."""
        self.recording = recording
        self.setEnabled(recording is not None)
        metadata, source = PatientMetadata(), "Open a recording to see its patient."
        if recording is not None:
            try:
                facts, _ = patient_facts(recording)
            except PatientMetadataError as exc:
                facts, source = None, f"⚠ {exc.problem.message} Save the values here to replace it."
            else:
                source = (f"From {facts.source}." if facts else
                          "No patient metadata: models that read prompts use their missing-value wording.")
                metadata = facts.metadata if facts else metadata
        self._fill(metadata)
        self.source.setText(source)
        self.prompt.clear()

    def show_analysis(self, analysis: RecordingAnalysis | None) -> None:
        """The prompt the chosen model read with the recording's cycles, or why there is none."""
        if analysis is None:
            self.prompt.setText("")
        elif analysis.prompt is None:
            self.prompt.setText("The chosen model reads no prompt: it does not use this metadata.")
        else:
            self.prompt.setText(f"The model read: “{analysis.prompt}”")

    def _fill(self, metadata: PatientMetadata) -> None:
        for box, value in ((self.age, metadata.age), (self.bmi, metadata.bmi), (self.weight, metadata.weight_kg),
                           (self.height, metadata.height_cm)):
            box.setValue(box.minimum() if value is None else value)
        self.sex.setCurrentIndex(max(0, self.sex.findData(metadata.sex)))
        self.location.setCurrentIndex(max(0, self.location.findData(metadata.chest_location)))
        self.device.setCurrentText(metadata.device or "")

    # ---------------------------------------------------------------- saving

    def metadata(self) -> PatientMetadata:
        """The values as typed; ValidationError naming the field when one is not valid (a device name, say)."""
        def number(box: QDoubleSpinBox) -> float | None:
            return None if box.value() == box.minimum() else box.value()

        return PatientMetadata(age=number(self.age), sex=self.sex.currentData(), bmi=number(self.bmi),
                               weight_kg=number(self.weight), height_cm=number(self.height),
                               chest_location=self.location.currentData(),
                               device=self.device.currentText().strip() or None)

    def save(self) -> Path | None:
        """Writes the sidecar and says so, and the page has the recording predicted again; a value that is not
        valid, or a file that cannot be written, is said instead."""
        if self.recording is None:
            return None
        try:
            written = write_sidecar(self.recording, self.metadata())
        except ValidationError as exc:
            error = exc.errors(include_url=False)[0]
            self.source.setText(f"⚠ Not saved: {error['loc'][0]}: {error['msg']}.")
            return None
        except OSError as exc:
            self.source.setText(f"⚠ Not saved: {sidecar_path(self.recording).name} cannot be written "
                                f"({exc.strerror or exc}).")
            return None
        self.source.setText(f"From {written.name}.")
        self.saved.emit(self.recording)
        return written
