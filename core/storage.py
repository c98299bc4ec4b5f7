"""Files a reader never sees half of, and names taken from content.

Every write in the workspace goes through `atomic_path` or `atomic_folder`: the content is written
beside its target under a hidden temporary name and renamed into place, so a process killed at any
moment leaves the old file (or none), never a torn one. Hidden temporary names start with "." so
scans of the workspace skip them.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import secrets
import shutil
import stat
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

_CHUNK = 1 << 20


class UnreadableFileError(OSError):
    """A file that is not read: not a regular file (a FIFO, a device, a folder), or larger than its limit.
    `reason` says which, in words for a message."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(reason)
        self.path, self.reason = Path(path), reason


def read_regular_file(path: str | Path, max_bytes: int) -> bytes:
    """The bytes of a regular file of at most `max_bytes`. A FIFO or device is refused by its type, before a
    byte is read (opening a FIFO would wait for a writer; /dev/zero never ends), and a larger file by its size;
    both raise UnreadableFileError, other failures the OSError the system gave."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    with os.fdopen(fd, "rb") as f:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else "a device or socket"
            raise UnreadableFileError(path, f"it is {kind}, not a regular file")
        data = f.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise UnreadableFileError(path, f"it is larger than {_size(max_bytes)}")
    return data


def _size(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} kB"


def _temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside `target` to write to; renamed onto `target` when the block ends without
    an error, removed when it raises."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(target)
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def write_text_atomic(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def finite_json(value: Any) -> Any:
    """`value` with every NaN or infinity replaced by None: JSON has no such numbers, and a reader must never
    meet the `NaN` that Python's json module writes by default."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_json(item) for item in value]
    return value


def json_text(value: Any, indent: int | None = 2) -> str:
    """Valid JSON, always: non-finite numbers become null."""
    return json.dumps(finite_json(value), indent=indent, allow_nan=False)


def write_json_atomic(target: str | Path, value: Any) -> None:
    write_text_atomic(target, json_text(value))


def write_npz_atomic(target: str | Path, **arrays) -> None:
    import numpy as np

    with atomic_path(target) as tmp, open(tmp, "wb") as f:  # a file object: np.savez would append ".npz"
        np.savez(f, **arrays)


def write_npy_atomic(target: str | Path, array) -> None:
    import numpy as np

    with atomic_path(target) as tmp, open(tmp, "wb") as f:  # a file object: np.save would append ".npy"
        np.save(f, array)


def save_torch_atomic(target: str | Path, value: Any) -> None:
    import torch

    with atomic_path(target) as tmp:
        torch.save(value, tmp)


@contextmanager
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """A temporary folder beside `target` to fill; it replaces `target` (and whatever was there) when the
    block ends without an error, and is removed when it raises."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temporary_name(target)
    tmp.mkdir()
    try:
        yield tmp
        old = None
        if target.exists():
            old = _temporary_name(target)
            target.rename(old)
        tmp.rename(target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


@lru_cache(maxsize=8192)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def file_sha256(path: str | Path) -> str:
    """sha256 of a file's bytes, memoised per (path, size, modification time) within the process."""
    st = os.stat(path)
    return _file_sha256(str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


def json_sha256(value: Any, length: int | None = None) -> str:
    """sha256 of a JSON-able value written with sorted keys (the same value always gives the same name)."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
    return digest[:length] if length else digest
