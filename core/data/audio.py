"""Decoding and resampling recordings (docs/method.md section 3, step 1).

soundfile decodes (wav 8/16/24/32-bit int and float, flac, ogg); torchaudio only resamples.
"""
from __future__ import annotations

import math
import os
import stat
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

from lungkd.core.errors import AudioError, Problem

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg")
MIN_SAMPLE_RATE = 4000
MAX_SAMPLE_RATE = 768_000  # the fastest audio interfaces; above it a header is damaged, not a recording
MIN_DURATION_S = 0.25  # the shortest breathing cycles ICBHI annotates are about this long
CHECK_BLOCK = 1 << 21  # samples checked for NaN at once: no whole-length mask for an hour-long recording
DECODE_BLOCK = 1 << 20  # frames decoded at once
# The longest recording decoded: 1 GB of float32 mono, 1 h 41 min at 44.1 kHz, 4 h 39 min at 16 kHz. Longer ones
# are refused by their header, before a sample is decoded.
MAX_DECODED_SAMPLES = 1 << 28
_SUPPORTED = "wav (8/16/24/32-bit integer or float PCM), flac or ogg"


@dataclass(frozen=True)
class AudioInfo:
    sample_rate: int
    frames: int  # what the file holds
    channels: int
    subtype: str
    declared_frames: int  # what its header promises; more than `frames` when the file was cut short

    @property
    def duration(self) -> float:
        return self.frames / self.sample_rate

    @property
    def truncated(self) -> bool:
        return self.declared_frames > self.frames

    def truncation_problem(self, path: Path) -> Problem:
        return Problem(str(path), f"truncated: the header promises {self.declared_frames} samples but the file holds "
                       f"{self.frames}; using what is there.", "copy the recording again from its source.")


MAX_WAV_CHUNKS = 1000  # a real file has a handful; a damaged header could otherwise send the walk in circles


def _declared_wav_frames(path: Path) -> int | None:
    """Frames the RIFF `data` chunk declares. libsndfile quietly shortens a cut-off file, so we look ourselves.
    None when the header does not say (or is too damaged to say)."""
    with path.open("rb") as f:
        if f.read(12)[8:12] != b"WAVE":
            return None
        block_align = None
        for _ in range(MAX_WAV_CHUNKS):
            header = f.read(8)
            if len(header) < 8:
                return None
            chunk, size = header[:4], struct.unpack("<I", header[4:])[0]
            start = f.tell()
            if chunk == b"fmt ":
                fmt = f.read(16)
                if size < 16 or len(fmt) < 16:
                    return None
                block_align = struct.unpack("<H", fmt[12:14])[0]
            elif chunk == b"data":
                # 0 and 0xFFFFFFFF are what streaming writers leave when they cannot seek back.
                return size // block_align if block_align and size not in (0, 0xFFFFFFFF) else None
            f.seek(start + size + (size & 1))  # always forward: chunks are read in order
    return None


def _reason(exc: Exception) -> str:
    """libsndfile's own words ("Format not recognised"), without the file name the message already has."""
    return str(getattr(exc, "error_string", None) or exc).rstrip(".")


def _native(path: Path):
    """The path as libsndfile opens it: bytes on POSIX, so names that are not valid UTF-8 open too."""
    return str(path) if os.name == "nt" else os.fsencode(path)


# Integer PCM decodes sample by sample into -1..1 and holds no NaN: a stretch read from the file is, to the bit,
# that stretch of the whole recording decoded, and nothing in the whole is needed to use it.
STRETCH_EXACT_SUBTYPES = frozenset({"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"})


class SamplesOnDisk:
    """A recording's float32 mono samples left in its file: `samples[a:b]` reads and decodes that stretch only,
    the numbers `decode_audio` gives there. What an analysis that works a batch of cycles at a time needs, without
    holding an hour of audio (57 MB at 4 kHz, 635 MB at 44.1 kHz)."""

    def __init__(self, path: Path, info: AudioInfo):
        self.path, self.frames, self.channels = path, info.frames, info.channels

    def __len__(self) -> int:
        return self.frames

    def __getitem__(self, index: slice) -> np.ndarray:
        start, stop, step = index.indices(self.frames)
        if step != 1:
            raise ValueError("a recording on disk is read in stretches of consecutive samples")
        try:
            with sf.SoundFile(_native(self.path)) as f:
                f.seek(start)
                block = f.read(max(0, stop - start), dtype="float32", always_2d=True)
        except Exception as exc:  # changed or removed since it was opened
            raise AudioError(f"the recording cannot be read any more ({_reason(exc)}).", path=self.path,
                             fix="leave the recording in place while it is analysed, and analyse it again.") from None
        if len(block) != max(0, stop - start):
            raise AudioError("the recording became shorter while it was analysed.", path=self.path,
                             fix="leave the recording in place while it is analysed, and analyse it again.")
        return _mono(block)


