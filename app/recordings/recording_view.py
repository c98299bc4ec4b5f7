"""Waveform, cycle track and spectrogram on one shared time axis; each cycle coloured by its predicted class.

The cycle track between the plots has two lanes: the model's prediction (with its confidence) and,
when an annotation was found, the annotated class; a mismatch gets a red outline and a cross, and a prediction on
a cycle too poorly recorded to mean much is hatched. The header above the plots gives the recording's quality
(its reasons in the tooltip), breathing rate and I:E ratio.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer, Signal
from PySide6.QtGui import QBrush, QColor, QFontMetricsF, QPen
from PySide6.QtWidgets import QGraphicsItem, QHBoxLayout, QLabel, QVBoxLayout, QWidget

from lungkd.core.labels import CLASS_NAMES
from lungkd.core.text import html_text

from ..theme import (CLASS_COLOURS, DOUBTED, INK, MISMATCH, MUTED, NOTICE, PLOT_BACKGROUND, class_colour,
                     colour_map, translucent)
from .cycle_document import ShownCycle
from .jobs import OpenRecording, Spectrogram
from .quality_marks import checks_html, poor_brush, reasons_html
from .spectrogram_settings import SpectrogramSettings
from .words import GENERATED

AXIS_WIDTH = 80  # the same for every plot, so their time axes line up; wide enough for "annotated"
SOURCE_WORDS = {"annotation": "from the annotation file", "automatic": "from automatic segmentation",
                "fixed windows": "in fixed 4 s windows"}


def confidence_alpha(confidence: float) -> int:
    """Opacity from a probability between 1/4 (a guess among four) and 1."""
    return int(40 + 120 * np.clip((confidence - 0.25) / 0.75, 0, 1))


def legend_html() -> str:
    return "  ".join(f"<span style='color:{c.name()}'>■</span> {name}" for name, c in
                     (*CLASS_COLOURS.items(), ("outside the training data", DOUBTED))) + \
        f"  <span style='color:{MISMATCH.name()}'>▨</span> poor recording quality"


@dataclass(eq=False)
class CycleLabel:
    item: pg.TextItem | None  # None until it is first shown: most labels of an hour never fit
    start: float
    end: float
    y: float
    texts: tuple[str, ...]  # longest first: the one shown is the longest that fits
    colour: int  # QColor.rgba()
    unclassed: bool = False  # says the cycle has no class: shown only once the recording has annotated cycles
    shown: str | None = None  # the text the item holds now (None: hidden)
    at: tuple[float, float] | None = None  # where it is placed

    @property
    def wording(self) -> tuple:
        return self.start, self.end, self.y, self.texts, self.colour


@dataclass(eq=False)
class Stretch:
    """The cycles starting in one BAR_CHUNK_S of time and what draws them: a band item per lane, their
    boundaries over the spectrogram and their labels. An edit draws again only the stretches whose cycles
    changed (the document keeps a cycle it left alone the same object), so an hour edits as fast as a minute."""

    cycles: tuple[ShownCycle, ...]
    items: dict[str, pg.GraphicsObject]  # by lane, and "boundaries"; "no class" shown once any cycle has a class
    labels: list[CycleLabel]
    end: float  # where its last cycle ends, s
    longest: float  # its longest cycle, s
    narrowest: float  # its narrowest label wording, pixels: where its longest cycle is narrower, none fits
    showing: bool = False  # some of its labels are shown


BAR_CHUNK_S = 30.0  # the cycles starting in each stretch of this length are one item per lane
STRETCHES_AT_ONCE = 4  # drawn in one turn of the event loop: more (an hour at first) are drawn over several


def predicted_colour(cycle: ShownCycle) -> QColor:
    """Grey while the model has not seen it, or when its prediction is not to be trusted; else its class's."""
    return MUTED if cycle.predicted is None else DOUBTED if cycle.doubted else class_colour(cycle.predicted)


