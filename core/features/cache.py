"""Content-addressed on-disk cache of prepared clips and features, and `prepare_dataset`.

One entry per recording: a safetensors file holding the (n_cycles, ...) float32 array of its clips
(no feature settings) or features, with the preparation warnings in its metadata. The key is the
sha256 of the audio bytes, the cycle boundaries, the preparation and feature settings, the library
versions that shape the numbers and CACHE_VERSION, so a renamed or copied dataset still hits and a
changed byte, boundary or setting misses. Labels are not part of the key: relabelling keeps the cache.

Entries are written to a temporary file in the same folder and renamed into place (atomic), so a
reader sees a whole entry or none; an entry that fails to parse, has the wrong shape or whose array no
longer matches the CRC-32 in its metadata (a byte changed on disk) is deleted and recomputed. CRC-32 rather
than sha256: it catches any flipped byte, and at several GB/s it keeps a cached pass fast.
"""
from __future__ import annotations

import json
import struct
import zlib
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, Union

import numpy as np

from lungkd.core.cancel import Cancelled, CancelToken
from lungkd.core.pool import default_workers, run_jobs
from lungkd.core.storage import StorageError, atomic_path, file_sha256, json_sha256
from lungkd.core.errors import AudioError, LungKDError, Problem
from lungkd.core.features.prepare import prepare_recording, require_audio
from lungkd.core.features.inputs import PrepSettings
from lungkd.core.data.records import Cycle, Recording

if TYPE_CHECKING:
    from lungkd.core.features.inputs import ClapFeatureSettings, FbankSettings

    FeatureSettings = Union[FbankSettings, ClapFeatureSettings]

CACHE_VERSION = 3  # 2: resampling by the reference transform; cycles clipped in samples. 3: CRC-32 of the array
# in the metadata; audio beyond full scale scaled to it
_ARRAY = "inputs"
_THIS_AUDIO = "<audio>"  # stands for the audio path inside stored warnings (entries are path-independent)


class PreparationCancelled(Cancelled):
    """The caller's cancel token was set; nothing already cached is lost."""


Progress = Callable[[int, int], None]  # (recordings done, recordings in all)


# ---------------------------------------------------------------- keys

@lru_cache(maxsize=1)
def _library_versions() -> tuple[str, ...]:
    # Resampling, fbank and the CLAP extractor live in these; a new version may move the numbers.
    return tuple(f"{name}={metadata.version(name)}" for name in ("torch", "torchaudio", "transformers"))


def entry_key(audio_sha256: str, cycles: Sequence[Cycle], prep: PrepSettings,
              features: FeatureSettings | None) -> str:
    payload = {
        "version": CACHE_VERSION,
        "audio": audio_sha256,
        "cycles": [[c.start, c.end] for c in cycles],
        "prep": prep.key(),
        "features": features.key() if features is not None else "clips",
        "libraries": _library_versions(),
    }
    return json_sha256(payload)


# ---------------------------------------------------------------- the store

@dataclass
class CacheEntry:
    """A computed entry, in memory."""

    inputs: np.ndarray  # (n_cycles, ...) float32
    warnings: list[Problem]

    @property
    def shape(self) -> tuple[int, ...]:
        return self.inputs.shape

    def read_into(self, out: np.ndarray) -> None:
        out[...] = self.inputs


@dataclass
class StoredEntry:
    """A validated entry on disk, read on demand straight into its rows of the dataset array."""

    path: Path
    offset: int  # where the array's bytes start
    shape: tuple[int, ...]
    warnings: list[Problem]

    def read_into(self, out: np.ndarray) -> None:
        if out.shape != self.shape or out.dtype != np.float32 or not out.flags.c_contiguous:
            raise ValueError(f"cannot read a {self.shape} float32 entry into a {out.shape} {out.dtype} array.")
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            if f.readinto(out) != out.nbytes:  # entries are never rewritten in place, so this is a disk fault
                raise OSError(f"{self.path}: the cache entry ended early; delete it and run again.")

    def load(self) -> np.ndarray:
        out = np.empty(self.shape, dtype=np.float32)
        self.read_into(out)
        return out


