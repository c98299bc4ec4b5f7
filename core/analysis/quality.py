"""Is the recording good enough to judge? A quality check of a recording and of each of its cycles.

Each problem found is a `QualityFinding`: what it is, where (seconds), how bad (WARNING: judge with care;
POOR: a prediction there means little), the measure it rests on and a reason a clinician understands. One set
of thresholds for every file, each with where it comes from:

- Clipping: samples at the recording's peak (within CLIP_TOLERANCE of it), where the recorder reached its
  limit and no sound got through. A clean recording reaches its peak once, a few samples around one crest
  (1e-6 to 7e-5 of the samples in the shared real recordings that do not clip); clipped ones sit there in flat
  tops of up to 25 ms (0.15-6 % of the samples in the others). WARNING from 0.1 % (the limit reached again and
  again, heard as clicks), POOR from 1 % (in a 3 s breath, 30 ms of flat tops: longer than three fine crackles,
  whose two-cycle duration is under 10 ms by the ATS definition). Not judged when the peak is under
  CLIP_MIN_PEAK: there the top quantisation step of 16-bit audio, not the recorder's limit, is the peak. A tone
  of steady loudness (no lung sound is one) sits near its peak for a share of every period and reads as clipped.
- Too quiet: the level of the loudest 10 % of 20 ms stretches (dBFS). Breath sounds need about 40 dB below
  their loudest part (the breath band's contrast reaches 24 dB in the shared recordings, and the faint end of
  expiration lies below that); the quantisation noise of 16-bit audio, the coarsest format in ICBHI, is at
  -101 dBFS. So POOR below -60 dBFS, WARNING below -50 dBFS (10 dB from that point).
- Breath-band signal-to-noise: the breath band (150-1200 Hz) with a 0.35 s running median (which removes heart
  sounds, crackles and clicks, as the segmentation does), its 90th percentile (breathing) over its 10th
  (the background between breaths): SNR = 10 log10(10^(contrast/10) - 1). POOR below 0 dB (the breath no
  louder than the background: a contrast of 3 dB, where the segmentation hears no breathing), WARNING below
  6 dB (the breath under four times the background's power). The shared real recordings measure 6.5-23 dB.
- Friction and contact noise: bursts that stand FRICTION_DB above the last 1.5 s (each octave band against
  its running median) in at least three quarters of the octave bands from 150 Hz up: broadband, as rubbing
  and knocks are, where breath sounds fall off above a few hundred hertz and a wheeze fills one or two
  bands. At least FRICTION_MIN_S long, so one crackle is not one. Stretches that clip are left to clipping.
  WARNING where found (friction is mistaken for crackles), POOR when bursts cover 10 % of the span.
- Heart sounds dominating the breath band: transients in the breath band that recur at a heart rate (the
  autocorrelation of the breath band's transients peaks at 0.3-1.5 s, 40-200 beats/min, by HEART_PERIODICITY),
  and how far they rise above the breath around them. WARNING from 3 dB (the heart sounds as loud as the
  breath in its own band: powers add, so equal powers read 3 dB), POOR from 10 dB (ten times the breath).
- Mains hum: a line at 50 or 60 Hz or a harmonic (up to the 5th) HUM_LINE_DB above the spectrum beside it
  (8 s segments, 0.125 Hz resolution, +-0.25 Hz for the grid's drift; the spectrum 1-4 Hz away on both sides,
  so that a heart sound's broad peak is no line). A noise spectrum averaged over two segments exceeds its median
  by 10 dB with a chance below 1e-6 per bin; the clean generated and real recordings reach 6.5 dB. Hum more
  than 30 dB below the breath band's power is left out: it lies under the breath's pauses (the breath band's
  contrast reaches 24 dB in the shared recordings). WARNING when found; POOR when the hum's power reaches the
  breath band's. Recordings shorter than 12 s (two
  half-overlapping segments) are not checked for hum.
- Too short: the recording. POOR under 3 s (one breath at 20/min, the fastest resting adult rate: 12-20/min),
  WARNING under 10 s (two breaths at 12/min: fewer, and the breathing rate rests on one breath). A cycle:
  WARNING under 1 s (60/min, WHO's fast-breathing threshold for infants under 2 months: shorter is no whole
  breath).

Loudness and hum belong to the recording (the gain, the room), so every cycle shares them; a cycle's
signal-to-noise sets its breathing against the recording's background; clipping, friction and heart sounds are
measured within each span. The audio is read a block at
a time (band_levels.py and `_sample_cells`): memory stays bounded however long the recording is.

scipy is imported in the functions that compute with it: `lungkd predict` imports this module only to read
the results its helper process sends, and scipy's import cost it about 0.3 s before its helper could start.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from lungkd.core.analysis.band_levels import HOP_S, BandLevels, LongTermSpectrum, long_term_spectrum, measure_bands
from lungkd.core.analysis.breath_envelope import autocorrelation
from lungkd.core.analysis.spectra import find_peaks

GOOD, WARNING, POOR = "good", "warning", "poor"
CLIPPING, TOO_QUIET, LOW_SNR, FRICTION, HEART, HUM, TOO_SHORT = (
    "clipping", "too quiet", "low signal-to-noise", "friction", "heart sounds", "mains hum", "too short")

HEART_BAND, BREATH_BAND = (20.0, 150.0), (150.0, 1200.0)
LOWER_BAND, UPPER_BAND = (150.0, 600.0), (600.0, 4000.0)  # where breath sounds are strong, and where they fade
BANDS = (HEART_BAND, BREATH_BAND, LOWER_BAND, UPPER_BAND)
_BREATH, _LOWER, _UPPER = 1, 2, 3

CLIP_TOLERANCE = 1e-3  # of the peak: 33 steps of 16-bit audio at full scale
CLIP_MIN_PEAK = 2.0 ** -9  # 64 steps of 16-bit audio
CLIP_WARNING, CLIP_POOR = 0.001, 0.01  # share of the samples
QUIET_WARNING_DBFS, QUIET_POOR_DBFS = -50.0, -60.0
SILENCE_DBFS = -150.0  # below any recorder's noise: digital silence
LOUD_PERCENTILE = 90
MEDIAN_S = 0.35  # longer than a heart sound or a crackle, shorter than a breath phase
SNR_WARNING_DB, SNR_POOR_DB = 6.0, 0.0
SILENCE_SNR_DB = 30.0  # a breath band this far below its background does not change at all
FRICTION_DB = 10.0
FRICTION_TILT_DB = 6.0
FRICTION_NOISE_DB = -6.0  # spectral flatness: noise reads about -2.5 dB, a wheeze's tone far lower
FRICTION_BACKGROUND_S = 1.5
FRICTION_MIN_S = 0.08
FRICTION_GAP_S = 0.1  # bursts closer than this are one
FRICTION_POOR_SHARE = 0.1
HEART_PERIOD_S = (0.3, 1.5)
HEART_PERIODICITY = 0.3  # autocorrelation of the breath band's transients at the heart's period
HEART_WARNING_DB, HEART_POOR_DB = 3.0, 10.0
HUM_HZ = (50.0, 60.0)
HUM_HARMONICS = 5
HUM_LINE_DB = 10.0
HUM_DRIFT_HZ = 0.25
HUM_AUDIBLE_DB = -30.0  # fainter than this against the breath band's power, hum is under the breath's pauses
HUM_MIN_SEGMENTS = 2  # of 8 s: one alone passes a noise peak for a line once in a thousand bins
HUM_BESIDE_HZ = (1.0, 4.0)  # the spectrum beside a line: 1-4 Hz away on both sides
RECORDING_POOR_S, RECORDING_WARNING_S, CYCLE_WARNING_S = 3.0, 10.0, 1.0
READ_BLOCK = 1 << 20  # samples read at once for the clipping and level measures


@dataclass(frozen=True)
class QualityFinding:
    kind: str  # one of CLIPPING, TOO_QUIET, LOW_SNR, FRICTION, HEART, HUM, TOO_SHORT
    severity: str  # WARNING or POOR
    start: float  # s: where it is (the whole span for what belongs to the recording)
    end: float
    value: float  # the measure behind it: a share, dB or seconds, as the reason says
    reason: str  # for a clinician


@dataclass(frozen=True)
class SpanQuality:
    """The findings of a recording or of one cycle, and its verdict."""

    start: float
    end: float
    findings: tuple[QualityFinding, ...]

    @property
    def verdict(self) -> str:
        severities = {f.severity for f in self.findings}
        return POOR if POOR in severities else WARNING if WARNING in severities else GOOD

    @property
    def reasons(self) -> list[str]:
        return [f.reason for f in self.findings]


@dataclass(frozen=True)
class QualityMeasures:
    """What the checks measured over the whole recording, found problems or not (for reports)."""

    clipped_share: float
    loud_level_dbfs: float
    snr_db: float
    friction_share: float
    heart_excess_db: float | None  # None: no heart rhythm in the breath band
    hum_hz: float | None  # None: no hum found (or too short to tell)
    hum_to_breath_db: float | None


@dataclass(frozen=True)
class RecordingQuality:
    duration: float
    recording: SpanQuality
    cycles: tuple[SpanQuality, ...]  # in the order the cycles were given
    measures: QualityMeasures

    @property
    def verdict(self) -> str:
        return self.recording.verdict


# ---------------------------------------------------------------- measuring


@dataclass(frozen=True)
class _SampleCells:
    """Per HOP_S stretch of the recording at its own rate: clipped samples and mean power."""

    clipped: np.ndarray
    power: np.ndarray
    cell: int  # samples per stretch


def _sample_cells(samples: np.ndarray, sr: int) -> _SampleCells:
    cell = max(1, int(round(HOP_S * sr)))
    cells = -(-len(samples) // cell)
    block = max(cell, READ_BLOCK // cell * cell)
    peak = max((float(np.abs(samples[i:i + block]).max()) for i in range(0, len(samples), block)), default=0.0)
    limit = (1 - CLIP_TOLERANCE) * peak if peak >= CLIP_MIN_PEAK else np.inf
    clipped, power = np.zeros(cells, dtype=np.int64), np.zeros(cells)
    for i in range(0, len(samples), block):
        piece = np.asarray(samples[i:i + block], dtype=np.float64)
        starts = np.arange(0, len(piece), cell)
        clipped[i // cell:i // cell + len(starts)] = np.add.reduceat(np.abs(piece) >= limit, starts)
        power[i // cell:i // cell + len(starts)] = np.add.reduceat(piece * piece, starts) / np.diff(
            np.append(starts, len(piece)))
    return _SampleCells(clipped, power, cell)


@dataclass(frozen=True)
class _Trace:
    """Everything measured, from which the findings of any span are read."""

    duration: float
    sr: int
    cells: _SampleCells
    levels: BandLevels
    breath: np.ndarray  # dB, median-filtered breath band
    floor_db: float  # the breath band's background: its 10th percentile
    friction: list[tuple[float, float]]  # burst spans, s
    heart_rhythm: bool
    heart_peaks: np.ndarray  # frames of the breath band's transients
    heart_excess: np.ndarray  # dB above the breath around them, per peak
    hum: tuple[float, float] | None  # (mains frequency, hum power over breath-band power in dB)


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[first, last + 1) of each run of True."""
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)))