@dataclass
class DecodedAudio:
    samples: np.ndarray | SamplesOnDisk  # float32, mono
    sample_rate: int
    warnings: list[Problem]


def distinct_recordings(paths: list[Path]) -> tuple[list[Path], list[Problem]]:
    """One file per recording name: a recording is known by its name (the file stem) in datasets, reports and
    exports, so `X.wav` beside `X.flac` is one recording twice. The first by AUDIO_EXTENSIONS order (then by
    path) is kept, in the order given; the others are named in a warning. Every command applies this rule."""
    by_name: dict[str, list[Path]] = {}
    for path in paths:
        by_name.setdefault(path.stem, []).append(path)
    rank = {ext: n for n, ext in enumerate(AUDIO_EXTENSIONS)}
    kept, problems = set(), []
    for name, same in by_name.items():
        chosen, *others = sorted(same, key=lambda p: (rank.get(p.suffix.lower(), len(rank)), str(p)))
        kept.add(chosen)
        problems += [Problem(str(other), f"another file of the recording '{name}' ({chosen}) is used; this one is "
                             "left out.", "keep one file per recording: delete or rename the other.")
                     for other in others if other != chosen]
    return [p for p in dict.fromkeys(paths) if p in kept], problems


def _check_extension(path: Path) -> None:
    if path.suffix.lower() not in AUDIO_EXTENSIONS:
        raise AudioError(f"unsupported audio format '{path.suffix or '(none)'}'.", path=path,
                         fix=f"convert the recording to {_SUPPORTED}.")


def probe_audio(path: str | Path) -> AudioInfo:
    """Header information without decoding; raises AudioError for anything unreadable."""
    path = Path(path)
    if path.is_dir():
        raise AudioError("this is a folder, not a recording.", path=path,
                         fix=f"give the recordings inside it ({_SUPPORTED} files), e.g. {path / '*.wav'}.")
    _check_extension(path)
    try:
        _check_regular(path)
        with path.open("rb") as f:
            empty = not f.read(1)
    except FileNotFoundError:
        raise AudioError("no such file.", path=path,
                         fix="check the path; a recording that was moved or deleted must be put back.") from None
    except PermissionError:
        raise AudioError("permission denied: the file cannot be read.", path=path,
                         fix="give your user read permission (e.g. `chmod u+r FILE`) or copy the file somewhere "
                             "you can read.") from None
    except OSError as exc:  # a broken link, a disk error
        raise AudioError(f"the file cannot be read ({exc.strerror or exc}).", path=path,
                         fix="give the path of a recording file.") from None
    if empty:
        raise AudioError("the file is empty (0 bytes).", path=path, fix="copy the recording again from its source.")
    try:
        info = sf.info(_native(path))
    except Exception as exc:  # libsndfile's errors carry no type worth matching
        raise AudioError(f"not a readable audio file ({_reason(exc)}).", path=path,
                         fix=f"check that it really is {_SUPPORTED}; re-export or copy it again.") from None
    if info.samplerate < MIN_SAMPLE_RATE:
        raise AudioError(f"sample rate {info.samplerate} Hz is below the {MIN_SAMPLE_RATE} Hz minimum.", path=path,
                         fix="record or export at 4 kHz or more.")
    if info.samplerate > MAX_SAMPLE_RATE:
        raise AudioError(f"the header gives a sample rate of {info.samplerate:,} Hz, above the {MAX_SAMPLE_RATE:,} Hz "
                         "of any audio device: the header is damaged.", path=path,
                         fix="copy the recording again from its source, or re-export it.")
    if info.frames == 0:
        raise AudioError("the recording holds no samples.", path=path, fix="copy the recording again from its source.")
    if info.frames > MAX_DECODED_SAMPLES:
        raise AudioError(f"the recording lasts {_clock(info.frames / info.samplerate)} ({info.frames:,} samples), "
                         f"more than the {MAX_DECODED_SAMPLES:,} samples LungKD decodes at once "
                         f"({_clock(MAX_DECODED_SAMPLES / info.samplerate)} at {info.samplerate:,} Hz).", path=path,
                         fix="cut it into shorter pieces, e.g. hour-long ones with `sox LONG.wav PIECE.wav trim 0 3600 "
                             ": newfile : restart`.")
    if info.frames < MIN_DURATION_S * info.samplerate:
        raise AudioError(f"the recording lasts {info.frames / info.samplerate:.3f} s ({info.frames} samples), too short "
                         f"to hold a breathing cycle (at least {MIN_DURATION_S} s).", path=path,
                         fix="check that the file is the whole recording; copy it again from its source.")
    declared = _declared_wav_frames(path) if info.format == "WAV" else None
    return AudioInfo(info.samplerate, info.frames, info.channels, info.subtype, max(declared or 0, info.frames))


