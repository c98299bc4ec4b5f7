"""Where a workspace lives: the platform's user data folder unless the caller says otherwise."""
from __future__ import annotations

import errno
import os
from pathlib import Path

from lungkd.core.errors import LungKDError
from lungkd.core.storage import StorageError, storage_error

ENV_VAR = "LUNGKD_WORKSPACE"


def default_workspace() -> Path:
    """$LUNGKD_WORKSPACE, else e.g. ~/.local/share/LungKD/workspace (Linux) or %LOCALAPPDATA%\\LungKD (Windows)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("LungKD", appauthor=False)) / "workspace"


def resolve_workspace(path: str | Path | None) -> Path:
    """The workspace to work in, made when it does not exist, and known to be writable: a path that is a file,
    loops, or lies on a read-only or full disk is a StorageError naming it before any work starts."""
    workspace = Path(path).expanduser() if path else default_workspace()
    _refuse_what_is_not_a_folder(workspace)
    try:
        workspace.mkdir(parents=True, exist_ok=True)
        probe = workspace / f".write-check-{os.getpid()}"
        probe.write_bytes(b"LungKD")
        probe.unlink()
    except OSError as exc:
        error = storage_error(OSError(exc.errno, exc.strerror), workspace)
        if error is None:
            raise
        raise StorageError(f"the workspace {error.problem.message}", path=workspace,
                           fix=f"{error.problem.fix} The workspace is given with --workspace or ${ENV_VAR}.") from exc
    return workspace


def _refuse_what_is_not_a_folder(workspace: Path) -> None:
    fix = "give --workspace (or $LUNGKD_WORKSPACE) a folder, or a path where one can be made."
    if workspace.is_symlink():
        try:
            os.stat(workspace)
        except OSError as exc:
            what = "loops" if exc.errno == errno.ELOOP else "points to nothing"
            raise StorageError(f"the workspace is a symbolic link that {what}.", path=workspace, fix=fix) from None
    if workspace.exists() and not workspace.is_dir():
        raise StorageError("the workspace is a file, not a folder.", path=workspace, fix=fix)


def existing_workspace(path: str | Path | None) -> Path | None:
    """The workspace of a command that only reads, never created: None when the default one does not exist
    yet, and an error for a folder given that does not exist (a typo must not read as an empty workspace)."""
    workspace = Path(path).expanduser() if path else default_workspace()
    if workspace.is_dir():
        return workspace
    if path is None:
        return None
    raise LungKDError("no workspace here: the folder does not exist.", path=workspace,
                      fix="check the path (`lungkd run` and `lungkd train` create a workspace where they are told).")