def _by_chunk(cycles: list[ShownCycle]) -> dict[int, list[ShownCycle]]:
    chunks: dict[int, list[ShownCycle]] = {}
    for cycle in cycles:
        chunks.setdefault(int(cycle.start // BAR_CHUNK_S), []).append(cycle)
    return chunks


@lru_cache(maxsize=None)
def _pen(rgba: int, width: int = 1, style: Qt.PenStyle = Qt.PenStyle.SolidLine) -> QPen:
    """One pen per colour, width and style, shared by every band drawn with it (a few dozen differ)."""
    return pg.mkPen(QColor.fromRgba(rgba), width=width, style=style)


@lru_cache(maxsize=None)
def _brush(rgba: int) -> QBrush:
    """One brush per colour, shared by every band filled with it."""
    return QBrush(QColor.fromRgba(rgba))


class Bands(pg.BarGraphItem):
    """A lane's bands, painted with one drawRects per pen and brush (a few differ) and bounded once per view
    transform: pyqtgraph's own item sets the pen and brush of each band in turn and works out the pixel size each
    time Qt asks for its bounds, most of the time an hour with thousands of bands took to paint zoomed out. Never
    changed once made: a stretch whose cycles change is made anew."""

    _bounds: QRectF | None = None
    _groups: list[tuple[QPen, QBrush, list[QRectF]]] | None = None  # the bands by pen and brush, once painted

    def __init__(self, **bands) -> None:
        super().__init__(**bands)
        # Kept as pixels until the view moves: an edit, a selection or the play cursor repaints an hour zoomed out
        # in ~30 ms instead of ~160 (Qt caches only the part in view, however far zoomed in).
        self.setCacheMode(QGraphicsItem.CacheMode.DeviceCoordinateCache)

    def paint(self, painter, *args) -> None:
        if self._groups is None:
            o = self.opts
            groups: dict[tuple[int, int], tuple[QPen, QBrush, list[QRectF]]] = {}
            for x0, x1, pen, brush in zip(o["x0"], o["x1"], o["pens"], o["brushes"]):  # pens and brushes are shared
                groups.setdefault((id(pen), id(brush)), (pen, brush, []))[2].append(
                    QRectF(x0, o["y0"], x1 - x0, o["height"]))
            self._groups = list(groups.values())
        for pen, brush, rects in self._groups:
            painter.setPen(pen)
            painter.setBrush(brush)
            painter.drawRects(rects)

    def boundingRect(self) -> QRectF:
        if self._bounds is None:
            self._bounds = super().boundingRect()
        return self._bounds

    def viewTransformChanged(self) -> None:  # its outline's width, in pixels, is another width in time
        self._bounds = None
        self.prepareGeometryChange()
        super().viewTransformChanged()


def _bars(lane: str, cycles: tuple[ShownCycle, ...], y0: float, height: float) -> Bands:
    """A lane's bands for some cycles: the model's prediction (faint while unsure or not yet predicted; on the
    waveform fainter still, outlined), the hatch of a cycle of poor recording quality, the annotated class (a red outline where the model disagrees), or the
    dashed place of a cycle without a class. A pen of None draws a hairline in the background colour."""
    def alpha(c: ShownCycle) -> int:
        return confidence_alpha(c.confidence or 0.0)

    if lane == "wave":
        brushes = [_brush(translucent(predicted_colour(c), alpha(c) // 2).rgba()) for c in cycles]
        pens = [_pen(predicted_colour(c).darker(130).rgba()) for c in cycles]
    elif lane == "model":
        brushes = [_brush(translucent(predicted_colour(c), alpha(c)).rgba()) for c in cycles]
        pens = [None] * len(cycles)
    elif lane == "poor":  # outlined: its class is shown, and that it means little
        brushes = [poor_brush()] * len(cycles)
        pens = [_pen(MISMATCH.rgba(), style=Qt.PenStyle.DashLine)] * len(cycles)
    elif lane == "annotated":
        brushes = [_brush(translucent(class_colour(c.truth), 110).rgba()) for c in cycles]
        pens = [_pen(MISMATCH.rgba(), 2) if c.matches is False else None for c in cycles]
    else:
        brushes = [_brush(translucent(MUTED, 25).rgba())] * len(cycles)
        pens = [_pen(MUTED.rgba(), style=Qt.PenStyle.DashLine)] * len(cycles)
    pens = [pen or _pen(PLOT_BACKGROUND.rgba()) for pen in pens]
    return Bands(x0=[c.start for c in cycles], x1=[c.end for c in cycles], y0=y0, height=height,
                 brushes=brushes, pens=pens)


class RecordingView(QWidget):
    cycle_clicked = Signal(int)
    cycle_double_clicked = Signal(int)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.recording: OpenRecording | None = None
        self.cycles: list[ShownCycle] = []  # what the cycle track shows, from the recording's CycleDocument
        self.edited = False  # the cycles are no longer as the analysis found them
        self.phase_note = ""  # why the automatic cycles may start at expiration; "" where they are sure not to
        self.prompt: str | None = None  # what the chosen model read with the cycles (models with prompts)
        self.title = QLabel(objectName="heading")
        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground(PLOT_BACKGROUND)
        self.readout = QLabel(" ", objectName="readout")
        legend = QLabel(legend_html())
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(2)
        layout.addWidget(self.title)
        layout.addWidget(self.plots, 1)
        footer = QHBoxLayout()
        footer.addWidget(self.readout, 1)
        footer.addWidget(legend)
        layout.addLayout(footer)

        self.wave = self.plots.addPlot(row=0, col=0)
        self.track = self.plots.addPlot(row=1, col=0)
        self.spec = self.plots.addPlot(row=2, col=0)
        self._style_plots()
        # only what is in view, from the recording's WaveformSummary: an hour pans as quickly as a minute
        self.curve = pg.PlotCurveItem(pen=pg.mkPen(INK, width=1))
        self.wave.addItem(self.curve, ignoreBounds=True)
        self.wave.sigXRangeChanged.connect(self._draw_waveform)
        self.wave.vb.sigResized.connect(self._draw_waveform)
        self.image = pg.ImageItem(axisOrder="col-major")
        self.spec.addItem(self.image)
        self.colour_bar = pg.ColorBarItem(values=(-70, 0), colorMap=colour_map("viridis"), label="dB",
                                          interactive=False, width=14)
        self.colour_bar.setImageItem(self.image)
        self.plots.addItem(self.colour_bar, row=2, col=1)

        self._stretches: dict[int, Stretch] = {}  # by BAR_CHUNK_S of time
        self._annotated = False  # some cycle has a class: the track has an annotated lane
        self._pending: dict[int, tuple[ShownCycle, ...]] = {}  # stretches still to draw, nearest the view first
        self._pending_timer = QTimer(self, singleShot=True, interval=0)
        self._pending_timer.timeout.connect(self._draw_pending)
        self._layers: dict[tuple[int, float], pg.ItemGroup] = {}  # by plot and depth: the stretches' items
        self._spare_labels: list[pg.TextItem] = []  # made once, reused for the cycles that come
        probe = pg.TextItem("")  # never shown: the labels' font and margins
        self._label_metrics = QFontMetricsF(probe.textItem.font())
        self._label_margins = 2 * probe.textItem.document().documentMargin()  # drawn around the text
        self._advances: dict[str, float] = {}  # each label text's width, pixels
        self.selection = [self._overlay(pg.LinearRegionItem(movable=False, brush=(0, 0, 0, 0),
                                                            pen=pg.mkPen(pen, width=2)), plot)
                          for plot, pen in ((self.wave, INK), (self.track, INK), (self.spec, "w"))]
        self.hover = [self._overlay(pg.InfiniteLine(pen=pg.mkPen(MUTED, width=1, style=Qt.PenStyle.DotLine)), p)
                      for p in (self.wave, self.track, self.spec)]
        self.play_cursor = [self._overlay(pg.InfiniteLine(pen=pg.mkPen(MISMATCH, width=2)), p)
                            for p in (self.wave, self.track, self.spec)]
        self.plots.scene().sigMouseMoved.connect(self._mouse_moved)
        self.plots.scene().sigMouseClicked.connect(self._mouse_clicked)
        # the labels live in the track: place them on its own range (it follows the waveform's a moment
        # later) and again when a narrower window leaves less room per cycle
        self.track.sigXRangeChanged.connect(self._place_labels)
        self.track.vb.sigResized.connect(self._place_labels)

    def _style_plots(self) -> None:
        for plot in (self.wave, self.track, self.spec):
            plot.setMouseEnabled(y=False)
            plot.setMenuEnabled(False)
            plot.getAxis("left").setWidth(AXIS_WIDTH)
            plot.hideButtons()
            for axis in ("left", "bottom"):
                plot.getAxis(axis).setTextPen(INK)
                plot.getAxis(axis).setPen(MUTED)
        for plot in (self.track, self.spec):
            plot.setXLink(self.wave)
        self.track.getAxis("left").setTicks([[(1.5, "model")]])  # and "annotated" once a cycle has a class
        self.wave.setLabel("left", "amplitude")
        self.wave.hideAxis("bottom")
        self.wave.setYRange(-1.05, 1.05, padding=0)
        self.wave.getAxis("left").setTicks([[(-1, "-1"), (0, "0"), (1, "1")]])
        self.track.hideAxis("bottom")
        self.track.setYRange(0, 2, padding=0)
        self.track.setFixedHeight(60)
        self.spec.setLabel("left", "frequency", units="Hz")
        self.spec.setLabel("bottom", "time", units="s")
        self.plots.ci.layout.setRowStretchFactor(0, 2)
        self.plots.ci.layout.setRowStretchFactor(2, 3)
        self.plots.ci.layout.setVerticalSpacing(4)

    def _layer(self, plot: pg.PlotItem, z: float) -> pg.ItemGroup:
        """The group that the items of every stretch drawn at this depth of the plot join. Adding an item to the
        plot itself (or removing one) repaints the whole plot, as pyqtgraph's ViewBox queues a check of its
        auto-range at each change of its items; a group's children change without it, so an edit repaints only
        the stretches it redraws."""
        key = (id(plot), z)
        if key not in self._layers:
            layer = self._layers[key] = pg.ItemGroup()
            layer.setZValue(z)
            plot.addItem(layer, ignoreBounds=True)
        return self._layers[key]

    @staticmethod
    def _overlay(item, plot):
        item.setZValue(20)
        item.setVisible(False)
        plot.addItem(item, ignoreBounds=True)
        return item

    # ---------------------------------------------------------------- content

    def show_recording(self, recording: OpenRecording, settings: SpectrogramSettings, cycles: list[ShownCycle],
                       *, edited: bool = False, phase_note: str = "") -> None:
        self.recording = recording
        duration = recording.duration
        for plot in (self.wave, self.track, self.spec):
            plot.setLimits(xMin=0, xMax=duration)
        self.set_spectrogram(recording.spectrogram)
        self.apply_settings(settings)
        # its cycles in the next turns: the recording's first paint comes sooner (an hour's took 45-65 ms at once)
        self.set_analysis(cycles, edited=edited, phase_note=phase_note, drawn_now=0)
        self.set_play_position(None)
        self.wave.setXRange(0, duration, padding=0)
        self._draw_waveform()  # the range may not have changed (a recording as long as the last one)

    def _draw_waveform(self) -> None:
        """The waveform in view, as wide as the plot's pixels: its summary's envelope, or its samples zoomed in."""
        if self.recording is None:
            return
        x0, x1 = self.wave.vb.viewRange()[0]
        self.curve.setData(*self.recording.waveform.envelope(x0, x1, self.wave.vb.width()))

    def set_spectrogram(self, spectrogram: Spectrogram) -> None:
        self.image.setImage(spectrogram.db, autoLevels=False)
        frames, bins = spectrogram.db.shape
        self.image.setRect(QRectF(0, 0, frames * spectrogram.seconds_per_frame, bins * spectrogram.hz_per_bin))

    def apply_settings(self, settings: SpectrogramSettings) -> None:
        self.colour_bar.setColorMap(colour_map(settings.colour_map))
        self.colour_bar.setLevels((-settings.db_range, 0))
        nyquist = self.recording.sample_rate / 2 if self.recording else settings.fmax
        self.spec.setYRange(min(settings.fmin, nyquist - 100), min(settings.fmax, nyquist), padding=0)

    def set_analysis(self, cycles: list[ShownCycle], *, edited: bool = False, phase_note: str = "",
                     drawn_now: int = STRETCHES_AT_ONCE) -> None:
        """Draws the cycles (none before a model has run); one the model has not seen yet is grey, and so is
        a prediction not to be trusted (the cycle or its recording unlike the model's training data). The header
        gives `phase_note` where the cycles may start at expiration. Only the stretches of time whose cycles
        changed are drawn again: `drawn_now` of them in this call, the rest over the next turns of the event loop."""
        self.cycles, self.edited, self.phase_note = list(cycles), edited, phase_note
        self.select_cycle(None)
        self.title.setText(self._title())
        self.title.setToolTip(self._title_tip())
        annotated = any(c.truth is not None for c in cycles)
        if annotated != self._annotated:  # the first class set, or the last removed: the "no class" lane with it
            self._annotated = annotated
            self.track.getAxis("left").setTicks([[(1.5, "model")] + ([(0.5, "annotated")] if annotated else [])])
            for stretch in self._stretches.values():
                if "no class" in stretch.items:
                    stretch.items["no class"].setVisible(annotated)
        wanted = {chunk: tuple(members) for chunk, members in _by_chunk(cycles).items()}
        unused: dict[tuple, CycleLabel] = {}  # the labels of the stretches drawn again: an edit rewords few of them
        for chunk in [c for c, stretch in self._stretches.items()
                      if wanted.get(c) != stretch.cycles]:
            stretch = self._stretches.pop(chunk)
            for item in stretch.items.values():
                item.scene().removeItem(item)
            unused.update((label.wording, label) for label in stretch.labels)
        x0, x1 = self.track.vb.viewRange()[0]
        missing = sorted((chunk for chunk in wanted if chunk not in self._stretches),
                         key=lambda chunk: (chunk * BAR_CHUNK_S >= x1 or (chunk + 1) * BAR_CHUNK_S <= x0, chunk))
        self._pending = {chunk: wanted[chunk] for chunk in missing[drawn_now:]}
        for chunk in missing[:drawn_now]:
            self._stretches[chunk] = self._stretch(wanted[chunk], unused)
        for label in unused.values():  # the labels of cycles that are gone (or reworded): kept for the next ones
            if label.item is not None:
                label.item.setVisible(False)
                self._spare_labels.append(label.item)
        self._place_labels()
        if self._pending:
            self._pending_timer.start()

    def _draw_pending(self) -> None:
        """The next few stretches still to draw: an hour's first drawing never freezes the window."""
        for chunk in list(self._pending)[:STRETCHES_AT_ONCE]:
            self._stretches[chunk] = self._stretch(self._pending.pop(chunk), {})
        self._place_labels()
        if self._pending:
            self._pending_timer.start()

    @property
    def drawing(self) -> bool:
        """Stretches of the last cycles set are still to be drawn (in the next turns of the event loop)."""
        return bool(self._pending)

    def _stretch(self, cycles: tuple[ShownCycle, ...], unused: dict[tuple, CycleLabel]) -> Stretch:
        lanes = {"wave": (self.wave, cycles, -1.05, 2.1, -10), "model": (self.track, cycles, 1.06, 0.88, 5),
                 "poor": (self.track, [c for c in cycles if c.poor], 1.06, 0.88, 6),  # hatched over the prediction
                 "annotated": (self.track, [c for c in cycles if c.truth is not None], 0.06, 0.88, 5),
                 "no class": (self.track, [c for c in cycles if c.truth is None], 0.06, 0.88, 5)}
        items = {lane: _bars(lane, tuple(members), y0, height) for lane, (_, members, y0, height, _) in lanes.items()
                 if members}
        top = self.recording.sample_rate / 2
        items["boundaries"] = pg.PlotCurveItem(np.repeat([c.start for c in cycles], 2),
                                               np.tile([0.0, top], len(cycles)), connect="pairs",
                                               pen=pg.mkPen((255, 255, 255, 120), width=1))
        for lane, item in items.items():
            plot, z = (self.spec, 5) if lane == "boundaries" else (lanes[lane][0], lanes[lane][4])
            item.setVisible(lane != "no class" or self._annotated)
            item.setParentItem(self._layer(plot, z))
        labels = [label for cycle in cycles for label in self._cycle_labels(cycle, unused)]
        narrowest = min(self._advance(text) for label in labels for text in label.texts)
        return Stretch(cycles, items, labels, max(c.end for c in cycles),
                       max(c.end - c.start for c in cycles), narrowest)

    @property
    def labels(self) -> list[CycleLabel]:
        """Every cycle's labels, in time."""
        return [label for chunk in sorted(self._stretches) for label in self._stretches[chunk].labels]

    @staticmethod
    def _cycle_labels(cycle: ShownCycle, unused: dict[tuple, CycleLabel]) -> list[CycleLabel]:
        """The cycle's labels in the model's lane and the annotated one ("no class" when it has none): the same ones
        as before where their wording did not change (nothing to redraw)."""
        wordings = []
        if cycle.predicted is None:
            wordings.append((("predicting…", "…"), 1.5, MUTED))
        else:
            name, confidence = CLASS_NAMES[cycle.predicted], f"{cycle.confidence:.0%}"
            texts = (f"{name} {confidence}", name, confidence)
            if cycle.unlike_training and not cycle.recording_unlike:  # a whole recording: the notice says so
                texts = (f"{texts[0]} · outside training data", *texts)
            if cycle.poor:
                texts = (f"{texts[0]} · poor quality", *texts)
            wordings.append((texts, 1.5, predicted_colour(cycle).darker(170)))
        if cycle.truth is None:
            wordings.append((("no class", "?"), 0.5, MUTED))
        elif cycle.truth is not None:
            mismatch = cycle.matches is False
            truth = CLASS_NAMES[cycle.truth]
            wordings.append((((f"{truth}  ✗", "✗") if mismatch else (truth,)), 0.5,
                             MISMATCH if mismatch else class_colour(cycle.truth).darker(170)))
        labels = []
        for texts, y, colour in wordings:
            kept = unused.pop((cycle.start, cycle.end, y, texts, colour.rgba()), None)
            labels.append(kept or CycleLabel(None, cycle.start, cycle.end, y, texts, colour.rgba(),
                                             unclassed=cycle.truth is None and y == 0.5))
        return labels

    def show_prompt(self, prompt: str | None) -> None:
        """The prompt the chosen model read with the recording's cycles, in the title's tooltip."""
        self.prompt = prompt
        self.title.setToolTip(self._title_tip())

    def _title(self) -> str:
        r = self.recording
        if r is None:
            return ""
        a = r.analysis
        # Names come from files: escaped, so they are shown as written and never read as markup.
        device = f" · {html_text(a.device)}" if a and a.device else ""
        head = f"<b>{html_text(r.path.name)}</b> — {r.duration:.1f} s · {r.sample_rate / 1000:g} kHz{device}"
        if r.generated:
            head += f" · <span style='color:{NOTICE.name()}'>◆ {GENERATED}</span>"
        if a is None:
            return f"{head} · <i>{html_text(r.notice)}</i>"
        source = SOURCE_WORDS.get(a.cycle_source, a.cycle_source)
        if self.edited:  # the segmentation's confidence was of the cycles as found, not as edited
            title = f"{head} · {len(self.cycles)} cycles, edited (first {source})"
        elif a.cycle_source == "fixed windows":
            title = (f"{head} · {len(self.cycles)} cycles <b style='color:{MISMATCH.name()}'>{source}</b>"
                     f" — {html_text(a.fallback_reason or 'no breathing cycles were found')}")
        else:
            if a.segmentation_confidence is not None:
                source += f", {a.segmentation_confidence:.0%} sure (a breath every {a.breathing_period:.1f} s)"
            title = f"{head} · {len(self.cycles)} cycles {source}"
        if self.phase_note:
            title += f"<br><span style='color:{NOTICE.name()}'>⚠ Phase uncertain: {html_text(self.phase_note)}</span>"
        title += f"<br>{checks_html(a)}"
        if a.warnings:  # e.g. an annotation without a usable cycle, replaced by the segmentation
            first = a.warnings[0] if len(a.warnings[0]) <= 200 else a.warnings[0][:199] + "…"
            more = f" (and {len(a.warnings) - 1} more: hover for all)" if len(a.warnings) > 1 else ""
            title += f"<br><span style='color:{MISMATCH.name()}'>⚠ {html_text(first)}{more}</span>"
        return title

    def _title_tip(self) -> str:
        """The recording's quality in words, every warning of its analysis, then the prompt the model read; as
        text, never markup."""
        a = self.recording.analysis if self.recording else None
        parts = [reasons_html(a.quality, a.quality_reasons), html_text(a.breathing_words)] + \
            [html_text(w) for w in a.warnings] if a is not None else []
        if self.prompt is not None:
            parts.append(f"<b>Prompt:</b> {html_text(self.prompt)}")
        return f"<qt>{'<br><br>'.join(p for p in parts if p)}</qt>" if parts else ""

    def _label_item(self, label: CycleLabel) -> pg.TextItem:
        """A text item for a label about to be shown: a spare one, else a new one."""
        if self._spare_labels:
            item = self._spare_labels.pop()
        else:
            item = pg.TextItem("", anchor=(0.5, 0.5))
            item.setParentItem(self._layer(self.track, 10))
        item.setColor(QColor.fromRgba(label.colour))
        label.item, label.shown, label.at = item, None, None
        return item

    def _advance(self, text: str) -> float:
        """A label text's width in pixels, margins included; measured once per text (a few hundred differ)."""
        if text not in self._advances:
            self._advances[text] = self._label_metrics.horizontalAdvance(text) + self._label_margins
        return self._advances[text]

    def _place_labels(self) -> None:
        """Puts each label in the middle of the visible part of its cycle, in the longest wording that fits
        there and clears the label before it in its lane (annotated cycles may overlap), or hides it. Only the
        stretches in view whose cycles are wide enough for a label are measured, and only the labels whose text
        or place changed are touched."""
        seconds_per_pixel = self.track.vb.viewPixelSize()[0] if self.track.vb.width() else 0
        x0, x1 = self.track.vb.viewRange()[0]
        lane_end: dict[float, float] = {}  # where the last label shown in each lane ends, s
        for chunk in sorted(self._stretches):  # in time, as the lanes are read
            stretch = self._stretches[chunk]
            fits = bool(seconds_per_pixel) and stretch.end > x0 and chunk * BAR_CHUNK_S < x1 and \
                stretch.longest / seconds_per_pixel > stretch.narrowest
            if fits or stretch.showing:
                stretch.showing = any([self._place_label(label, x0, x1, seconds_per_pixel if fits else 0, lane_end)
                                       for label in stretch.labels])

    def _place_label(self, label: CycleLabel, x0: float, x1: float, seconds_per_pixel: float,
                     lane_end: dict[float, float]) -> bool:
        """Shows the label where it fits (seconds_per_pixel 0: nowhere); whether it is shown."""
        start, end = max(label.start, x0), min(label.end, x1)
        text = centre = None
        if seconds_per_pixel and end > start and (self._annotated or not label.unclassed):
            room = (end - start) / seconds_per_pixel
            centre = (start + end) / 2
            text = next((t for t in label.texts if self._advance(t) < room and
                         centre - self._advance(t) / 2 * seconds_per_pixel >= lane_end.get(label.y, -np.inf)), None)
        if text is not None and label.item is None:
            self._label_item(label)
        if text != label.shown:  # only what changed is redrawn: an edit rewords a few labels of thousands
            if text is not None:
                label.item.setText(text)
            label.item.setVisible(text is not None)
            label.shown = text
        if text is None:
            return False
        if label.at != (centre, label.y):
            label.item.setPos(centre, label.y)
            label.at = (centre, label.y)
        lane_end[label.y] = centre + self._advance(text) / 2 * seconds_per_pixel
        return True

    # ---------------------------------------------------------------- selection, playback, zoom

    def select_cycle(self, index: int | None) -> None:
        cycles = self.cycles
        visible = index is not None and 0 <= index < len(cycles)
        for region in self.selection:
            region.setVisible(visible)
            if visible:
                region.setRegion((cycles[index].start, cycles[index].end))
        if visible:
            self.reveal(cycles[index].start, cycles[index].end)

    def reveal(self, start: float, end: float) -> None:
        """Pans (zooming out only if needed) so that start..end is in view."""
        x0, x1 = self.wave.vb.viewRange()[0]
        if start >= x0 and end <= x1:
            return
        width = max(x1 - x0, (end - start) * 1.5)
        centre = (start + end) / 2
        self.wave.setXRange(centre - width / 2, centre + width / 2, padding=0)

    def set_play_position(self, seconds: float | None) -> None:
        for line in self.play_cursor:
            line.setVisible(seconds is not None)
            if seconds is not None:
                line.setValue(seconds)

    def zoom(self, factor: float) -> None:
        """factor < 1 zooms in around the middle of the view."""
        x0, x1 = self.wave.vb.viewRange()[0]
        centre, half = (x0 + x1) / 2, (x1 - x0) * factor / 2
        self.wave.setXRange(centre - half, centre + half, padding=0)

    def fit(self) -> None:
        if self.recording:
            self.wave.setXRange(0, self.recording.duration, padding=0)

    def visible_range(self) -> tuple[float, float]:
        x0, x1 = self.wave.vb.viewRange()[0]
        return max(0.0, x0), x1

    # ---------------------------------------------------------------- mouse

    def _plot_at(self, scene_pos):
        for plot in (self.wave, self.track, self.spec):
            if plot.vb.sceneBoundingRect().contains(scene_pos):
                return plot, plot.vb.mapSceneToView(scene_pos)
        return None, None

    def cycle_at(self, seconds: float) -> int | None:
        return next((i for i, c in enumerate(self.cycles) if c.start <= seconds < c.end), None)

    def _mouse_clicked(self, event) -> None:
        plot, point = self._plot_at(event.scenePos())
        if plot is None or event.button() != Qt.MouseButton.LeftButton:
            return
        index = self.cycle_at(point.x())
        if index is not None:
            (self.cycle_double_clicked if event.double() else self.cycle_clicked).emit(index)

    def _mouse_moved(self, scene_pos) -> None:
        plot, point = self._plot_at(scene_pos)
        for line in self.hover:
            line.setVisible(plot is not None and self.recording is not None)
            if point is not None:
                line.setValue(point.x())
        if plot is None or self.recording is None:
            return
        self.readout.setText(self.describe(plot, point.x(), point.y()))

    def describe(self, plot, seconds: float, y: float) -> str:
        """The readout: time, and frequency with the level there, the amplitude, or the cycle."""
        text = f"time {seconds:7.3f} s"
        if plot is self.spec:
            level = self._level_at(seconds, y)
            return f"{text}   frequency {y:6.0f} Hz" + (f"   {level:5.1f} dB" if level is not None else "")
        if plot is self.wave:
            return f"{text}   amplitude {y:+.3f} (of the peak)"
        index = self.cycle_at(seconds)
        if index is None:
            return text
        c = self.cycles[index]
        truth = "" if c.truth is None else f", annotated {CLASS_NAMES[c.truth]}"
        prediction = "not predicted yet" if c.predicted is None else f"{CLASS_NAMES[c.predicted]} {c.confidence:.0%}"
        bounds = "" if c.segmentation_confidence is None else f", its bounds {c.segmentation_confidence:.0%} sure"
        quality = f", quality {c.quality}" if c.quality and c.quality != "good" else ""
        return f"{text}   cycle {index + 1}: {prediction}{truth}{bounds}{quality}"

    def _level_at(self, seconds: float, hz: float) -> float | None:
        s = self.recording.spectrogram
        frame, bin_ = int(seconds / s.seconds_per_frame), int(hz / s.hz_per_bin)
        if 0 <= frame < s.db.shape[0] and 0 <= bin_ < s.db.shape[1]:
            return float(s.db[frame, bin_])
        return None