def _check_regular(path: Path) -> None:
    """A FIFO or a device is refused by its type before it is opened: opening a FIFO waits for a writer, and a
    device such as /dev/zero never ends."""
    mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):
        raise AudioError("this is not a regular file (a pipe, a device or a socket).", path=path,
                         fix=f"give a recording file ({_SUPPORTED}).")


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def decode_audio(path: str | Path) -> DecodedAudio:
    """Decode to float32 mono at the file's own rate.

    Multi-channel audio is averaged. A file shorter than its header says (an interrupted copy)
    is used as far as it goes, with a warning; NaN or infinite samples are an error. Audio beyond full scale
    (float files can hold any value; 1e30 would overflow every spectrum into NaN) is scaled to peak at 1, with
    a warning.
    """
    path = Path(path)
    info = probe_audio(path)
    warnings = [info.truncation_problem(path)] if info.truncated else []
    try:
        mono, sr = _decode_mono(path, info.frames)
    except Exception as exc:
        raise AudioError(f"decoding failed ({_reason(exc)}).", path=path,
                         fix="the file is damaged; copy the recording again from its source.") from None
    if len(mono) == 0:
        raise AudioError("the recording holds no samples.", path=path, fix="copy the recording again from its source.")
    if not all(np.isfinite(mono[i:i + CHECK_BLOCK]).all() for i in range(0, len(mono), CHECK_BLOCK)):
        bad = ~np.isfinite(mono)  # checked a block at a time above: a whole-length mask only for a damaged file
        first = int(np.argmax(bad))
        raise AudioError(f"{int(bad.sum())} NaN or infinite samples, the first at {first / sr:.3f} s.", path=path,
                         fix="re-export the recording from its source; LungKD will not guess the missing samples.")
    peak = max(float(mono.max()), -float(mono.min()))  # no whole-length |x| temporary: the size of the recording
    if peak > 1.0:
        mono = mono / np.float32(peak)
        warnings.append(Problem(str(path), f"samples reach {peak:.3g}, beyond the full scale of audio (1.0); the "
                                "recording is scaled down to fit, and its predictions may not mean much.",
                                "re-export the recording as integer PCM, or as float audio within -1..1."))
    return DecodedAudio(np.ascontiguousarray(mono, dtype=np.float32), int(sr), warnings)


def _decode_mono(path: Path, frames: int) -> tuple[np.ndarray, int]:
    """float32 mono, decoded a block at a time into one array: the peak is the mono recording and one block,
    not every channel of it at once plus their mean."""
    mono = np.empty(frames, dtype=np.float32)
    filled = 0
    with sf.SoundFile(_native(path)) as f:
        for block in f.blocks(blocksize=DECODE_BLOCK, dtype="float32", always_2d=True):
            block = block[:frames - filled]
            mono[filled:filled + len(block)] = _mono(block)
            filled += len(block)
        return mono[:filled], f.samplerate


def _mono(block: np.ndarray) -> np.ndarray:
    """(frames,) of a (frames, channels) float32 block: its channels' mean, row by row (so the same numbers
    however the recording is cut into blocks)."""
    return block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]


def open_audio(path: str | Path) -> DecodedAudio:
    """The recording as `decode_audio` gives it, for an analysis reading it a stretch at a time: integer PCM
    (STRETCH_EXACT_SUBTYPES) stays in its file (SamplesOnDisk), anything else is decoded whole, as only the whole
    can tell NaN and a float recording beyond full scale."""
    path = Path(path)
    info = probe_audio(path)
    if info.subtype not in STRETCH_EXACT_SUBTYPES:
        return decode_audio(path)
    return DecodedAudio(SamplesOnDisk(path, info), info.sample_rate,
                        [info.truncation_problem(path)] if info.truncated else [])


def in_memory(audio: DecodedAudio) -> DecodedAudio:
    """The audio with every sample decoded (what segmentation and the whole-recording checks read)."""
    return decode_audio(audio.samples.path) if isinstance(audio.samples, SamplesOnDisk) else audio