def _crc32(f) -> int:
    """CRC-32 of the rest of an open file, read in blocks."""
    crc, block = 0, bytearray(1 << 20)
    view = memoryview(block)
    while n := f.readinto(block):
        crc = zlib.crc32(view[:n], crc)
    return crc


def _portable(problems: list[Problem], audio_path: str) -> str:
    return json.dumps([{**p.to_dict(), "path": _THIS_AUDIO if p.path == audio_path else p.path} for p in problems])


def _localised(text: str, audio_path: str) -> list[Problem]:
    items = json.loads(text)
    return [Problem(audio_path if d["path"] == _THIS_AUDIO else d["path"], d["message"], d["fix"], d["line"])
            for d in items]


class FeatureCache:
    """root/ab/abcdef….safetensors; safe for concurrent readers and writers (processes or machines
    sharing a folder), since every write is a rename of a complete file."""

    def __init__(self, root: str | Path):
        self.root = Path(root)

    def path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def get(self, key: str, audio_path: str, rows: int) -> StoredEntry | None:
        """The entry, or None when absent or unusable (an unusable one is deleted).

        safetensors checks that the header is whole and that the tensor covers the rest of the file
        exactly, so a truncated or padded file is refused before any data is read.
        """
        from safetensors import SafetensorError, safe_open

        path = self.path(key)
        if not path.exists():
            return None
        try:
            with safe_open(str(path), framework="np") as f:
                meta = f.metadata() or {}
                tensor = f.get_slice(_ARRAY)
                shape, dtype = tuple(tensor.get_shape()), tensor.get_dtype()
            if dtype != "F32" or shape[:1] != (rows,) or meta.get("version") != str(CACHE_VERSION):
                raise ValueError("unexpected shape, type or version")
            with open(path, "rb") as f:
                (header_len,) = struct.unpack("<Q", f.read(8))
                # The only tensor covers the whole data section, so its bytes start right after the header.
                f.seek(8 + header_len)
                if _crc32(f) != int(meta["crc32"]):
                    raise ValueError("the array changed on disk")
            return StoredEntry(path, 8 + header_len, shape, _localised(meta.get("warnings", "[]"), audio_path))
        except (SafetensorError, OSError, ValueError, KeyError, TypeError, struct.error):
            self._discard(path)
            return None

    def put(self, key: str, entry: CacheEntry, audio_path: str) -> bool:
        """Store an entry atomically; False when the disk refused (the caller goes on uncached)."""
        from safetensors.numpy import save_file

        array = np.ascontiguousarray(entry.inputs, dtype=np.float32)
        try:
            with atomic_path(self.path(key)) as tmp:
                save_file({_ARRAY: array}, str(tmp),
                          metadata={"version": str(CACHE_VERSION), "warnings": _portable(entry.warnings, audio_path),
                                    "crc32": str(zlib.crc32(array))})
            return True
        except (OSError, StorageError):
            return False

    @staticmethod
    def _discard(path: Path) -> None:
        try:
            path.unlink()
        except OSError:
            pass  # already gone, or another process holds it: the next reader retries


# ---------------------------------------------------------------- one recording

@dataclass(frozen=True)
class _Job:
    position: int  # in dataset order
    recording: Recording
    prep: PrepSettings
    features: FeatureSettings | None
    cache_root: str | None
    key: str | None


@dataclass
class _Outcome:
    position: int
    entry: CacheEntry | StoredEntry | None = None
    failure: Problem | None = None


