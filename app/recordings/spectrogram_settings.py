"""Spectrogram display settings, kept between sessions in QSettings, and the bar that edits them."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from PySide6.QtCore import QSettings, QTimer, Signal
from PySide6.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QWidget

from ..theme import COLOUR_MAPS

GROUP = "spectrogram"


@dataclass(frozen=True)
class SpectrogramSettings:
    window_ms: float = 32.0
    hop_ms: float = 8.0
    db_range: float = 70.0  # shown below the recording's loud parts
    fmin: float = 0.0
    fmax: float = 2000.0  # lung sounds live below about 2 kHz
    colour_map: str = "viridis"

    def image_key(self) -> tuple[float, float]:
        """What the image itself depends on; the rest only changes how it is shown."""
        return self.window_ms, self.hop_ms

    @classmethod
    def load(cls, store: QSettings) -> SpectrogramSettings:
        default = asdict(cls())
        values = {key: store.value(f"{GROUP}/{key}", value, type=type(value)) for key, value in default.items()}
        if values["colour_map"] not in COLOUR_MAPS:
            values["colour_map"] = default["colour_map"]
        if values["fmax"] <= values["fmin"]:
            values["fmin"], values["fmax"] = default["fmin"], default["fmax"]
        return cls(**values)

    def save(self, store: QSettings) -> None:
        for key, value in asdict(self).items():
            store.setValue(f"{GROUP}/{key}", value)


class SpectrogramBar(QWidget):
    """One row of controls; `changed` fires once the user pauses (typing 4000 is not four redraws)."""

    changed = Signal(object)  # SpectrogramSettings

    def __init__(self, settings: SpectrogramSettings, parent: QWidget | None = None):
        super().__init__(parent)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setSpacing(6)
        self.spins: dict[str, QDoubleSpinBox] = {}
        self._debounce = QTimer(self, singleShot=True, interval=300)
        self._debounce.timeout.connect(lambda: self.changed.emit(self.settings()))
        for label, key, low, high, step, suffix, tip in (
                ("Window", "window_ms", 4, 256, 4, " ms", "Length of each FFT window"),
                ("Hop", "hop_ms", 1, 64, 1, " ms", "Time between windows"),
                ("Range", "db_range", 20, 140, 5, " dB", "Dynamic range shown below the loud parts of the recording"),
                ("Frequency", "fmin", 0, 23000, 100, " Hz", "Lowest frequency shown"),
                ("to", "fmax", 100, 24000, 100, " Hz", "Highest frequency shown")):
            spin = QDoubleSpinBox(decimals=0, minimum=low, maximum=high, singleStep=step, suffix=suffix)
            spin.setValue(getattr(settings, key))
            spin.setToolTip(tip)
            spin.valueChanged.connect(self._changed)
            layout.addWidget(QLabel(label))
            layout.addWidget(spin)
            self.spins[key] = spin
        self.colour_map = QComboBox()
        self.colour_map.addItems(COLOUR_MAPS)
        self.colour_map.setCurrentText(settings.colour_map)
        self.colour_map.currentTextChanged.connect(self._changed)
        layout.addWidget(QLabel("Colours"))
        layout.addWidget(self.colour_map)
        layout.addStretch(1)

    def _changed(self) -> None:
        self._debounce.start()  # (re)starts the wait; connected directly, start(int) would take the value

    def settings(self) -> SpectrogramSettings:
        values = {key: spin.value() for key, spin in self.spins.items()}
        if values["fmax"] <= values["fmin"]:
            values["fmax"] = values["fmin"] + 100
        return SpectrogramSettings(colour_map=self.colour_map.currentText(), **values)