def _frames(seconds: float) -> int:
    return max(1, int(round(seconds / HOP_S)))


def _friction_bursts(levels: BandLevels, clipped_frames: np.ndarray) -> list[tuple[float, float]]:
    """Spans where the band above 600 Hz jumps FRICTION_DB over its last 1.5 s, with a spectrum FRICTION_TILT_DB
    flatter than the breath's (which falls off there) and noise-like, for at least FRICTION_MIN_S."""
    if np.isnan(levels.power[_UPPER]).all() or not len(levels.times):
        return []
    from scipy import ndimage  # here, not at the top: see the module's docstring

    upper, lower = levels.level_db(_UPPER), levels.level_db(_LOWER)
    jump = upper - ndimage.median_filter(upper, _frames(FRICTION_BACKGROUND_S) | 1, mode="nearest")
    breathing = levels.level_db(_BREATH) >= np.percentile(levels.level_db(_BREATH), 75)
    tilt = (upper - lower) - np.median((upper - lower)[breathing])
    burst = (jump >= FRICTION_DB) & (tilt >= FRICTION_TILT_DB) & (levels.flatness_db[_UPPER] >= FRICTION_NOISE_DB)
    burst &= ~clipped_frames
    burst = ndimage.binary_closing(burst, np.ones(_frames(FRICTION_GAP_S) + 1, bool)) | burst  # one rub, not two
    half = levels.hop / 2
    return [(float(levels.times[a] - half), float(levels.times[b - 1] + half)) for a, b in _runs(burst)
            if (b - a) * levels.hop >= FRICTION_MIN_S]


