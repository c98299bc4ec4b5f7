"""Help > About: the same facts as `lungkd --version`, with the Qt the window runs on."""
from importlib import metadata

import PySide6
import torch
from PySide6.QtCore import QSettings, qVersion
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QMessageBox

from lungkd.app.shell.main_window import MainWindow


def test_help_about_shows_the_versions_and_whether_a_gpu_was_found(qtbot, tmp_path):
    window = MainWindow(tmp_path / "workspace", QSettings(str(tmp_path / "studio.ini"), QSettings.Format.IniFormat))
    qtbot.addWidget(window)
    window.show()
    help_menu = next(a.menu() for a in window.menuBar().actions() if a.text() == "&Help")
    about_action = next(a for a in help_menu.actions() if "About" in a.text())
    about_action.trigger()
    box = window.findChild(QMessageBox)
    qtbot.waitUntil(lambda: box.isVisible())
    text = box.text() + box.informativeText()
    assert f"LungKD Studio {metadata.version('lungkd')}" in text
    assert torch.__version__ in text
    assert f"{qVersion()} (PySide6 {PySide6.__version__})" in text
    assert metadata.version("transformers") in text
    assert str(tmp_path / "workspace") in text
    if torch.cuda.is_available():
        assert torch.cuda.get_device_name(0) in text
    else:
        assert "no GPU found" in text

    copy = next(b for b in box.buttons() if b.text() == "Copy")
    copy.click()
    copied = QGuiApplication.clipboard().text()
    assert copied.startswith(f"LungKD        {metadata.version('lungkd')}")
    assert torch.__version__ in copied and str(tmp_path / "workspace") in copied
