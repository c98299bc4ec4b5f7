"""The list of open recordings, each with its summary: duration, device, cycles and predicted classes,
whether the recording is outside the model's training data, its quality (the reasons in the tooltip), breathing
rate and I:E ratio, and how many of its cycles are poorly recorded.
A file that could not be opened stays in the list with its error (double click for the details)."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from PySide6.QtCore import QSize, Qt, Signal
from PySide6.QtWidgets import QLabel, QListWidget, QListWidgetItem

from lungkd.core.analysis.batch import Failure
from lungkd.core.labels import CLASS_NAMES
from lungkd.core.text import html_text

from ..theme import CLASS_COLOURS, EDITED, MISMATCH, MUTED, NOTICE
from .cycle_document import CycleDocument
from .jobs import OpenRecording
from .quality_marks import checks_html, poor_cycles_html, reasons_html
from .words import GENERATED, OUTSIDE, differ

PATH_ROLE = Qt.ItemDataRole.UserRole


def summary_html(recording: OpenRecording, document: CycleDocument | None = None,
                 model_folder: Path | None = None) -> str:
    """Name (marked when its annotation has unsaved edits or changed on disk); duration, rate, device;
    cycles and where they came from; predicted classes and mismatches."""
    a = recording.analysis
    facts = [f"{recording.duration:.1f} s", f"{recording.sample_rate / 1000:g} kHz"] + ([a.device] if a and a.device
                                                                                       else [])
    name = f"<b>{html_text(recording.path.name)}</b>"
    if recording.generated:
        name += f"<br><span style='color:{NOTICE.name()}'>◆ {GENERATED}</span>"
    if document is not None and document.modified:
        name += f"<br><span style='color:{EDITED.name()}'>● unsaved edits</span>"
    if document is not None and document.changed_on_disk:
        name += f"<br><span style='color:{MISMATCH.name()}'>⚠ its annotation changed on disk</span>"
    lines = [name, f"<span style='color:{MUTED.name()}'>{html_text(' · '.join(facts))}</span>"]
    if document is None:
        lines.append(f"<span style='color:{MUTED.name()}'>not analysed</span>")
    else:
        cycles = document.shown(model_folder)
        counts = Counter(CLASS_NAMES[c.predicted] for c in cycles if c.predicted is not None)
        counts_html = "&nbsp; ".join(f"<span style='color:{CLASS_COLOURS[n].name()}'>■</span>&nbsp;{counts[n]}&nbsp;{n}"
                                     for n in CLASS_NAMES if counts[n])
        mismatches = sum(c.matches is False for c in cycles)
        flag = f" · <span style='color:{MISMATCH.name()}'>✗ {differ(mismatches)}</span>" * bool(mismatches)
        lines += [f"<span style='color:{MUTED.name()}'>{len(cycles)} cycles ({document.cycle_source})</span>" + flag,
                  counts_html]
        if any(c.recording_unlike for c in cycles):
            lines.append(f"<span style='color:{NOTICE.name()}'>⚠ {OUTSIDE}</span>")
    if a is not None:
        lines += [checks_html(a)] + ([poor] if document is not None and (poor := poor_cycles_html(
            document.shown(model_folder))) else [])
    return "<br>".join(lines)


def failure_html(failure: Failure) -> str:
    message = failure.message if len(failure.message) < 160 else failure.message[:157] + "…"
    return (f"<b style='color:{MISMATCH.name()}'>⚠ {html_text(failure.path.name)}</b><br>"
            f"<span style='color:{MUTED.name()}'>{html_text(message)}</span>")


class RecordingList(QListWidget):
    recording_chosen = Signal(object)  # the Path of an open recording
    failure_activated = Signal(object)  # a Failure, to show its details

    def __init__(self, parent=None):
        super().__init__(parent)
        self.failures: dict[Path, Failure] = {}
        self.setMinimumWidth(260)
        self.setSpacing(1)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.currentItemChanged.connect(self._current_changed)
        self.itemDoubleClicked.connect(self._double_clicked)

    def show_result(self, result: OpenRecording | Failure, document: CycleDocument | None = None,
                    model_folder: Path | None = None) -> QListWidgetItem:
        """Adds the recording, or updates its entry when it is already listed."""
        item = self.item_for(result.path) or QListWidgetItem(self)
        item.setData(PATH_ROLE, result.path)
        text = summary_html(result, document, model_folder) if isinstance(result, OpenRecording) \
            else failure_html(result)
        if isinstance(result, Failure):
            self.failures[result.path] = result
            item.setToolTip(f"<qt>{html_text(result.message)}<br>(double click for the details)</qt>")
        else:
            self.failures.pop(result.path, None)
            a = result.analysis
            reasons = reasons_html(a.quality, a.quality_reasons) if a is not None else ""
            item.setToolTip(f"<qt>{html_text(str(result.path))}" + (f"<br><br>{reasons}" if reasons else "") + "</qt>")
        if (label := self.itemWidget(item)) is not None:  # each edit rewrites it: no new widget each time
            label.setText(text)
        else:
            label = QLabel(text, wordWrap=True)
            label.setContentsMargins(6, 4, 6, 4)
            label.setAttribute(Qt.WidgetAttribute.WA_TransparentForMouseEvents)
            self.setItemWidget(item, label)
        self._fit(item)
        return item

    def _fit(self, item: QListWidgetItem) -> None:
        """Item height for the list's width, so wrapped summaries show in full."""
        width = self.viewport().width() - 2 * self.spacing()
        item.setSizeHint(QSize(width, self.itemWidget(item).heightForWidth(width)))

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        for i in range(self.count()):
            self._fit(self.item(i))

    def item_for(self, path: Path) -> QListWidgetItem | None:
        return next((self.item(i) for i in range(self.count()) if self.item(i).data(PATH_ROLE) == path), None)

    def current_path(self) -> Path | None:
        item = self.currentItem()
        return item.data(PATH_ROLE) if item else None

    def label_text(self, path: Path) -> str:
        return self.itemWidget(self.item_for(path)).text()

    def remove(self, path: Path) -> None:
        item = self.item_for(path)
        if item is not None:
            self.failures.pop(path, None)
            self.takeItem(self.row(item))

    def _current_changed(self, item: QListWidgetItem | None) -> None:
        if item is not None and item.data(PATH_ROLE) not in self.failures:
            self.recording_chosen.emit(item.data(PATH_ROLE))

    def _double_clicked(self, item: QListWidgetItem) -> None:
        failure = self.failures.get(item.data(PATH_ROLE))
        if failure is not None:
            self.failure_activated.emit(failure)