def _heart_transients(levels: BandLevels) -> tuple[bool, np.ndarray, np.ndarray]:
    """Whether the breath band's transients recur at a heart rate, their frames and their height (dB)."""
    from scipy import ndimage  # here, not at the top: see the module's docstring

    raw = levels.level_db(_BREATH)
    residual = np.maximum(raw - ndimage.median_filter(raw, _frames(MEDIAN_S) | 1, mode="nearest"), 0.0)
    lo, hi = (_frames(s) for s in HEART_PERIOD_S)
    if len(residual) < 2 * hi or not residual.any():
        return False, np.zeros(0, dtype=int), np.zeros(0)
    periodic = float(autocorrelation(residual)[lo:hi + 1].max()) >= HEART_PERIODICITY
    peaks = find_peaks(residual, distance=_frames(0.2))
    return periodic, peaks, residual[peaks]


def _hum(spectrum: LongTermSpectrum, breath_power: float) -> tuple[float, float] | None:
    """(mains frequency, hum over breath-band power in dB) of the stronger mains frequency with a line."""
    if spectrum.segments < HUM_MIN_SEGMENTS:
        return None
    f, p = spectrum.freqs, spectrum.power
    df = f[1] - f[0]
    found = []
    for mains in HUM_HZ:
        hum_power, lines = 0.0, 0
        for k in range(1, HUM_HARMONICS + 1):
            centre = int(round(k * mains / df))
            near, lo, hi = int(round(HUM_DRIFT_HZ / df)), *(int(round(h / df)) for h in HUM_BESIDE_HZ)
            if centre + hi >= len(p):
                break
            beside = np.median(np.concatenate([p[centre - hi:centre - lo], p[centre + lo + 1:centre + hi + 1]]))
            line = p[centre - near:centre + near + 1]
            if line.max() > beside * 10 ** (HUM_LINE_DB / 10):
                lines += 1
                hum_power += float(np.sum(line - beside) * df)
        if lines:
            found.append((hum_power, mains))
    if not found:
        return None
    hum_power, mains = max(found)
    ratio = float(10 * np.log10(hum_power / max(breath_power, 1e-30)))
    return (mains, ratio) if ratio >= HUM_AUDIBLE_DB else None


