"""Files a reader never sees half of, and names taken from content.

Every write in the workspace goes through `atomic_path` or `atomic_folder`: the content is written
beside its target under a hidden temporary name and renamed into place, so a process killed at any
moment leaves the old file (or none), never a torn one. Hidden temporary names start with "." so
scans of the workspace skip them.
"""
from __future__ import annotations

import errno
import hashlib
import json
import math
import os
import re
import secrets
import shutil
import stat
from contextlib import contextmanager, suppress
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

from lungkd.core.errors import LungKDError

_CHUNK = 1 << 20


class StorageError(LungKDError):
    """A file or folder that could not be written or made: no space, read-only, a size limit, a path in the way."""


_CAUSES = {  # errno: (the cause, in words; what to do)
    errno.ENOSPC: ("no space is left on the device", "free some space, or use a workspace on another disk, and run the "
                                                     "same command again: what was finished is kept."),
    errno.EDQUOT: ("the disk quota is used up", "free some space within your quota and run the same command again."),
    errno.EFBIG: ("the file grew beyond the largest file this process may write (the file-size limit, `ulimit -f`)",
                  "raise the limit (`ulimit -f unlimited`) and run the same command again."),
    errno.EROFS: ("the file system is read-only", "use a folder on a writable disk (--workspace, --out)."),
    errno.EACCES: ("permission is denied", "use a folder you may write to, or change its permissions."),
    errno.EPERM: ("the operation is not permitted", "use a folder you may write to, or change its permissions."),
    errno.ELOOP: ("its symbolic links loop", "point the link at a real folder or file, or give another path."),
    errno.ENOTDIR: ("a part of the path is a file, not a folder", "give a path whose folders are folders."),
    errno.EEXIST: ("a file is in the way of a folder", "move the file, or give another path."),
    errno.EISDIR: ("it is a folder, not a file", "give a file name."),
    errno.ENAMETOOLONG: ("the name is too long for the file system", "give a shorter path."),
    errno.EIO: ("the device reported an input/output error", "check the disk (dmesg) and run the same command again."),
}


def disk_failure(exc: BaseException) -> tuple[str, str] | None:
    """(the cause, what to do) when `exc` is a failure of the disk or of the folders on it; None otherwise.
    Libraries word them their own way: an OSError's errno, safetensors' "(os error N)", torch's RuntimeError
    raised while handling the OSError of its write (so the chain is followed)."""
    seen = 0
    while exc is not None and seen < 8:
        code = exc.errno if isinstance(exc, OSError) else None
        if code is None and (found := re.search(r"\(os error (\d+)\)", str(exc))):
            code = int(found[1])
        if code in _CAUSES:
            return _CAUSES[code]
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def storage_error(exc: BaseException, path: str | Path | None = None) -> StorageError | None:
    """`exc` as a StorageError naming the path and the cause, when it is a failure of the disk (or the folders
    on it) rather than of LungKD; None otherwise. `path` names the file when the exception does not."""
    if isinstance(exc, StorageError):
        return exc
    failure = disk_failure(exc)
    if failure is None:
        return None
    where = getattr(exc, "filename", None) or path
    cause, fix = failure
    return StorageError(f"cannot be written: {cause}." if where else f"a file cannot be written: {cause}.",
                        path=os.fsdecode(where) if where is not None else None, fix=fix)


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
    # the descriptor has one owner, this block: handed to a file object, a Ctrl-C between the hand-over and
    # forgetting it here closed it twice, and the second close's EBADF replaced the KeyboardInterrupt
    fd = None
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a folder" if stat.S_ISDIR(mode) else "a pipe" if stat.S_ISFIFO(mode) else "a device or socket"
            raise UnreadableFileError(path, f"it is {kind}, not a regular file")
        chunks, left = [], max_bytes + 1
        while left > 0 and (chunk := os.read(fd, min(left, 1 << 20))):
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        if fd is not None:
            os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise UnreadableFileError(path, f"it is larger than {_size(max_bytes)}")
    return data


MAX_FOLDER_DEPTH = 32  # ICBHI is one level deep; a dataset of datasets a few more


