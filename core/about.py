"""The facts a bug report needs: LungKD's version, the libraries that decide its numbers, and the device.

`lungkd --version` prints them and Help > About in the Studio shows them. core never imports Qt, so the
Studio passes the version of the Qt it runs on; the command line names the PySide6 that is installed
(found without importing it). torch is not imported either (it takes seconds): its build is read from its
version file and the GPUs from the NVIDIA driver, so `lungkd --version` answers at once.
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path
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


def torch_build() -> tuple[str, str | None]:
    """The installed torch's full version (with its build tag, as `torch.__version__`) and the CUDA version it
    is built for (None: a CPU-only build), read from its version file rather than by importing it."""
    spec = find_spec("torch")
    try:
        text = (Path(spec.origin).parent / "version.py").read_text(encoding="utf-8") if spec and spec.origin else ""
    except OSError:
        text = ""

    def value(name: str) -> str | None:
        found = re.search(rf"""^{name}\b[^=\n]*=\s*['"]([^'"]+)['"]""", text, re.MULTILINE)
        return found.group(1) if found else None

    return value("__version__") or _installed("torch"), value("cuda")


def nvidia_gpus() -> list[str]:
    """The names of the NVIDIA GPUs the driver shows: its /proc files on Linux, else `nvidia-smi`."""
    names = []
    for info in sorted(Path("/proc/driver/nvidia/gpus").glob("*/information")):
        try:
            model = re.search(r"^Model:\s*(.+)$", info.read_text(encoding="utf-8"), re.MULTILINE)
        except OSError:
            continue
        if model:
            names.append(model.group(1).strip())
    if names or sys.platform.startswith("linux") or shutil.which("nvidia-smi") is None:
        return names
    try:
        listed = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return []
    return [line.strip() for line in listed.stdout.splitlines() if line.strip()] if listed.returncode == 0 else []


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _device(cuda: str | None) -> tuple[str, bool]:
    """What training and analysis run on (`device = "auto"` picks CUDA when there is one), and whether a GPU
    was found."""
    gpus = nvidia_gpus() if cuda else []
    if gpus:
        return f"GPU: {', '.join(gpus)} (CUDA {cuda})", True
    why = (f"torch is built for CUDA {cuda} but the NVIDIA driver shows no GPU" if cuda
           else "this torch is a CPU-only build")
    return f"CPU, {_cores()} cores (no GPU found: {why})", False


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
    version, cuda = torch_build()
    device, gpu_found = _device(cuda)
    build = f" (CUDA {cuda} build)" if cuda else " (CPU-only build)"
    return About(lungkd=lungkd_version(), python=platform.python_version(), location=_location(),
                 torch=version + build, torchaudio=_installed("torchaudio"),
                 transformers=_installed("transformers"), qt=qt or _installed_qt(), device=device,
                 gpu_found=gpu_found)
