"""The bundle's build spec and the desktop files agree with what the project ships, and its launcher starts what
a frozen start asks for (a training worker, the command line, the Studio). Building the bundle takes minutes
and gigabytes, so it is not part of the tests: `make check-package` builds one and packaging/smoke.sh tests it."""
import ast
import configparser
import subprocess
import sys
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from lungkd.core.cancel import CancelToken
from lungkd.core.data.dataset import load_dataset
from lungkd.core.data.sources import DataSpec
from lungkd.core.kd.executors import ProcessExecutor
from lungkd.core.kd.jobs import RunJob, RunSpec
from lungkd.core.kd.launch import (FROZEN_REPORT_PDF_FLAG, FROZEN_WORKER_FLAG, WORKER_MODULE, is_worker_start,
                                   report_pdf_command, worker_command)
from lungkd.core.models.card import read_model_card
from lungkd.core.recipes import ModelSpec, RunSettings, TrainConfig

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "resources"
PACKAGING = ROOT / "packaging"


def _spec_list(name: str) -> list[str]:
    """A list literal assigned at the top level of packaging/lungkd.spec."""
    tree = ast.parse((PACKAGING / "lungkd.spec").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"packaging/lungkd.spec assigns no {name}")


def test_the_spec_ships_every_resource_and_nothing_that_is_not_there():
    shipped = set(_spec_list("SHIPPED_RESOURCES"))
    on_disk = {p.relative_to(RESOURCES).as_posix() for p in RESOURCES.rglob("*")
               if p.is_file() and p.suffix not in (".py", ".pyc")}
    assert {"recipes/demo-cpu.toml", "models/demo-cnn6/model.safetensors"} <= on_disk
    assert on_disk - shipped == set(), "add these to SHIPPED_RESOURCES in packaging/lungkd.spec"
    assert shipped - on_disk == set(), "SHIPPED_RESOURCES in packaging/lungkd.spec names files resources/ lacks"


def test_desktop_entry_metainfo_and_icons_name_each_other():
    desktop_file = PACKAGING / "linux" / "lungkd-studio.desktop"
    entry = configparser.ConfigParser(interpolation=None)
    entry.optionxform = str  # keys are case-sensitive
    entry.read(desktop_file)
    entry = entry["Desktop Entry"]
    assert entry["Exec"].split()[0] == "lungkd-studio"
    assert (RESOURCES / "icons" / f"{entry['Icon']}.svg").is_file()
    assert (RESOURCES / "icons" / f"{entry['Icon']}-48.png").is_file()

    metainfo = ET.parse(PACKAGING / "linux" / "lungkd-studio.metainfo.xml").getroot()
    assert metainfo.findtext("launchable") == desktop_file.name
    assert metainfo.findtext("icon") == entry["Icon"]
    assert metainfo.findtext("name") == entry["Name"]
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert metainfo.find("releases/release").get("version") == project["version"]
    assert {b.text for b in metainfo.iter("binary")} == set(project["scripts"]) | set(project["gui-scripts"])


def test_the_wheel_lists_every_package_folder():
    """setuptools installs only the packages pyproject.toml names: a sub-package left out works in a checkout
    and is missing from an installed wheel."""
    tool = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name: ROOT / folder for name, folder in tool["package-dir"].items()}
    present = {".".join((name, *p.parent.relative_to(folder).parts)) for name, folder in folders.items()
               for p in folder.rglob("__init__.py")}
    assert present == set(tool["packages"]), f"listed or not: {sorted(present ^ set(tool['packages']))}"


# ---------------------------------------------------------------- the bundle's launcher, without building a bundle


def _frozen_bundle(folder: Path) -> Path:
    """packaging/launcher.py as the bundle lays it out: an executable `lungkd-studio` (here run by this Python,
    as the bundle's bootloader runs its frozen copy) and `lungkd`, a link to it."""
    folder.mkdir()
    studio = folder / "lungkd-studio"
    studio.write_text(f"#!{sys.executable}\n" + (PACKAGING / "launcher.py").read_text())
    studio.chmod(0o755)
    (folder / "lungkd").symlink_to(studio.name)
    return folder