def _measure(samples: np.ndarray, sr: int, levels: BandLevels | None) -> _Trace:
    from scipy import ndimage  # here, not at the top: see the module's docstring

    cells = _sample_cells(samples, sr)
    levels = measure_bands(samples, sr, BANDS) if levels is None else levels
    spectrum = long_term_spectrum(samples, sr)
    raw = levels.level_db(_BREATH)
    breath = ndimage.median_filter(raw, _frames(MEDIAN_S) | 1, mode="nearest") if len(raw) else raw
    floor = float(np.percentile(breath, 10)) if len(breath) else -200.0
    cell_of_frame = np.minimum((levels.times / HOP_S).astype(int), len(cells.clipped) - 1)
    clipped_frames = cells.clipped[cell_of_frame] > 0 if len(cells.clipped) else np.zeros(0, bool)
    rhythm, peaks, excess = _heart_transients(levels)
    breath_band = (spectrum.freqs >= BREATH_BAND[0]) & (spectrum.freqs < BREATH_BAND[1])
    breath_power = float(spectrum.power[breath_band].sum() * (spectrum.freqs[1] - spectrum.freqs[0]))
    return _Trace(len(samples) / sr, sr, cells, levels, breath, floor, _friction_bursts(levels, clipped_frames),
                  rhythm, peaks, excess, _hum(spectrum, breath_power))


