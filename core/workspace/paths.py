"""Where a workspace lives: the platform's user data folder unless the caller says otherwise."""
from __future__ import annotations

import os
from pathlib import Path

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