def _run_job(job: _Job) -> _Outcome:
    """Prepare one recording and store it; runs in a worker process or inline.

    A stored entry goes back as its location, not its array: nothing big crosses the process
    boundary and the parent copies it once, from the page cache into the dataset array.
    """
    audio_path = str(job.recording.audio_path)
    try:
        clips, warnings = prepare_recording(job.recording, job.prep)
    except LungKDError as exc:
        return _Outcome(job.position, failure=exc.problem)
    entry = CacheEntry(job.features.compute(clips) if job.features is not None else clips, warnings)
    if job.key is None:
        return _Outcome(job.position, entry)
    store = FeatureCache(job.cache_root)
    stored = None
    if store.put(job.key, entry, audio_path):
        stored = store.get(job.key, audio_path, len(job.recording.cycles))
    if stored is None:
        entry.warnings.append(Problem(job.cache_root, "could not write to the feature cache; continuing without it.",
                                      "free some disk space or choose a writable cache folder."))
        return _Outcome(job.position, entry)
    return _Outcome(job.position, stored)


# ---------------------------------------------------------------- the dataset

@dataclass
class PreparedDataset:
    inputs: np.ndarray  # (N, ...) float32: clips, or features when feature settings were given
    labels: np.ndarray  # (N,) int64
    cycles: list[Cycle]  # the N cycles, in dataset order
    problems: list[Problem] = field(default_factory=list)  # warnings and failures, in dataset order
    failed: dict[str, Problem] = field(default_factory=dict)  # recording -> why its cycles are left out
    cache_hits: int = 0  # recordings read from the cache
    computed: int = 0  # recordings prepared now


def _keys(recordings: list[Recording], prep: PrepSettings, features: FeatureSettings | None,
          workers: int) -> list[str | Problem]:
    """Cache key per recording, or the Problem that kept its audio from being read."""
    def key(rec: Recording) -> str | Problem:
        try:
            return entry_key(file_sha256(rec.audio_path), rec.cycles, prep, features)
        except OSError as exc:
            return Problem(str(rec.audio_path), f"cannot read the audio file ({exc.strerror or exc}).",
                           "check that the file exists and is readable.")

    # hashlib releases the GIL on large buffers, so threads hash files in parallel.
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(key, recordings))


def _execute(jobs: list[_Job], workers: int, on_done: Callable[[_Outcome], None],
             cancel: CancelToken | None) -> None:
    """Run the jobs here, with helper processes where the work pays for them (core.pool), handing each outcome
    to on_done as it completes."""
    def check_cancel() -> None:
        if cancel is not None and cancel.is_set():
            raise PreparationCancelled("preparation cancelled; recordings already prepared stay in the cache.")

    for outcome in run_jobs(_run_job, jobs, workers=workers, check=check_cancel):
        on_done(outcome)


def _look_up(recs: list[Recording], prep: PrepSettings, features: FeatureSettings | None,
              cache: FeatureCache | None, workers: int) -> tuple[dict[int, _Outcome], dict[int, str]]:
    """Outcomes known before any work (no audio, unreadable audio, cache hits) and the cache keys."""
    outcomes: dict[int, _Outcome] = {}
    readable: list[int] = []
    for i, rec in enumerate(recs):
        try:
            require_audio(rec)
            readable.append(i)
        except AudioError as exc:
            outcomes[i] = _Outcome(i, failure=exc.problem)
    if cache is None:
        return outcomes, {}
    keys: dict[int, str] = {}
    for i, key in zip(readable, _keys([recs[i] for i in readable], prep, features, workers)):
        if isinstance(key, Problem):
            outcomes[i] = _Outcome(i, failure=key)
            continue
        keys[i] = key
        entry = cache.get(key, str(recs[i].audio_path), len(recs[i].cycles))
        if entry is not None:
            outcomes[i] = _Outcome(i, entry)
    return outcomes, keys