# ---------------------------------------------------------------- judging a span


def _severity(value: float, warning: float, poor: float, higher_is_worse: bool = True) -> str | None:
    if not higher_is_worse:
        value, warning, poor = -value, -warning, -poor
    return POOR if value >= poor else WARNING if value >= warning else None


def _clipping(trace: _Trace, start: float, end: float) -> QualityFinding | None:
    cells = trace.cells
    a, b = int(start * trace.sr) // cells.cell, max(int(start * trace.sr) // cells.cell + 1,
                                                    -(-int(end * trace.sr) // cells.cell))
    share = float(cells.clipped[a:b].sum()) / max(1, int((end - start) * trace.sr))
    severity = _severity(share, CLIP_WARNING, CLIP_POOR)
    if severity is None:
        return None
    where = np.flatnonzero(cells.clipped[a:b])
    first, last = (a + where[0]) * cells.cell / trace.sr, (a + where[-1] + 1) * cells.cell / trace.sr
    return QualityFinding(CLIPPING, severity, round(first, 3), round(min(last, end), 3), share,
                          f"clipped {share:.1%} of the time: the recorder reached its limit and no sound got "
                          "through (the stethoscope pressed too hard, or the gain too high).")


def _loudness(trace: _Trace) -> tuple[float, QualityFinding | None]:
    power = trace.cells.power
    loud = float(10 * np.log10(np.percentile(power, LOUD_PERCENTILE) + 1e-20)) if len(power) else -200.0
    severity = _severity(loud, QUIET_WARNING_DBFS, QUIET_POOR_DBFS, higher_is_worse=False)
    if severity is None:
        return loud, None
    heard = "nothing was recorded: the samples are silent" if loud < SILENCE_DBFS else \
        f"the loudest sounds reach only {loud:.0f} dBFS, so the faint ones sink into the recorder's own noise"
    return loud, QualityFinding(TOO_QUIET, severity, 0.0, round(trace.duration, 3), loud,
                                f"too quiet: {heard} (the gain too low, or the stethoscope not on the skin).")


def _snr_db(breath_db: np.ndarray, floor_db: float) -> float:
    if not len(breath_db):
        return float("-inf")
    contrast = float(np.percentile(breath_db, 90)) - floor_db
    return float(10 * np.log10(max(10 ** (contrast / 10) - 1, 1e-12)))


def _signal_to_noise(trace: _Trace, start: float, end: float) -> tuple[float, QualityFinding | None]:
    snr = _snr_db(trace.breath[trace.levels.frames_in(start, end)], trace.floor_db)
    severity = _severity(snr, SNR_WARNING_DB, SNR_POOR_DB, higher_is_worse=False)
    if severity is None:
        return snr, None
    heard = "no louder than" if snr < SNR_POOR_DB else "barely above"
    band = f"{BREATH_BAND[0]:.0f}-{BREATH_BAND[1]:.0f} Hz"
    measured = f"signal-to-noise {snr:.0f} dB in the breath band, {band}" if snr > -SILENCE_SNR_DB else \
        f"the breath band, {band}, does not change"
    return snr, QualityFinding(LOW_SNR, severity, round(start, 3), round(end, 3), snr,
                               f"breath sounds {heard} the background noise ({measured}): noisy surroundings, "
                               "or the stethoscope not firmly on the skin.")


def _friction(trace: _Trace, start: float, end: float) -> tuple[float, QualityFinding | None]:
    inside = [(max(a, start), min(b, end)) for a, b in trace.friction if b > start and a < end]
    share = sum(b - a for a, b in inside) / max(end - start, 1e-9)
    if not inside:
        return share, None
    severity = POOR if share >= FRICTION_POOR_SHARE else WARNING
    count = f"{len(inside)} burst{'s' if len(inside) > 1 else ''}"
    seconds = sum(b - a for a, b in inside)
    return share, QualityFinding(FRICTION, severity, round(inside[0][0], 3), round(inside[-1][1], 3), share,
                                 f"friction or contact noise: {count} of broadband noise, {seconds:.1f} s in all "
                                 f"({share:.0%} of the time), as when the stethoscope rubs on skin, hair or "
                                 "clothes; it can pass for crackles.")


def _heart(trace: _Trace, start: float, end: float) -> tuple[float | None, QualityFinding | None]:
    if not trace.heart_rhythm:
        return None, None
    inside = (trace.levels.times[trace.heart_peaks] >= start) & (trace.levels.times[trace.heart_peaks] < end)
    if not inside.any():
        return None, None
    excess = float(np.median(trace.heart_excess[inside]))
    severity = _severity(excess, HEART_WARNING_DB, HEART_POOR_DB)
    if severity is None:
        return excess, None
    return excess, QualityFinding(HEART, severity, round(start, 3), round(end, 3), excess,
                                  f"heart sounds dominate the breath band: each beat stands {excess:.0f} dB above the "
                                  "breath sounds around it (the stethoscope near the heart); they can hide or "
                                  "pass for lung sounds.")


def _hum_finding(trace: _Trace, start: float, end: float) -> QualityFinding | None:
    if trace.hum is None:
        return None
    mains, ratio = trace.hum
    severity = POOR if ratio >= 0 else WARNING
    return QualityFinding(HUM, severity, round(start, 3), round(end, 3), ratio,
                          f"mains hum at {mains:.0f} Hz, {abs(ratio):.0f} dB {'above' if ratio >= 0 else 'below'} "
                          "the breath sounds: an electrical device or charger near the stethoscope or its cable.")


def _too_short(start: float, end: float, whole: bool) -> QualityFinding | None:
    length = end - start
    if whole:
        severity = _severity(-length, -RECORDING_WARNING_S, -RECORDING_POOR_S)
        limit = RECORDING_POOR_S if severity == POOR else RECORDING_WARNING_S
        why = "one breath at 20 per minute" if severity == POOR else "two breaths at 12 per minute"
    else:
        severity, limit, why = (WARNING if length < CYCLE_WARNING_S else None), CYCLE_WARNING_S, \
            "a whole breath even at 60 per minute"
    if severity is None:
        return None
    what = "recording" if whole else "cycle"
    return QualityFinding(TOO_SHORT, severity, round(start, 3), round(end, 3), length,
                          f"the {what} lasts {length:.1f} s, shorter than {why} ({limit:.0f} s).")


def _span_quality(trace: _Trace, start: float, end: float, quiet: QualityFinding | None, whole: bool) -> SpanQuality:
    """The findings of the recording (`whole`) or of one cycle; `quiet` is the recording's, shared by all."""
    findings = [_too_short(start, end, whole), _clipping(trace, start, end),
                quiet and replace(quiet, start=round(start, 3), end=round(end, 3)),
                _signal_to_noise(trace, start, end)[1], _friction(trace, start, end)[1], _heart(trace, start, end)[1],
                _hum_finding(trace, start, end)]
    return SpanQuality(round(start, 3), round(end, 3), tuple(f for f in findings if f is not None))


def assess_quality(samples: np.ndarray, sr: int, cycles: list[tuple[float, float]] | None = None,
                   levels: BandLevels | None = None) -> RecordingQuality:
    """The quality of a recording (mono samples at its own rate `sr`) and of each cycle (start, end in s);
    `levels`: its `measure_bands(samples, sr, BANDS)` where measured already (measured here otherwise)."""
    trace = _measure(samples, sr, levels)
    loud, quiet = _loudness(trace)
    whole = _span_quality(trace, 0.0, trace.duration, quiet, whole=True)
    spans = tuple(_span_quality(trace, max(0.0, s), min(e, trace.duration), quiet, whole=False)
                  for s, e in (cycles or []))
    clipped = float(trace.cells.clipped.sum()) / max(1, len(samples))
    friction, _ = _friction(trace, 0.0, trace.duration)
    heart, _ = _heart(trace, 0.0, trace.duration)
    measures = QualityMeasures(clipped, loud, _snr_db(trace.breath, trace.floor_db), friction, heart,
                               trace.hum[0] if trace.hum else None, trace.hum[1] if trace.hum else None)
    return RecordingQuality(trace.duration, whole, spans, measures)
