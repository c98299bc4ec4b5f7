"""What the Studio needs from the operating system before Qt starts, said in words a user can act on.

On Linux, Qt's xcb platform plugin needs a few X11 libraries that stock desktops lack (libxcb-cursor0,
libxcb-icccm4, libxcb-keysyms1 on Debian and Ubuntu), and a window needs a display. Without them Qt aborts
the process with a core dump. `startup_problem()` finds both first — the plugin's missing libraries by
asking the dynamic linker (`ldd`), the display from the environment — and names the packages to install
for the user's distribution family, or how to run without a display. Playback's missing PulseAudio client
library is named the same way. Imports nothing from Qt, so it runs before Qt can abort.
"""
from __future__ import annotations

import ctypes.util
import importlib.util
import os
import platform
import re
import shutil
import subprocess
from pathlib import Path

# The libraries Qt's Linux platform plugins and Qt Multimedia load, and the package that provides each
# in the four distribution families. A library not listed is named by its file name.
PACKAGES: dict[str, dict[str, str]] = {
    "libxcb-cursor.so.0": {"debian": "libxcb-cursor0", "fedora": "xcb-util-cursor", "arch": "xcb-util-cursor",
                           "suse": "libxcb-cursor0"},
    "libxcb-icccm.so.4": {"debian": "libxcb-icccm4", "fedora": "xcb-util-wm", "arch": "xcb-util-wm",
                          "suse": "libxcb-icccm4"},
    "libxcb-keysyms.so.1": {"debian": "libxcb-keysyms1", "fedora": "xcb-util-keysyms", "arch": "xcb-util-keysyms",
                            "suse": "libxcb-keysyms1"},
    "libxcb-image.so.0": {"debian": "libxcb-image0", "fedora": "xcb-util-image", "arch": "xcb-util-image",
                          "suse": "libxcb-image0"},
    "libxcb-render-util.so.0": {"debian": "libxcb-render-util0", "fedora": "xcb-util-renderutil",
                                "arch": "xcb-util-renderutil", "suse": "libxcb-render-util0"},
    "libxcb-util.so.1": {"debian": "libxcb-util1", "fedora": "xcb-util", "arch": "xcb-util", "suse": "libxcb-util1"},
    "libxkbcommon-x11.so.0": {"debian": "libxkbcommon-x11-0", "fedora": "libxkbcommon-x11",
                              "arch": "libxkbcommon-x11", "suse": "libxkbcommon-x11-0"},
    "libxkbcommon.so.0": {"debian": "libxkbcommon0", "fedora": "libxkbcommon", "arch": "libxkbcommon",
                          "suse": "libxkbcommon0"},
    "libX11-xcb.so.1": {"debian": "libx11-xcb1", "fedora": "libX11-xcb", "arch": "libx11", "suse": "libX11-xcb1"},
    "libEGL.so.1": {"debian": "libegl1", "fedora": "libglvnd-egl", "arch": "libglvnd", "suse": "libEGL1"},
    "libGL.so.1": {"debian": "libgl1", "fedora": "libglvnd-glx", "arch": "libglvnd", "suse": "libGL1"},
    "libfontconfig.so.1": {"debian": "libfontconfig1", "fedora": "fontconfig", "arch": "fontconfig",
                           "suse": "libfontconfig1"},
    "libdbus-1.so.3": {"debian": "libdbus-1-3", "fedora": "dbus-libs", "arch": "dbus", "suse": "libdbus-1-3"},
    "libwayland-client.so.0": {"debian": "libwayland-client0", "fedora": "libwayland-client", "arch": "wayland",
                               "suse": "libwayland-client0"},
    "libwayland-cursor.so.0": {"debian": "libwayland-cursor0", "fedora": "libwayland-cursor", "arch": "wayland",
                               "suse": "libwayland-cursor0"},
    "libwayland-egl.so.1": {"debian": "libwayland-egl1", "fedora": "libwayland-egl", "arch": "wayland",
                            "suse": "libwayland-egl1"},
    "libpulse.so.0": {"debian": "libpulse0", "fedora": "pulseaudio-libs", "arch": "libpulse", "suse": "libpulse0"},
}
FAMILIES = {"debian": ("Debian, Ubuntu, Mint", "sudo apt install"), "fedora": ("Fedora, RHEL, Rocky", "sudo dnf install"),
            "arch": ("Arch, Manjaro", "sudo pacman -S"), "suse": ("openSUSE", "sudo zypper install")}
# Loaded by the xcb plugin at start-up (dlopen), so ldd does not list it; Qt 6.5+ refuses to start without it.
XCB_DLOPENED = ("libxcb-cursor.so.0",)
OFFSCREEN_HINT = ("to use LungKD without a display, run the engine as `lungkd` (e.g. `lungkd demo`), or render the "
                  "window to a picture with `QT_QPA_PLATFORM=offscreen lungkd-studio --screenshot window.png`")
