"""Where a workspace lives: the platform's user data folder unless the caller says otherwise."""
from __future__ import annotations

import os
from pathlib import Path

from lungkd.core.errors import LungKDError

ENV_VAR = "LUNGKD_WORKSPACE"


def default_workspace() -> Path:
    """$LUNGKD_WORKSPACE, else e.g. ~/.local/share/LungKD/workspace (Linux) or %LOCALAPPDATA%\\LungKD (Windows)."""
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR]).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("LungKD", appauthor=False)) / "workspace"


def resolve_workspace(path: str | Path | None) -> Path:
    workspace = Path(path).expanduser() if path else default_workspace()
    workspace.mkdir(parents=True, exist_ok=True)
    return workspace


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
