"""The facts a bug report needs: LungKD's version, the libraries that decide its numbers, and the device.

`lungkd --version` prints them and Help > About in the Studio shows them. core never imports Qt, so the
Studio passes the version of the Qt it runs on; the command line names the PySide6 that is installed
(found without importing it).
"""
from __future__ import annotations

import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from importlib.util import find_spec


@dataclass(frozen=True)
class About:
    lungkd: str
    python: str
    location: str  # the bundle's folder, or the Python environment's
    torch: str
    torchaudio: str
    transformers: str
    qt: str
    device: str
    gpu_found: bool

    def rows(self) -> list[tuple[str, str]]:
        return [("LungKD", self.lungkd), ("Python", self.python), ("Location", self.location),
                ("torch", self.torch), ("torchaudio", self.torchaudio), ("transformers", self.transformers),
                ("Qt", self.qt), ("Device", self.device)]

    def text(self, extra: Sequence[tuple[str, str]] = ()) -> str:
        """One `label  value` line per fact, then the caller's `extra` rows, the values aligned."""
        rows = self.rows() + list(extra)
        width = max(len(label) for label, _ in rows)
        return "\n".join(f"{label:<{width}}  {value}" for label, value in rows)


def _installed(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def lungkd_version() -> str:
    """This LungKD's version, as model cards and exports record it."""
    return _installed("lungkd")


def _device() -> tuple[str, bool]:
    """What training and analysis run on (`device = "auto"` picks CUDA when there is one), and whether a GPU
    was found."""
    import torch

    if torch.cuda.is_available():
        names = ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
        return f"GPU: {names} (CUDA {torch.version.cuda})", True
    why = (f"torch is built for CUDA {torch.version.cuda} but sees no CUDA GPU" if torch.version.cuda
           else "this torch is a CPU-only build")
    return f"CPU, {torch.get_num_threads()} threads (no GPU found: {why})", False


def _location() -> str:
    if getattr(sys, "frozen", False):  # PyInstaller's bundle
        return f"bundle {getattr(sys, '_MEIPASS', sys.executable)}"
    return f"Python environment {sys.prefix}"


def _installed_qt() -> str:
    if find_spec("PySide6") is None:
        return "not installed (the Studio needs PySide6)"
    return f"PySide6 {_installed('PySide6-Essentials')}"


def gather_about(qt: str | None = None) -> About:
    """`qt`: the running Qt's version, as the Studio knows it; by default the installed PySide6's."""
    import torch

    device, gpu_found = _device()
    cuda = f" (CUDA {torch.version.cuda} build)" if torch.version.cuda else " (CPU-only build)"
    return About(lungkd=lungkd_version(), python=platform.python_version(), location=_location(),
                 torch=torch.__version__ + cuda, torchaudio=_installed("torchaudio"),
                 transformers=_installed("transformers"), qt=qt or _installed_qt(), device=device,
                 gpu_found=gpu_found)
