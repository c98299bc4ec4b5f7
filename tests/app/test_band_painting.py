"""The cycle bands are painted a pen and brush at a time, and bounded once per view transform, yet look exactly as
pyqtgraph's own bar item paints them, at every zoom (where two bands touch, which one's outline is on the shared
pixel may differ: they are painted in another order)."""
import numpy as np
import pyqtgraph as pg
import pytest
from PySide6.QtGui import QColor, QImage

from lungkd.app.recordings.recording_view import Bands, _brush, _pen


def bands_kwargs(count: int = 100) -> dict:
    """Bands of three colours and two outlines, 8 s apart, some narrower than a pixel zoomed out."""
    rng = np.random.default_rng(0)
    starts = np.arange(count) * 10.0
    colours = [QColor(200, 40, 40, 90), QColor(40, 160, 40, 140), QColor(40, 40, 200, 60)]
    return dict(x0=list(starts), x1=list(starts + rng.uniform(0.5, 2.0, count)), y0=0.1, height=0.8,
                brushes=[_brush(colours[i % 3].rgba()) for i in range(count)],
                pens=[_pen(QColor(0, 0, 0).rgba(), 2 if i % 7 == 0 else 1) for i in range(count)])


def painted(qtbot, item, x_range) -> QImage:
    plot = item.plot = pg.PlotWidget()  # kept while the item is
    qtbot.addWidget(plot)
    plot.resize(800, 200)
    plot.addItem(item)
    plot.setXRange(*x_range, padding=0)
    plot.setYRange(0, 1, padding=0)
    plot.show()
    qtbot.waitExposed(plot)
    return plot.grab().toImage()


@pytest.mark.parametrize("x_range", [(0, 1000), (100, 130), (200, 201)])
def test_bands_look_as_pyqtgraphs_bars_do(qtbot, x_range):
    ours, theirs = Bands(**bands_kwargs()), pg.BarGraphItem(**bands_kwargs())
    assert painted(qtbot, ours, x_range) == painted(qtbot, theirs, x_range)
    assert ours.boundingRect() == theirs.boundingRect()


def test_bands_are_bounded_and_painted_anew_when_the_view_zooms(qtbot):
    """The bounds are kept, and the pixels cached, only while the view stays where it is."""
    ours, theirs = Bands(**bands_kwargs()), pg.BarGraphItem(**bands_kwargs())
    for item in (ours, theirs):
        painted(qtbot, item, (0, 1000))
    zoomed_out = ours.boundingRect()
    images = []
    for item in (ours, theirs):
        item.getViewBox().setXRange(100, 101, padding=0)
        images.append(item.plot.grab().toImage())  # the view's transform is brought up to date when it paints
    assert ours.boundingRect() == theirs.boundingRect() != zoomed_out  # the outline's pixel is less time now
    assert images[0] == images[1]