def prepare_dataset(recordings: Sequence[Recording], prep: PrepSettings,
                    features: FeatureSettings | None = None, cache: FeatureCache | None = None,
                    workers: int | None = None, progress: Progress | None = None,
                    cancel: CancelToken | None = None,
                    order: Callable[[Recording], Any] = lambda rec: rec.name) -> PreparedDataset:
    """Clips or features of every cycle, in dataset order: recordings sorted by `order` (their name unless
    the caller groups them, say by split), cycles as annotated.

    A recording that cannot be read is left out and named in `failed` and `problems`; the others go on.
    With a cache, entries present are read in this process and only missing ones are computed: here, with up
    to `workers - 1` helper processes (default core.pool's) once the work left pays for starting them. The
    helpers are fresh interpreters (safe beside Qt and torch threads), so a script that calls this needs the
    usual `if __name__ == "__main__":` guard.
    """
    if features is not None and features.sample_rate != prep.sample_rate:
        raise ValueError(f"{type(features).__name__} needs clips at {features.sample_rate} Hz, "
                         f"but the preparation makes {prep.sample_rate} Hz clips.")
    workers = workers or default_workers()
    recs = sorted((r for r in recordings if r.cycles), key=order)
    outcomes, keys = _look_up(recs, prep, features, cache, workers)
    hits = sum(1 for o in outcomes.values() if o.entry is not None)
    rows = _Rows(recs)
    for outcome in outcomes.values():
        rows.put(outcome)

    def report() -> None:
        if progress is not None:
            progress(len(outcomes), len(recs))

    def on_done(outcome: _Outcome) -> None:
        outcomes[outcome.position] = outcome
        rows.put(outcome)
        report()

    report()
    jobs = [_Job(i, recs[i], prep, features, str(cache.root) if cache else None, keys.get(i))
            for i in range(len(recs)) if i not in outcomes]
    _execute(jobs, workers, on_done, cancel)
    result = rows.dataset(outcomes)
    result.cache_hits, result.computed = hits, len(jobs)
    return result


class _Rows:
    """The dataset array, each recording's entry copied into its rows as soon as its outcome is known.

    Copied during the work rather than after it: the array's pages are new memory, and touching them for the
    first time can cost more than the copy itself (5 s for 2 GiB on a virtual machine whose host hands out
    pages on first touch). Spread over the work, that cost is taken while helpers go on with other recordings,
    instead of after all of them, by this process alone."""

    def __init__(self, recs: list[Recording]):
        self.recs = recs
        self.first_row = np.concatenate(([0], np.cumsum([len(rec.cycles) for rec in recs])))
        self.inputs: np.ndarray | None = None  # allocated with the first entry, which gives the item shape

    def put(self, outcome: _Outcome) -> None:
        if outcome.entry is None:
            return
        if self.inputs is None:
            self.inputs = np.empty((int(self.first_row[-1]), *outcome.entry.shape[1:]), dtype=np.float32)
        i = outcome.position
        outcome.entry.read_into(self.inputs[self.first_row[i]:self.first_row[i + 1]])

    def dataset(self, outcomes: dict[int, _Outcome]) -> PreparedDataset:
        """The rows of the recordings that were prepared, in dataset order, with every problem."""
        kept = [i for i in range(len(self.recs)) if outcomes[i].entry is not None]
        inputs = self.inputs if self.inputs is not None else np.empty((0,), dtype=np.float32)
        if len(kept) < len(self.recs):  # a recording failed: the rows after its own move up over them, in place
            end = 0
            for i in kept:
                start, stop = self.first_row[i], self.first_row[i + 1]
                inputs[end:end + stop - start] = inputs[start:stop]
                end += stop - start
            inputs = inputs[:end]
        cycles = [cycle for i in kept for cycle in self.recs[i].cycles]
        problems: list[Problem] = []
        failed: dict[str, Problem] = {}
        for i, rec in enumerate(self.recs):
            outcome = outcomes[i]
            if outcome.entry is None:
                failed[rec.name] = outcome.failure
                problems.append(outcome.failure)
            else:
                problems.extend(outcome.entry.warnings)
        labels = np.array([c.label for c in cycles], dtype=np.int64)
        return PreparedDataset(inputs, labels, cycles, problems, failed)
