"""What a recording looks like on screen: its spectrogram in decibels, with the reference level chosen so
breath sounds, not heart sounds or hum, set the top of the colour scale."""
from __future__ import annotations

import numpy as np
import torch

DISPLAY_FLOOR_HZ = 60.0  # heart sounds, hum and DC below this would otherwise set the reference
REFERENCE_PERCENTILE = 99.9


def display_spectrogram(samples: np.ndarray, sr: int, *, window_s: float = 0.032, hop_s: float = 0.008,
                        max_frames: int = 4000) -> tuple[np.ndarray, float, float]:
    """dBFS magnitude (frames x bins) for display, with the seconds per frame and the Hz per bin; the hop
    grows on long recordings so the image stays under `max_frames` columns."""
    n_fft = 1 << max(6, int(np.ceil(np.log2(window_s * sr))))
    hop = max(int(hop_s * sr), int(np.ceil(len(samples) / max_frames)))
    window = torch.hann_window(n_fft)
    audio = np.asarray(samples, dtype=np.float32)  # float32 samples read where they lie: an hour's copy is 57 MB
    spec = torch.stft(torch.from_numpy(audio if audio.flags.writeable else audio.copy()), n_fft, hop, window=window,
                      return_complex=True).abs() * (2 / window.sum())  # a full-scale sine reads 0 dBFS
    db = 20 * torch.log10(spec + 1e-9)
    return db.T.numpy(), hop / sr, sr / n_fft


def relative_to_loud_parts(db: np.ndarray, hz_per_bin: float) -> np.ndarray:
    """dB relative to the recording's loud parts: 0 dB at the 99.9th percentile of the bins above 60 Hz."""
    above = db[:, int(DISPLAY_FLOOR_HZ / hz_per_bin) + 1:]
    reference = float(np.percentile(above if above.size else db, REFERENCE_PERCENTILE))
    return db - reference