# The reference resamples with torchaudio.transforms.Resample (sinc interpolation with a Hann window, six
# zero crossings, roll-off 0.99, the kernel computed in float64). Its kernel has (n) x (2 w + o) taps for
# the rate ratio o/n in lowest terms, which is gigabytes for an awkward rate such as 44,101 Hz; above
# KERNEL_LIMIT taps the same interpolation runs phase by phase with only the (2 w + 2) taps each needs.
LOWPASS_WIDTH, ROLLOFF = 6, 0.99
KERNEL_LIMIT = 4_000_000
CHUNK_OUTPUT = 1 << 21  # output samples per block: long recordings never need a whole-length convolution


@lru_cache(maxsize=16)
def _reference_resampler(orig_sr: int, target_sr: int):
    import torchaudio.transforms as T

    return T.Resample(orig_sr, target_sr, lowpass_filter_width=LOWPASS_WIDTH, rolloff=ROLLOFF)


def _reduced(orig_sr: int, target_sr: int) -> tuple[int, int, int]:
    """(o, n, w): the ratio in lowest terms and the kernel's half-width in input samples."""
    g = math.gcd(orig_sr, target_sr)
    o, n = orig_sr // g, target_sr // g
    return o, n, math.ceil(LOWPASS_WIDTH * o / (min(o, n) * ROLLOFF))


def resample(samples: np.ndarray, orig_sr: int, target_sr: int, *, kernel_limit: int = KERNEL_LIMIT) -> np.ndarray:
    """Band-limited resampling as the reference does it, with memory bounded whatever the rates: the
    reference transform (cached per rate pair) applied block by block, or for awkward rate pairs the same
    interpolation phase by phase."""
    if orig_sr == target_sr:
        return samples.astype(np.float32, copy=False)
    import torch

    x = torch.from_numpy(np.ascontiguousarray(samples, dtype=np.float32))
    o, n, width = _reduced(orig_sr, target_sr)
    length = math.ceil(n * len(x) / o)  # what the reference returns
    if n * (2 * width + o) <= kernel_limit:
        transform = _reference_resampler(orig_sr, target_sr)
        out = _blockwise(x, transform.kernel, o, n, width, length)
    else:
        out = _phase_by_phase(x, o, n, width, length)
    return out.numpy()


def resampled_length(frames: int, orig_sr: int, target_sr: int) -> int:
    """How many samples `resample` returns for `frames` input samples."""
    if orig_sr == target_sr:
        return frames
    o, n, _ = _reduced(orig_sr, target_sr)
    return math.ceil(n * frames / o)


