"""Waveform above spectrogram on a shared time axis, with each cycle drawn by its predicted class."""
from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from lungkd.core.labels import CLASS_NAMES

from .theme import CLASS_COLOURS, MISMATCH, translucent

COLOUR_MAPS = ("viridis", "magma", "inferno", "greyscale")


class CycleRegion(pg.LinearRegionItem):
    """A fixed region that reports clicks, so the table can follow the plot."""

    def __init__(self, index: int, span: tuple[float, float], brush, on_click):
        super().__init__(values=span, movable=False, brush=brush, pen=pg.mkPen(None))
        self.index = index
        self._on_click = on_click

    def mouseClickEvent(self, event):
        if event.button() == Qt.MouseButton.LeftButton:
            self._on_click(self.index)
            event.accept()


class RecordingView(QWidget):
    cycle_clicked = Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.layout_widget = pg.GraphicsLayoutWidget()
        self.readout = QLabel("Drop recordings here, or File > Open.")
        self.readout.setObjectName("readout")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.layout_widget, 1)
        layout.addWidget(self.readout)
        self.layout_widget.setBackground("w")
        self.wave = self.layout_widget.addPlot(row=0, col=0)
        self.wave.setLabel("left", "amplitude")
        self.wave.setMouseEnabled(y=False)
        self.wave.hideAxis("bottom")
        self.spec = self.layout_widget.addPlot(row=1, col=0)
        self.spec.setLabel("left", "frequency", units="Hz")
        self.spec.setLabel("bottom", "time", units="s")
        self.spec.setMouseEnabled(y=False)
        self.spec.setXLink(self.wave)
        self.layout_widget.ci.layout.setRowStretchFactor(0, 2)
        self.layout_widget.ci.layout.setRowStretchFactor(1, 3)
        self.curve = self.wave.plot(pen=pg.mkPen((70, 70, 70), width=1))
        # peak downsampling keeps a one-hour recording as fast as a ten-second one
        self.curve.setDownsampling(auto=True, method="peak")
        self.curve.setClipToView(True)
        self.image = pg.ImageItem()
        self.spec.addItem(self.image)
        self.colour_bar = pg.ColorBarItem(values=(-100, 0), colorMap="viridis", label="dBFS", width=12,
                                          interactive=False)
        self.colour_bar.setImageItem(self.image)
        # the bar gets its own column, beside both plots, so their time axes stay aligned pixel for pixel
        self.layout_widget.addItem(self.colour_bar, row=1, col=1)
        self.layout_widget.ci.layout.setColumnFixedWidth(1, 70)
        for plot in (self.wave, self.spec):
            plot.getAxis("left").setWidth(64)
        self.regions: list[CycleRegion] = []
        self.markers: list[pg.GraphicsObject] = []
        self.selection = pg.LinearRegionItem(movable=False, brush=(0, 0, 0, 0), pen=pg.mkPen((20, 20, 20), width=2))
        self.selection.setVisible(False)
        self.spec.addItem(self.selection)
        self.layout_widget.scene().sigMouseMoved.connect(self._mouse_moved)
        self._fmax = 4000.0

    # ---------------------------------------------------------------- content

    def show_recording(self, samples: np.ndarray, sr: int, spectrogram: np.ndarray, seconds_per_frame: float,
                       hz_per_bin: float, analysis, settings: dict) -> None:
        t = np.arange(len(samples)) / sr
        self.curve.setData(t, samples)
        self.image.setImage(spectrogram, autoLevels=False)
        self.image.setRect(0, 0, spectrogram.shape[0] * seconds_per_frame, spectrogram.shape[1] * hz_per_bin)
        self.apply_settings(settings)
        self._draw_cycles(analysis)
        self.wave.setXRange(0, len(samples) / sr, padding=0)
        self.readout.setText(f"{analysis.name}: {analysis.duration:.1f} s at {analysis.sample_rate} Hz, "
                             f"{len(analysis.cycles)} cycles from {analysis.cycle_source}")

    def apply_settings(self, settings: dict) -> None:
        name = settings["colour_map"]
        cmap = pg.ColorMap(pos=[0, 1], color=[(0, 0, 0), (255, 255, 255)]) if name == "greyscale" \
            else pg.colormap.get(name)
        self.colour_bar.setColorMap(cmap)
        self.colour_bar.setLevels((settings["db_floor"], settings["db_floor"] + settings["db_range"]))
        self._fmax = settings["fmax"]
        self.spec.setYRange(settings["fmin"], settings["fmax"], padding=0)

    def _draw_cycles(self, analysis) -> None:
        for item in self.regions + self.markers:
            item.getViewBox() and item.getViewBox().removeItem(item)
        self.regions, self.markers = [], []
        for i, cycle in enumerate(analysis.cycles):
            colour = CLASS_COLOURS[CLASS_NAMES[cycle.predicted]]
            region = CycleRegion(i, (cycle.start, cycle.end), translucent(colour, int(25 + 70 * cycle.confidence)),
                                 self.cycle_clicked.emit)
            self.wave.addItem(region)
            self.regions.append(region)
            label = pg.TextItem(f"{CLASS_NAMES[cycle.predicted]} {cycle.confidence:.0%}", color=colour.darker(170),
                                anchor=(0, 0))
            label.setPos(cycle.start, 1.0)
            self.wave.addItem(label)
            self.markers.append(label)
            if cycle.truth is not None:
                # the annotation as a thin band under the prediction; a red edge where they disagree
                truth_colour = CLASS_COLOURS[CLASS_NAMES[cycle.truth]]
                pen = pg.mkPen(MISMATCH, width=3) if not cycle.matches else pg.mkPen(None)
                band = pg.BarGraphItem(x0=[cycle.start], x1=[cycle.end], y0=[-1.0], y1=[-0.85], brush=truth_colour,
                                       pen=pen)
                self.wave.addItem(band)
                self.markers.append(band)
        self.wave.setYRange(-1.0, 1.1, padding=0)

    def select_cycle(self, index: int, cycles) -> None:
        cycle = cycles[index]
        self.selection.setRegion((cycle.start, cycle.end))
        self.selection.setVisible(True)
        width = cycle.end - cycle.start
        self.wave.setXRange(cycle.start - width, cycle.end + width, padding=0)

    def _mouse_moved(self, position) -> None:
        for plot, what in ((self.spec, "frequency"), (self.wave, "amplitude")):
            if plot.sceneBoundingRect().contains(position):
                point = plot.vb.mapSceneToView(position)
                value = f"{point.y():.0f} Hz" if what == "frequency" else f"{point.y():+.3f}"
                self.readout.setText(f"time {point.x():.3f} s   {what} {value}")
