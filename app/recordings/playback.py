"""Playing a stretch of a recording with a moving cursor, through Qt Multimedia (PySide6-Addons).

Without Qt Multimedia, its system libraries (libpulse on Linux: the reason names the package) or an audio
output device, the player says why in `unavailable_reason` and the window disables playback with that as the
tooltip.
"""
from __future__ import annotations

import numpy as np
from PySide6.QtCore import QByteArray, QBuffer, QIODevice, QObject, QTimer, Signal

from lungkd.core.data.audio import resample

from ..system_check import playback_problem


def _multimedia():
    """The QtMultimedia module and the default output device, or None and the reason."""
    try:
        from PySide6 import QtMultimedia
    except ImportError as exc:  # not installed, or e.g. libpulse.so.0 missing: name the package to install
        return None, None, playback_problem(str(exc))
    device = QtMultimedia.QMediaDevices.defaultAudioOutput()
    if device.isNull():
        return None, None, "Playback is unavailable: no audio output device was found."
    return QtMultimedia, device, ""


class Player(QObject):
    position = Signal(object)  # seconds into the recording while playing; None once stopped

    def __init__(self, parent: QObject | None = None):
        super().__init__(parent)
        self._qm, self._device, self.unavailable_reason = _multimedia()
        self._sink = None
        self._buffer: QBuffer | None = None
        self._start = 0.0
        self._timer = QTimer(self, interval=30)
        self._timer.timeout.connect(self._tick)

    @property
    def available(self) -> bool:
        return self._qm is not None

    def is_playing(self) -> bool:
        return self._sink is not None

    def play(self, samples: np.ndarray, sample_rate: int, start: float, end: float) -> None:
        """Plays samples[start:end] (seconds), as loud as the recording's peak allows."""
        if not self.available:
            return
        self.stop()
        qm = self._qm
        clip = samples[int(start * sample_rate): int(end * sample_rate)]
        fmt = qm.QAudioFormat()
        fmt.setChannelCount(1)
        fmt.setSampleFormat(qm.QAudioFormat.SampleFormat.Int16)
        fmt.setSampleRate(sample_rate)
        if not self._device.isFormatSupported(fmt):  # e.g. a 4 kHz recording on a 48 kHz-only device
            rate = self._device.preferredFormat().sampleRate()
            clip = resample(clip, sample_rate, rate)
            fmt.setSampleRate(rate)
        peak = float(np.abs(samples).max()) or 1.0
        pcm = (np.clip(clip / peak, -1, 1) * 32000).astype("<i2").tobytes()
        self._buffer = QBuffer(self)
        self._buffer.setData(QByteArray(pcm))
        self._buffer.open(QIODevice.OpenModeFlag.ReadOnly)
        self._sink = qm.QAudioSink(self._device, fmt, self)
        self._sink.stateChanged.connect(self._state_changed)
        self._start = start
        self._sink.start(self._buffer)
        self._timer.start()

    def stop(self) -> None:
        if self._sink is None:
            return
        self._timer.stop()
        sink, self._sink = self._sink, None
        sink.stop()
        sink.deleteLater()
        self._buffer.close()
        self.position.emit(None)

    def _tick(self) -> None:
        if self._sink is not None:
            self.position.emit(self._start + self._sink.processedUSecs() / 1e6)

    def _state_changed(self, state) -> None:
        if self._sink is not None and state == self._qm.QAudio.State.IdleState:  # the clip has played out
            self.stop()