def resample_span(samples: np.ndarray, orig_sr: int, target_sr: int, start: int, stop: int, *,
                  resampler: Callable[[np.ndarray, int, int], np.ndarray] = resample) -> np.ndarray:
    """Samples [start, stop) of `resampler(samples, orig_sr, target_sr)` (`resample`, or for a measurement
    `resample_without_torch`), computed from only the input they depend on, so that a long recording can be
    prepared piece by piece in bounded memory.

    Both interpolations work in blocks: output block b (n samples) reads input samples within `width` + o + 2
    of input block b (o samples). Resampling from a whole number of blocks before `start` to as many after
    `stop` reproduces those outputs; the margin blocks, which saw zeros instead of their neighbours, are cut off.
    """
    if orig_sr == target_sr:
        return samples[start:stop].astype(np.float32, copy=False)
    o, n, width = _reduced(orig_sr, target_sr)
    margin = -(-(o + width + 2) // o)  # blocks
    first = max(0, start // n - margin)
    last = -(-stop // n) + margin
    out = resampler(samples[first * o:last * o], orig_sr, target_sr)
    return out[start - first * n:stop - first * n]


def _blockwise(x, kernel, o: int, n: int, width: int, length: int):
    """The reference's strided convolution over blocks of the signal (bit for bit the reference when the
    recording fits in one block)."""
    import torch
    import torch.nn.functional as F

    padded = F.pad(x[None], (width, width + o))[0]
    blocks = -(-length // n)  # output blocks of n samples, each reading o input samples further
    per_chunk = max(1, CHUNK_OUTPUT // n)
    pieces = []
    for first in range(0, blocks, per_chunk):
        last = min(blocks, first + per_chunk)
        segment = padded[first * o:(last - 1) * o + 2 * width + o]
        pieces.append(F.conv1d(segment[None, None], kernel, stride=o)[0].T.reshape(-1))
    return torch.cat(pieces)[:length]


def _windowed_sinc(offsets: np.ndarray, o: int, n: int) -> np.ndarray:
    """The reference's float32 taps at `offsets` (float64: input position / o less output position / n), in its
    operations and their order (torchaudio's _get_sinc_resample_kernel, Hann window): its whole kernel to the bit."""
    base = min(o, n) * ROLLOFF
    t = np.clip(offsets * base, -LOWPASS_WIDTH, LOWPASS_WIDTH)
    window = np.cos(t * math.pi / LOWPASS_WIDTH / 2) ** 2
    t = t * math.pi
    with np.errstate(invalid="ignore", divide="ignore"):  # 0 / 0 where the tap is the sample itself
        taps = np.where(t == 0, 1.0, np.sin(t) / t)
    return (taps * (window * (base / o))).astype(np.float32)


def _output_phases(n: int) -> np.ndarray:
    """(n, 1) float64: output phase j's position j / n, computed in float32 as the reference computes it."""
    return -(np.arange(0, -n, -1, dtype=np.float32) / np.float32(n)).astype(np.float64)[:, None]


def _phase_kernel(o: int, n: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, 2 width + 2) float32 taps, and (n,) the input each phase's taps start at: output phase j reads inputs
    floor(j o / n) - width + i of its block."""
    first = np.arange(n, dtype=np.int64) * o // n - width
    inputs = first[:, None] + np.arange(2 * width + 2)[None, :]
    return _windowed_sinc(inputs / o - _output_phases(n), o, n), first


@lru_cache(maxsize=16)
def _reference_kernel(o: int, n: int, width: int) -> np.ndarray:
    """(n, 2 width + o) float32, read-only: the reference transform's kernel, row j for output phase j. Cached per
    rate pair, as `_reference_resampler` is: 44.1 to 16 kHz takes 2.3 ms to build, and `lungkd predict` resamples a
    stretch per batch (35 s of 44.1 kHz: 5.7 ms with the kernel built each time, 4.1 ms cached)."""
    kernel = _windowed_sinc(np.arange(-width, width + o, dtype=np.float64)[None, :] / o - _output_phases(n), o, n)
    kernel.setflags(write=False)
    return kernel


def resample_without_torch(samples: np.ndarray, orig_sr: int, target_sr: int) -> np.ndarray:
    """`resample`'s interpolation with the reference's own taps, summed by numpy instead of torch's convolution:
    within float32 rounding of it (4e-7 on full-scale noise), not bit for bit, and several times faster. For
    measuring a recording (its breath envelope, in a process that has no other use for torch) and for the
    model's clips of a user's recording (core.analysis.predict); training and evaluation resample with
    `resample`, as the reference does. Awkward rate pairs (a kernel above KERNEL_LIMIT taps) are left to
    `resample`."""
    if orig_sr == target_sr:
        return samples.astype(np.float32, copy=False)
    o, n, width = _reduced(orig_sr, target_sr)
    if n * (2 * width + o) > KERNEL_LIMIT:
        return resample(samples, orig_sr, target_sr)
    kernel = _reference_kernel(o, n, width).T  # (2 width + o, n)
    length = math.ceil(n * len(samples) / o)
    padded = np.pad(np.asarray(samples, dtype=np.float32), (width, width + o))
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * width + o)[::o][:-(-length // n)]
    out = np.empty((len(windows), n), dtype=np.float32)
    per_chunk = max(1, CHUNK_OUTPUT // (2 * width + o))  # output blocks whose windows are copied at once: 8 MB
    for first in range(0, len(windows), per_chunk):
        np.matmul(windows[first:first + per_chunk], kernel, out=out[first:first + per_chunk])
    return out.reshape(-1)[:length]


def _phase_by_phase(x, o: int, n: int, width: int, length: int):
    import torch
    import torch.nn.functional as F

    taps, first = map(torch.from_numpy, _phase_kernel(o, n, width))
    blocks = -(-length // n)
    pad_left = width
    padded = F.pad(x[None], (pad_left, (blocks + 1) * o + 2 * width + 2 - len(x)))[0]
    out = torch.empty(blocks, n)
    span = 2 * width + 2
    for j in range(n):
        start = int(first[j]) + pad_left
        windows = padded.as_strided((blocks, span), (o, 1), start)
        out[:, j] = windows @ taps[j]
    return out.reshape(-1)[:length]


def load_audio(path: str | Path, target_sr: int | None = None) -> DecodedAudio:
    """Decode and, when asked, resample the whole recording to `target_sr`."""
    decoded = decode_audio(path)
    if target_sr is not None and target_sr != decoded.sample_rate:
        decoded = DecodedAudio(resample(decoded.samples, decoded.sample_rate, target_sr), target_sr, decoded.warnings)
    return decoded