def walk_files(root: str | Path, skipped: Callable[[Path, str], None],
               max_depth: int = MAX_FOLDER_DEPTH) -> Iterator[Path]:
    """Every file under `root` (links to files included; links to folders not followed, as os.walk), top down,
    without recursion: a tree thousands of folders deep is no RecursionError. A folder that cannot be listed,
    and the folders more than `max_depth` levels below `root`, are left out and said through
    `skipped(folder, reason)`."""
    stack = [(Path(root), 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = list(listing)
        except OSError as exc:
            skipped(folder, f"this folder cannot be read ({exc.strerror or exc})")
            continue
        folders = []
        for entry in entries:
            try:
                is_folder = entry.is_dir()
            except OSError:  # a link that loops
                is_folder = False
            if not is_folder:
                yield Path(entry.path)
            elif not entry.is_symlink():
                folders.append(Path(entry.path))
        if folders and depth >= max_depth:
            skipped(folder, f"the folders inside it are more than {max_depth} levels deep and are not searched")
            continue
        stack.extend((sub, depth + 1) for sub in reversed(folders))


def _size(n: int) -> str:
    return f"{n >> 20} MB" if n >= 1 << 20 else f"{n >> 10} kB"


def _umask() -> int:
    """The process's umask, read without changing it where the system says it (Linux), else by setting and
    restoring it once, at import."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            return next(int(line.split()[1], 8) for line in f if line.startswith("Umask:"))
    except (OSError, StopIteration, ValueError):
        mask = os.umask(0o022)
        os.umask(mask)
        return mask


FILE_MODE = 0o666 & ~_umask()  # what open() gives a new file; safetensors writes 0600, which is left alone otherwise


def _readable_as_others(path: Path) -> None:
    """A file written by a library that restricts it (safetensors: 0600) gets the mode every other file has."""
    if stat.S_IMODE(os.stat(path).st_mode) != FILE_MODE:
        os.chmod(path, FILE_MODE)


def _temporary_name(target: Path) -> Path:
    return target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")


@contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """A temporary path beside `target` to write to; renamed onto `target` when the block ends without
    an error, removed when it raises. A failure of the disk is a StorageError naming `target`."""
    target = Path(target)
    tmp = _temporary_name(target)
    try:
        with _naming(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            yield tmp
            _readable_as_others(tmp)
            os.replace(tmp, target)
    finally:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)


@contextmanager
def _naming(target: Path) -> Iterator[None]:
    """Turns a failure of the disk within the block into a StorageError that names `target` (not the hidden
    temporary file the system would name)."""
    try:
        yield
    except Exception as exc:  # OSError, or a library's wording of one (safetensors, torch)
        if isinstance(exc, LungKDError) or storage_error(exc) is None:
            raise
        raise storage_error(_without_filename(exc), target) from exc


def _without_filename(exc: BaseException) -> BaseException:
    return OSError(exc.errno, exc.strerror) if isinstance(exc, OSError) and exc.errno is not None else exc


def output_file(out: str | Path, inputs: list[Path], force: bool) -> Path:
    """Where a command's `--out FILE` is written, checked before any work: never one of the inputs or inside an
    input folder; a regular file replaced only with `force` (never a device, a pipe or a folder); a link followed
    to the file it names (and refused when it loops or names nothing); a folder that exists and takes a file
    (a read-only or unwritable one is said now, not after the work). Raises LungKDError or StorageError."""
    out = Path(out)
    if out.is_symlink():
        try:
            os.stat(out)
        except OSError as exc:
            what = "loops" if exc.errno == errno.ELOOP else "points to nothing"
            raise StorageError(f"the output is a symbolic link that {what}.", path=out,
                               fix="give --out a file name that is not such a link.") from None
        out = Path(os.path.realpath(out))
    for given in inputs:
        if os.path.realpath(out) == os.path.realpath(given) or (out.exists() and given.exists() and out.samefile(given)):
            raise LungKDError("the output file is one of the inputs; writing it would destroy that input.",
                              path=out, fix="give --out a new file name, e.g. predictions.csv.")
        if given.is_dir() and Path(os.path.realpath(out)).is_relative_to(os.path.realpath(given)):
            raise LungKDError("the output file would go inside an input folder.", path=out,
                              fix="write it elsewhere, e.g. --out predictions.csv in the current folder.")
    _check_replaceable(out, force)
    _check_folder_takes_a_file(out)
    return out


def _check_replaceable(out: Path, force: bool) -> None:
    try:
        mode = os.stat(out).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise storage_error(exc, out) or exc from None
    if stat.S_ISDIR(mode):
        raise LungKDError("the output is a folder.", path=out, fix="give a file name, e.g. predictions.csv.")
    if not stat.S_ISREG(mode):
        raise LungKDError("the output is a device, a pipe or a socket, not a file; --force replaces regular files "
                          "only.", path=out, fix="give --out a file name, e.g. predictions.csv.")
    if not force:
        raise LungKDError("the output file exists already.", path=out,
                          fix="give another name, or add --force to replace it.")


def _check_folder_takes_a_file(out: Path) -> None:
    folder = out.parent
    if not folder.is_dir():
        raise StorageError("the folder of the output does not exist." if not folder.exists() else
                           "the folder of the output is a file.", path=folder,
                           fix="give --out a file in a folder that exists.")
    probe = _temporary_name(out)
    try:
        with open(probe, "xb"):
            pass
        probe.unlink()
    except OSError as exc:
        raise storage_error(OSError(exc.errno, exc.strerror), out) or exc from None


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

    with atomic_path(target) as tmp, open(tmp, "wb") as f:  # a file object: a full disk is an OSError, not torch's
        torch.save(value, f)


@contextmanager
def atomic_folder(target: str | Path) -> Iterator[Path]:
    """A temporary folder beside `target` to fill; it replaces `target` (and whatever was there) when the
    block ends without an error, and is removed when it raises."""
    target = Path(target)
    tmp = _temporary_name(target)
    try:
        with _naming(target):
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp.mkdir()
            yield tmp
            for path in tmp.rglob("*"):  # a model's few files (made here, so no deep tree)
                if path.is_file() and not path.is_symlink():
                    _readable_as_others(path)
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