_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


def distribution_family(os_release: str | None = None) -> str | None:
    """"debian", "fedora", "arch" or "suse" from /etc/os-release (ID and ID_LIKE), or None."""
    if os_release is None:
        try:
            os_release = Path("/etc/os-release").read_text(encoding="utf-8")
        except OSError:
            return None
    fields = dict(re.findall(r'^(\w+)="?([^"\n]*)"?$', os_release, re.MULTILINE))
    names = f"{fields.get('ID', '')} {fields.get('ID_LIKE', '')}".lower().split()
    for family, members in (("debian", ("debian", "ubuntu")), ("fedora", ("fedora", "rhel", "centos")),
                            ("arch", ("arch",)), ("suse", ("suse", "opensuse"))):
        if any(name in members or name.startswith(members) for name in names):
            return family
    return None


def install_advice(libraries: list[str], family: str | None) -> str:
    """The command that installs the packages providing `libraries`: for the user's family, or for each."""
    families = [family] if family in FAMILIES else list(FAMILIES)
    lines = []
    for name in families:
        packages = list(dict.fromkeys(PACKAGES.get(lib, {}).get(name, lib) for lib in libraries))
        distributions, command = FAMILIES[name]
        lines.append(f"  {distributions}: {command} {' '.join(packages)}")
    return "\n".join(lines)


def missing_libraries(ldd_output: str) -> list[str]:
    """The libraries `ldd` reports as "not found", each once, in order."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def _qt_plugin(name: str) -> Path | None:
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    plugin = Path(spec.submodule_search_locations[0]) / "Qt" / "plugins" / "platforms" / f"libq{name}.so"
    return plugin if plugin.is_file() else None


def plugin_missing_libraries(name: str) -> list[str]:
    """The system libraries Qt's `name` platform plugin ("xcb", "wayland") cannot find here."""
    plugin = _qt_plugin(name)
    if plugin is None or shutil.which("ldd") is None:
        return []  # nothing we can check; Qt will say what it misses
    output = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    missing = missing_libraries(output)
    if name == "xcb":
        missing += [lib for lib in XCB_DLOPENED if ctypes.util.find_library(lib[3:].split(".so")[0]) is None
                    and lib not in missing]
    return missing


DISPLAY_VARIABLES = {"xcb": "DISPLAY", "wayland": "WAYLAND_DISPLAY"}


def _platforms(environ) -> list[str] | None:
    """The windowing platforms Qt will try, in order; None when QT_QPA_PLATFORM names one that needs no display
    (offscreen, minimal, vnc, eglfs...)."""
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if not chosen:
        return ["wayland", "xcb"]  # Qt's order on Linux: Wayland in a Wayland session, else X11
    names = [part.split(":")[0] for part in chosen.split(";")]
    return names if set(names) <= set(DISPLAY_VARIABLES) else None


def startup_problem(environ=None, system: str | None = None) -> str | None:
    """Why the Studio's window cannot open here, with what to do; None when nothing stops it."""
    environ = os.environ if environ is None else environ
    if (system or platform.system()) != "Linux":
        return None
    platforms = _platforms(environ)
    if platforms is None:
        return None
    usable = [name for name in platforms if environ.get(DISPLAY_VARIABLES[name])]
    if not usable:
        return ("LungKD Studio needs a display, and this session has none (neither DISPLAY nor WAYLAND_DISPLAY is "
                f"set, e.g. over ssh without -X). Start it from a desktop session; {OFFSCREEN_HINT}.")
    missing = {name: plugin_missing_libraries(name) for name in usable}
    if any(not libraries for libraries in missing.values()):
        return None  # a platform Qt tries has everything it needs
    libraries = list(dict.fromkeys(lib for libraries in missing.values() for lib in libraries))
    return (f"LungKD Studio cannot open a window: Qt's {' and '.join(usable)} platform support needs system "
            f"libraries this machine lacks ({', '.join(libraries)}). Install them:\n"
            f"{install_advice(libraries, distribution_family())}\n"
            f"then start LungKD Studio again. Meanwhile, {OFFSCREEN_HINT}.")


def playback_problem(error: str) -> str:
    """Playback's reason to be off, from the error Qt Multimedia's import gave: a missing library is named
    with its package."""
    missing = re.findall(r"(lib[\w.+-]+\.so(?:\.\d+)*): cannot open shared object file", error)
    if not missing:
        return f"Playback is unavailable: Qt Multimedia could not be loaded ({error})."
    advice = "; ".join(line.strip() for line in install_advice(missing, distribution_family()).splitlines())
    return (f"Playback is unavailable: Qt Multimedia needs {', '.join(missing)}, which this machine lacks. "
            f"Install it ({advice}) and restart LungKD Studio.")
