"""The engine's shape (docs/design.md), as import-linter contracts in pyproject.toml: core/ never imports Qt or
the application, and each layer of the pipeline imports only the layers below it."""
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
    assert "2 kept, 0 broken" in result.stdout


def test_every_core_package_has_its_place_in_the_layers():
    """A new folder in core/ must be placed in a layer, or the contract would not look at it."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layers,) = [c["layers"] for c in config if c["type"] == "layers"]
    placed = {name.strip().removeprefix("lungkd.core.") for layer in layers for name in layer.split("|")}
    present = {p.name for p in (ROOT / "core").iterdir() if p.is_dir() and (p / "__init__.py").exists()} | \
        {p.stem for p in (ROOT / "core").glob("*.py") if p.stem != "__init__"}
    assert present <= placed, f"not in any layer: {sorted(present - placed)}"


def test_importing_the_whole_engine_loads_no_qt():
    modules = sorted("lungkd.core." + ".".join(p.relative_to(ROOT / "core").with_suffix("").parts)
                     for p in (ROOT / "core").rglob("*.py") if p.stem != "__init__")
    code = ("import importlib, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('PySide6', 'pyqtgraph', 'shiboken6')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
