"""Driving LungKD Studio's recording view as a hand does: drags on the plots, keys, clicks in the table,
answers to message boxes, and files dropped from a file manager."""
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from PySide6.QtGui import QDragEnterEvent, QDropEvent
from PySide6.QtTest import QTest
from PySide6.QtWidgets import QApplication, QMessageBox

LEFT = Qt.MouseButton.LeftButton
NO = Qt.KeyboardModifier.NoModifier


def drop(widget, paths, at: QPoint = QPoint(20, 10)) -> bool:
    """Drags the paths onto the widget and drops them, as a file manager would; True when it (or a widget it lies
    in, as Qt offers a drag to each in turn) took them."""
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    accepted = []
    for kind, position in ((QDragEnterEvent, at), (QDropEvent, QPointF(at))):
        event = kind(position, Qt.DropAction.CopyAction, mime, LEFT, NO)
        QApplication.sendEvent(widget, event)
        accepted.append(event.isAccepted())
    return all(accepted)


def widget_point(page, plot, seconds, y):
    view = page.view
    return view.plots.mapFromScene(plot.vb.mapViewToScene(QPointF(seconds, y)))


def data_x(page, plot, point) -> float:
    """The time a widget point falls on (what the mouse really lands on, to the pixel)."""
    return plot.vb.mapSceneToView(page.view.plots.mapToScene(point)).x()


def drag(page, plot, start_s, end_s, y):
    """A left-button drag as a hand makes it: hover, press, move in steps over ~200 ms, release. Returns
    the times under the pointer where it was pressed and released."""
    viewport = page.view.plots.viewport()
    a, b = widget_point(page, plot, start_s, y), widget_point(page, plot, end_s, y)
    QTest.mouseMove(viewport, a)
    QTest.qWait(30)
    QTest.mousePress(viewport, LEFT, NO, a)
    for step in range(1, 11):
        QTest.qWait(20)  # pyqtgraph drops mouse moves closer together than 10 ms, as a hand never makes them
        QTest.mouseMove(viewport, a + (b - a) * step / 10)
    QTest.qWait(20)
    QTest.mouseRelease(viewport, LEFT, NO, b)
    return data_x(page, plot, a), data_x(page, plot, b)


def let_go(widget, modifier) -> None:
    """Releases Ctrl and Shift after a chord, as a hand does: QTest would otherwise leave them held for the
    application (and every later test), which turns a plain click into a Ctrl-click."""
    for held, name in ((Qt.KeyboardModifier.ControlModifier, Qt.Key.Key_Control),
                       (Qt.KeyboardModifier.ShiftModifier, Qt.Key.Key_Shift)):
        if modifier & held:
            QTest.keyRelease(widget, name)


def key(page, key, modifier=NO):
    """A key pressed while the cycle table has the focus (the Recordings page's keys work from there)."""
    QTest.keyClick(page.table, key, modifier)
    let_go(page.table, modifier)


def click_row(page, row, modifier=NO):
    table = page.table
    QTest.mouseClick(table.viewport(), LEFT, modifier, table.visualItemRect(table.item(row, 1)).center())
    let_go(table, modifier)


def respond(button):
    """Clicks `button` (a standard button or a button's text) in the next message box, once it is up (for
    up to 10 s); the box's text, its text format and its informative text are kept in `respond.text`,
    `respond.format` and `respond.informative`."""
    def click(tries_left=500):
        box = QApplication.activeModalWidget()
        if not isinstance(box, QMessageBox):
            if tries_left:
                QTimer.singleShot(20, lambda: click(tries_left - 1))
            return
        respond.text, respond.format, respond.informative = box.text(), box.textFormat(), box.informativeText()
        target = (box.button(button) if isinstance(button, QMessageBox.StandardButton)
                  else next(b for b in box.buttons() if b.text() == button))
        target.click()
    respond.text = respond.format = respond.informative = None
    QTimer.singleShot(0, click)


def open_for_editing(window, folder, wait_idle, qtbot):
    """The Recordings page with `folder` open and analysed, the window active and the table focused, as a user
    starts to edit; keys go to the page from here."""
    window.open_paths([folder])
    wait_idle(window)
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow)
    window.recordings.table.setFocus()
    return window.recordings
