"""The engine's and the Studio's shapes (docs/design.md, docs/studio-rooms.md), as import-linter contracts in
pyproject.toml: core/ never imports Qt or the application, each layer of the pipeline imports only the layers
below it, each room of the Studio only the rooms below it, and in the Recordings room the session sits below the
views that show it."""
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_the_import_contracts_hold():
    result = subprocess.run([str(LINT_IMPORTS), "--config", str(ROOT / "pyproject.toml")], capture_output=True,
                            text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "5 kept, 0 broken" in result.stdout


def _placed(name: str, prefix: str) -> set[str]:
    """What the layers contract called `name` places, without `prefix`."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in config if c["name"] == name]
    return {module.strip().removeprefix(prefix) for layer in layers for module in layer.split("|")}


def _present(folder: Path) -> set[str]:
    """The packages and modules directly in a folder."""
    return {p.name for p in folder.iterdir() if p.is_dir() and (p / "__init__.py").exists()} | \
        {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}


def test_every_core_package_has_its_place_in_the_layers():
    """A new folder in core/ must be placed in a layer, or the contract would not look at it."""
    placed = _placed("The engine's layers: each imports only the layers below it", "lungkd.core.")
    present = _present(ROOT / "core")
    assert present <= placed, f"not in any layer: {sorted(present - placed)}"


def test_every_studio_module_has_its_place_in_the_rooms():
    """The same for app/: a new room or base module, and a new module of the Recordings room."""
    rooms = _placed("The Studio's rooms: each imports only the rooms below it", "lungkd.app.")
    assert _present(ROOT / "app") == rooms, f"placed or not: {sorted(_present(ROOT / 'app') ^ rooms)}"
    recordings = _placed("The Recordings room: the page above its views, the views above the session, the session "
                         "above its jobs", "")
    present = _present(ROOT / "app" / "recordings")
    assert present == recordings, f"placed or not: {sorted(present ^ recordings)}"


def test_importing_the_whole_engine_loads_no_qt():
    modules = sorted("lungkd.core." + ".".join(p.relative_to(ROOT / "core").with_suffix("").parts)
                     for p in (ROOT / "core").rglob("*.py") if p.stem != "__init__")
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