def _tiny_job(synthetic_dir: Path, workspace: Path) -> RunJob:
    spec = RunSpec(role="teacher", model=ModelSpec(arch="cnn6", size="tiny"), labels="hard", seed=1,
                   train=TrainConfig(epochs=1, batch_size=16))
    return RunJob(spec=spec, stage="teachers", workspace=str(workspace), folder=str(workspace / "teacher-1"),
                  data=DataSpec(path=str(synthetic_dir)), settings=RunSettings(selection="last"),
                  data_fingerprint=load_dataset(synthetic_dir).fingerprint())


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lungkd-studio", "lungkd"])
def test_a_frozen_worker_start_reaches_the_worker_and_trains_its_job(name, synthetic_dir, tmp_path, monkeypatch):
    """In the bundle sys.executable is the launcher (started as the Studio, or as `lungkd`): the process executor
    starts it as a worker, and the job runs to its finished model."""
    executable = _frozen_bundle(tmp_path / "LungKD") / name
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(executable))
    assert worker_command() == [str(executable), FROZEN_WORKER_FLAG]
    events = []
    runs = ProcessExecutor(workers=1, restarts=0).run([_tiny_job(synthetic_dir, tmp_path / "ws")], events.append,
                                                      CancelToken())
    assert [(r.role, r.seed) for r in runs] == [("teacher", 1)]
    assert read_model_card(runs[0].model_folder).test_data.cycles == runs[0].card.test_data.cycles > 0
    assert [e.kind for e in events if e.run == "teacher seed 1" and e.kind in ("started", "finished")] == \
        ["started", "finished"]


def test_the_launcher_is_the_command_line_or_the_studio_by_its_name_and_refuses_python_options(tmp_path):
    bundle = _frozen_bundle(tmp_path / "LungKD")
    cli = subprocess.run([bundle / "lungkd", "--help"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and cli.stdout.startswith("usage: lungkd ")
    # what a worker start from Python would pass: the bundle is no Python, so this is the error the issue saw
    python_style = subprocess.run([bundle / "lungkd-studio", "-m", WORKER_MODULE], capture_output=True, text=True,
                                  timeout=120)
    assert python_style.returncode == 2 and "unrecognized arguments: -m" in python_style.stderr


def test_a_frozen_start_as_the_pdf_writer_writes_the_visit_report(tmp_path, monkeypatch):
    """`lungkd visit-report --out X.pdf` runs Qt's PDF writer as a program of its own; in the bundle that is the
    launcher with the writer's flag (it takes no -m)."""
    executable = _frozen_bundle(tmp_path / "LungKD") / "lungkd"
    monkeypatch.setattr(sys, "frozen", True, raising=False)
    monkeypatch.setattr(sys, "executable", str(executable))
    source, target = tmp_path / "visit.html", tmp_path / "visit.pdf"
    source.write_text("<html><head><title>Visit</title></head><body><h1>Visit of patient 107</h1></body></html>")
    command = report_pdf_command(str(source), str(target))
    assert command == [str(executable), FROZEN_REPORT_PDF_FLAG, str(source), str(target)]
    written = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert written.returncode == 0, written.stderr
    assert target.read_bytes().startswith(b"%PDF")


def test_outside_the_bundle_a_worker_is_this_python_running_the_worker_module(monkeypatch):
    monkeypatch.delattr(sys, "frozen", raising=False)
    assert worker_command() == [sys.executable, "-m", WORKER_MODULE]
    assert not is_worker_start([sys.executable, "-m", WORKER_MODULE])
    assert is_worker_start(["lungkd", FROZEN_WORKER_FLAG]) and not is_worker_start(["lungkd", FROZEN_WORKER_FLAG, "x"])


# ---------------------------------------------------------------- what each make target installs and runs


def _make_dry_run(target: str) -> str:
    """The commands `make TARGET` would run on a fresh machine (a venv that does not exist yet; -n runs none)."""
    result = subprocess.run(["make", "-n", target, "VENV=.venv-never-made"], cwd=ROOT, capture_output=True,
                            text=True, check=True)
    return result.stdout


def test_make_app_installs_only_what_the_app_needs_and_make_test_the_test_extras():
    app = _make_dry_run("app")
    assert 'pip install -e .\n' in app and "[test]" not in app and "pytest" not in app
    test = _make_dry_run("test")
    assert 'pip install -e ".[test]"' in test and "-m pytest" in test
    assert "make test" in (ROOT / ".ci" / "run").read_text()  # CI runs the whole suite through it


def test_make_check_package_builds_the_bundle_from_the_app_install_and_runs_the_smoke_test():
    commands = _make_dry_run("check-package")
    assert "[test]" not in commands and 'pip install -e ".[package]"' in commands
    assert commands.index("pyinstaller") < commands.index("packaging/smoke.sh")
