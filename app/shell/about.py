"""Help > About: the versions and the device (core.about, plus the Qt the window runs on), to copy into a bug
report."""
from __future__ import annotations

import html
from pathlib import Path

import PySide6
from PySide6.QtCore import Qt, qVersion
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox, QWidget

from lungkd.core.about import gather_about

from ..theme import application_icon


def show_about(parent: QWidget, workspace: Path) -> QMessageBox:
    """The About box over `parent`; not modal, like the error messages."""
    about = gather_about(qt=f"{qVersion()} (PySide6 {PySide6.__version__})")
    rows = [("Workspace", str(workspace))]
    box = QMessageBox(parent)
    box.setWindowTitle("About LungKD Studio")
    box.setIconPixmap(application_icon().pixmap(64, 64))
    box.setText(f"<b>LungKD Studio {about.lungkd}</b><br>Lung-sound cycles classified by models distilled "
                "from ensembles.<br>Not a medical device.")
    box.setInformativeText("<table cellspacing='2'>" + "".join(
        f"<tr><td><b>{label}</b>&nbsp;&nbsp;</td><td>{html.escape(value)}</td></tr>"
        for label, value in about.rows() + rows) + "</table>")
    box.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
    copy = box.addButton("Copy", QMessageBox.ButtonRole.ActionRole)
    copy.clicked.connect(lambda: QGuiApplication.clipboard().setText(about.text(rows)))
    box.addButton(QMessageBox.StandardButton.Close)
    box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
    box.open()
    return box
