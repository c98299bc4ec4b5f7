"""Editing cycles with the mouse on the recording view: drag a cycle's start or end (a boundary two cycles
share moves for both), drag on empty time to add a cycle, right-click for the edit menu. A transparent item
over each plot takes the drags that mean an edit and leaves every other drag to the plot (panning).
Nothing changes until the mouse is released; then the edit is one undoable command on the document."""
from __future__ import annotations

from dataclasses import dataclass

import pyqtgraph as pg
from PySide6.QtCore import QObject, QPoint, QRectF, Qt, Signal
from PySide6.QtGui import QPen

from ..recordings.cycle_document import CycleDocument, edge_limits, edges_near, gap_at, snap
from ..recordings.recording_view import RecordingView
from ..recordings.session import Session
from ..theme import INK, translucent

EDGE_PIXELS = 6  # how close to a boundary the mouse grabs it


@dataclass
class Drag:
    kind: str  # "edges" or "add"
    origin: float
    edges: list[tuple[int, str]]
    limits: tuple[float, float]  # where the moving boundary (or the new cycle) may go


class EditOverlay(pg.GraphicsObject):
    """Covers one plot's view; its bounding rectangle follows the view range."""

    def __init__(self, editor: "CycleEditor"):
        super().__init__()
        self.editor = editor
        self.drag: Drag | None = None
        self.setAcceptHoverEvents(True)

    def boundingRect(self) -> QRectF:
        rect = self.viewRect()
        return rect if rect is not None else QRectF()

    def viewRangeChanged(self) -> None:
        self.prepareGeometryChange()
        super().viewRangeChanged()

    def paint(self, painter, *args) -> None:
        preview = self.editor.preview
        if preview is None:
            return
        start, end, boundary = preview
        rect = self.boundingRect()
        painter.setPen(Qt.PenStyle.NoPen)
        painter.setBrush(translucent(INK, 40))
        painter.drawRect(QRectF(start, rect.top(), end - start, rect.height()))
        if boundary is not None:
            pen = QPen(INK, 2)
            pen.setCosmetic(True)
            painter.setPen(pen)
            painter.drawLine(pg.Point(boundary, rect.top()), pg.Point(boundary, rect.bottom()))

    def hoverEvent(self, ev) -> None:
        if ev.isExit():
            self.editor.cursor_seconds = None
            self.unsetCursor()
            return
        seconds = ev.pos().x()
        self.editor.cursor_seconds = seconds
        grab = self.editor.grab_at(seconds, self.pixelWidth())
        if grab is None:
            self.unsetCursor()
            return
        ev.acceptDrags(Qt.MouseButton.LeftButton)
        self.setCursor(Qt.CursorShape.SplitHCursor if grab.kind == "edges" else Qt.CursorShape.IBeamCursor)

    def mouseDragEvent(self, ev) -> None:
        if ev.button() != Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        if ev.isStart():
            self.drag = self.editor.grab_at(ev.buttonDownPos().x(), self.pixelWidth())
        if self.drag is None:
            ev.ignore()  # not an edit: the plot pans
            return
        ev.accept()
        self.editor.drag_to(self.drag, ev.pos().x())
        if ev.isFinish():
            self.editor.finish(self.drag, ev.pos().x())
            self.drag = None

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == Qt.MouseButton.RightButton and self.editor.document is not None:
            ev.accept()
            self.editor.menu_requested.emit(ev.pos().x(), ev.screenPos().toPoint())
        else:
            ev.ignore()


class CycleEditor(QObject):
    """The mouse side of editing, over the three plots of a RecordingView: edits the session's current
    recording's document."""

    menu_requested = Signal(float, QPoint)  # seconds, where on the screen

    def __init__(self, view: RecordingView, session: Session):
        super().__init__(view)
        self.view = view
        self.session = session
        self.cursor_seconds: float | None = None  # where the mouse points on the time axis, over a plot
        self.preview: tuple[float, float, float | None] | None = None  # shaded stretch, boundary line
        self.overlays = []
        for plot in (view.wave, view.track, view.spec):
            overlay = EditOverlay(self)
            overlay.setZValue(15)  # above the cycles, below the selection and cursors
            plot.addItem(overlay, ignoreBounds=True)
            self.overlays.append(overlay)
        session.current_changed.connect(self.cancel_drag)

    @property
    def document(self) -> CycleDocument | None:
        return self.session.current_document_or_none()

    def cancel_drag(self) -> None:
        """The shaded preview gone, nothing edited (another recording is shown)."""
        self._show_preview(None)

    def grab_at(self, seconds: float, seconds_per_pixel: float) -> Drag | None:
        """What a drag starting here would do: move the nearest boundary, add a cycle in empty time, or
        nothing (inside a cycle: the plot pans)."""
        document = self.document
        if document is None:
            return None
        edges = edges_near(document.spans, seconds, EDGE_PIXELS * seconds_per_pixel)
        if edges:
            return Drag("edges", seconds, edges, edge_limits(document.spans, edges, document.duration))
        gap = gap_at(document.spans, seconds, document.duration)
        return Drag("add", seconds, [], gap) if gap is not None else None

    def _span(self, drag: Drag, seconds: float) -> tuple[float, float]:
        low, high = drag.limits
        at = min(max(snap(seconds), low), high)
        return (min(drag.origin, at), max(drag.origin, at)) if drag.kind == "add" else (at, at)

    def drag_to(self, drag: Drag, seconds: float) -> None:
        """Shades what the edit would change: the new cycle, or the stretch a boundary moves across (with
        the boundary at its new place)."""
        start, end = self._span(drag, seconds)
        if drag.kind == "add":
            self._show_preview((start, end, None))
            return
        i, edge = drag.edges[0]
        old = getattr(self.document.spans[i], edge)
        self._show_preview((min(old, start), max(old, start), start))

    def finish(self, drag: Drag, seconds: float) -> None:
        start, end = self._span(drag, seconds)
        self._show_preview(None)
        if drag.kind == "add":
            self.document.add(start, end)
        else:
            self.document.move_edges(drag.edges, start)

    def _show_preview(self, preview) -> None:
        self.preview = preview
        for overlay in self.overlays:
            overlay.update()
