"""One process at a time writes a folder of the workspace (an experiment, a shared teacher, a training run).

The lock is the operating system's (filelock: flock on POSIX, LockFileEx on Windows) on `<folder>/.lock`, so
a process that dies, however it dies, leaves no lock behind: the next run takes the folder over. Beside it,
`<folder>/.lock-holder.json` names the holder (pid, host, command, since) for the message the second process
gets. Both names start with "." so scans of the workspace skip them.
"""
from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from lungkd.core.errors import LungKDError
from lungkd.core.storage import write_json_atomic

LOCK_FILE = ".lock"
HOLDER_FILE = ".lock-holder.json"


class FolderBusy(LungKDError):
    """Another process is writing the folder."""


def this_process() -> dict:
    return {"pid": os.getpid(), "host": platform.node(), "command": " ".join(sys.argv)[:300],
            "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def read_holder(folder: Path) -> dict | None:
    """Who holds (or last held) the folder's lock, as it wrote it; None when unknown."""
    try:
        holder = json.loads((Path(folder) / HOLDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


def describe_holder(holder: dict | None) -> str:
    if holder is None:
        return "another process (it has not said which yet)"
    return (f"process {holder.get('pid')} on {holder.get('host')} since {holder.get('since')} "
            f"(`{holder.get('command')}`)")


def is_held(folder: str | Path) -> bool:
    """Whether a process (this one included) holds the folder's lock now; a killed holder holds nothing."""
    path = Path(folder) / LOCK_FILE
    if not path.exists():
        return False
    lock = FileLock(str(path))
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


class FolderLock:
    """`with FolderLock(folder, "experiment 'x'"):` — the folder is this process's until the block ends, or
    FolderBusy names the process that has it."""

    def __init__(self, folder: str | Path, what: str):
        self.folder = Path(folder)
        self.what = what
        self._lock: FileLock | None = None

    def acquire(self) -> "FolderLock":
        self.folder.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.folder / LOCK_FILE))
        try:
            lock.acquire(timeout=0)
        except Timeout:
            raise FolderBusy(f"{self.what} is being written by {describe_holder(read_holder(self.folder))}.",
                             path=self.folder,
                             fix="wait for that run to finish (or stop it), then run this again; it continues "
                                 "from what is finished.") from None
        self._lock = lock
        write_json_atomic(self.folder / HOLDER_FILE, this_process())
        return self

    def release(self) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> "FolderLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
