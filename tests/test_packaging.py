"""The bundle's build spec and the desktop files agree with what the project ships. Building the bundle takes
minutes and gigabytes, so it is not part of the tests: packaging/smoke.sh tests a built one."""
import ast
import configparser
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

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
