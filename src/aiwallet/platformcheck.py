"""Before the desktop app creates its QApplication: can Qt's xcb platform plugin load here?

On a Linux X11 desktop without the xcb libraries Qt's wheels expect, Qt aborts with its own
message ("Could not load the Qt platform plugin "xcb"..."). This module runs first and never
imports Qt: it asks ``ldd`` what PySide6's ``libqxcb.so`` plugin cannot find and names those
libraries with the package command that installs them. The parsing and the advice are pure
functions (tested with made-up ``ldd`` output); only :func:`xcb_problem`'s defaults touch the
system.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

LDD_TIMEOUT_S = 10.0

# What PySide6 6.x's libqxcb.so links (``ldd`` on the plugin), by Debian/Ubuntu package.
DEBIAN_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}
# The same on Fedora (dnf), where the xcb utilities are packaged differently.
FEDORA_PACKAGES: dict[str, str] = {
    "libxcb-cursor.so.0": "xcb-util-cursor",
    "libxcb-icccm.so.4": "xcb-util-wm",
    "libxcb-util.so.1": "xcb-util",
    "libxcb-image.so.0": "xcb-util-image",
    "libxcb-keysyms.so.1": "xcb-util-keysyms",
    "libxcb-render-util.so.0": "xcb-util-renderutil",
    "libxkbcommon.so.0": "libxkbcommon",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11",
    "libX11-xcb.so.1": "libX11-xcb",
    "libX11.so.6": "libX11",
    "libGL.so.1": "libglvnd-glx",
    "libEGL.so.1": "libglvnd-egl",
    "libfontconfig.so.1": "fontconfig",
    "libfreetype.so.6": "freetype",
    "libglib-2.0.so.0": "glib2",
    "libgthread-2.0.so.0": "glib2",
    "libdbus-1.so.3": "dbus-libs",
}


def missing_from_ldd(output: str) -> list[str]:
    """The libraries ``ldd`` reports as ``not found``, in its order, each once."""
    missing: list[str] = []
    for line in output.splitlines():
        name, sep, where = line.strip().partition("=>")
        if sep and where.strip() == "not found":
            lib = name.strip()
            if lib and lib not in missing:
                missing.append(lib)
    return missing


def _os_family(os_release: Mapping[str, str]) -> str:
    ids = f"{os_release.get('ID', '')} {os_release.get('ID_LIKE', '')}".lower().split()
    if any(i in ("debian", "ubuntu") for i in ids):
        return "debian"
    if any(i in ("fedora", "rhel", "centos") for i in ids):
        return "fedora"
    return "other"


def install_command(missing: list[str], os_release: Mapping[str, str]) -> str:
    """The command that installs ``missing`` on this distribution (Debian's names when the
    distribution is not known; they say which library is meant everywhere)."""
    if _os_family(os_release) == "fedora":
        pkgs = sorted({FEDORA_PACKAGES.get(lib, "libxcb") for lib in missing})
        return "sudo dnf install " + " ".join(pkgs)
    pkgs = sorted({DEBIAN_PACKAGES[lib] for lib in missing if lib in DEBIAN_PACKAGES})
    if not pkgs:
        return "your distribution's packages for " + ", ".join(missing)
    command = "sudo apt-get install " + " ".join(pkgs)
    if _os_family(os_release) == "other":
        command += " (the Debian/Ubuntu names)"
    return command


def advice(missing: list[str], os_release: Mapping[str, str]) -> str:
    """One line for the terminal: what is missing and how to install it."""
    return (
        "the desktop app cannot start on this X display: Qt's xcb platform plugin needs "
        f"{', '.join(missing)}, which this system lacks. Install them with: "
        f"{install_command(missing, os_release)} (or run 'aiwallet serve' for the headless "
        "engine)"
    )


def applies(environ: Mapping[str, str], platform: str) -> bool:
    """Only on Linux, with an X display, when Qt would use xcb (QT_QPA_PLATFORM unset or
    xcb)."""
    qpa = environ.get("QT_QPA_PLATFORM", "")
    return (
        platform.startswith("linux")
        and bool(environ.get("DISPLAY"))
        and (not qpa or qpa.split(":")[0] == "xcb")
    )


def xcb_plugin() -> Path | None:
    """PySide6's ``libqxcb.so``, found without importing Qt."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        plugin = Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def run_ldd(plugin: Path) -> str:
    """``ldd`` on the plugin; empty when ``ldd`` is absent or fails (then nothing is said
    and Qt speaks for itself)."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return ""
    try:
        done = subprocess.run(  # noqa: S603 - a fixed tool on a file of our own package
            [ldd, str(plugin)], capture_output=True, text=True, timeout=LDD_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout


def read_os_release(path: Path = Path("/etc/os-release")) -> dict[str, str]:
    fields: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return fields
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            fields[key.strip()] = value.strip().strip('"')
    return fields


def xcb_problem(
    *,
    environ: Mapping[str, str] | None = None,
    platform: str | None = None,
    plugin: Path | None = None,
    ldd: Callable[[Path], str] | None = None,
    os_release: Mapping[str, str] | None = None,
) -> str | None:
    """The advice to print instead of starting Qt, or None when Qt's xcb plugin can load
    (or the check does not apply)."""
    if not applies(os.environ if environ is None else environ, platform or sys.platform):
        return None
    plugin = plugin or xcb_plugin()
    if plugin is None:
        return None
    missing = missing_from_ldd((ldd or run_ldd)(plugin))
    if not missing:
        return None
    return advice(missing, read_os_release() if os_release is None else os_release)
