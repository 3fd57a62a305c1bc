"""Without Qt's xcb libraries the desktop app names what is missing and the command that
installs it, instead of Qt's abort. The system here has every library, so the probe is fed
made-up ``ldd`` output (the parsing and the advice are pure); the real ``ldd`` on the real
PySide6 plugin is run once to show it finds nothing missing here."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiwallet import platformcheck
from aiwallet.platformcheck import (
    advice,
    applies,
    install_command,
    missing_from_ldd,
    run_ldd,
    xcb_plugin,
    xcb_problem,
)

LDD = """\
\tlinux-vdso.so.1 (0x00007ffd2b5f0000)
\tlibQt6Gui.so.6 => /venv/PySide6/Qt/lib/libQt6Gui.so.6 (0x00007f1c)
\tlibxkbcommon-x11.so.0 => not found
\tlibxcb-cursor.so.0 => not found
\tlibxcb-icccm.so.4 => not found
\tlibxcb.so.1 => /lib/x86_64-linux-gnu/libxcb.so.1 (0x00007f2270363000)
\tlibxcb-cursor.so.0 => not found
\tlibweird.so.9 => not found
"""
DEBIAN = {"ID": "debian"}
UBUNTU = {"ID": "ubuntu", "ID_LIKE": "debian"}
FEDORA = {"ID": "fedora"}
X11 = {"DISPLAY": ":0"}


def test_missing_libraries_are_read_from_ldd_once_each_in_order():
    assert missing_from_ldd(LDD) == [
        "libxkbcommon-x11.so.0",
        "libxcb-cursor.so.0",
        "libxcb-icccm.so.4",
        "libweird.so.9",
    ]
    assert missing_from_ldd("") == []
    assert missing_from_ldd("\tlibxcb.so.1 => /lib/libxcb.so.1 (0x1)\n") == []


def test_the_install_command_names_the_packages_for_the_distribution():
    missing = missing_from_ldd(LDD)
    assert install_command(missing, DEBIAN) == (
        "sudo apt-get install libxcb-cursor0 libxcb-icccm4 libxkbcommon-x11-0"
    )
    assert install_command(missing, UBUNTU).startswith("sudo apt-get install libxcb-cursor0")
    assert install_command(missing, FEDORA) == (
        "sudo dnf install libxcb libxkbcommon-x11 xcb-util-cursor xcb-util-wm"
    )
    assert "(the Debian/Ubuntu names)" in install_command(missing, {"ID": "arch"})
    assert install_command(["libweird.so.9"], DEBIAN) == (
        "your distribution's packages for libweird.so.9"
    )


def test_the_advice_is_one_line_naming_libraries_and_command():
    text = advice(["libxcb-cursor.so.0"], DEBIAN)
    assert "\n" not in text
    assert "libxcb-cursor.so.0" in text and "sudo apt-get install libxcb-cursor0" in text
    assert "aiwallet serve" in text


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        (X11, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb"}, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "xcb:nomitshm"}, "linux", True),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "offscreen"}, "linux", False),
        ({"DISPLAY": ":0", "QT_QPA_PLATFORM": "wayland"}, "linux", False),
        ({}, "linux", False),  # no X display: the headless message applies instead
        (X11, "darwin", False),
        (X11, "win32", False),
    ],
)
def test_the_check_applies_only_where_qt_would_use_xcb(environ, platform, expected):
    assert applies(environ, platform) is expected


def test_xcb_problem_reports_what_ldd_misses(tmp_path):
    plugin = tmp_path / "libqxcb.so"
    seen: list[Path] = []

    def fake_ldd(path: Path) -> str:
        seen.append(path)
        return LDD

    text = xcb_problem(
        environ=X11, platform="linux", plugin=plugin, ldd=fake_ldd, os_release=DEBIAN
    )
    assert seen == [plugin]
    assert text is not None and "libxcb-cursor.so.0" in text and "libxcb-cursor0" in text
    ok = xcb_problem(
        environ=X11, platform="linux", plugin=plugin, ldd=lambda _: "", os_release=DEBIAN
    )
    assert ok is None
    never = xcb_problem(environ={}, platform="linux", plugin=plugin, ldd=fake_ldd)
    assert never is None and seen == [plugin]  # not applicable: ldd not even run


def test_the_real_plugin_is_found_and_has_nothing_missing_here():
    plugin = xcb_plugin()
    assert plugin is not None and plugin.name == "libqxcb.so" and plugin.is_file()
    output = run_ldd(plugin)
    assert "libxcb" in output  # the real ldd ran on the real plugin
    assert missing_from_ldd(output) == []
    assert xcb_problem(environ=X11, platform="linux") is None


def test_the_desktop_app_names_missing_libraries_instead_of_starting_qt(capsys, monkeypatch):
    from aiwallet.cli import main

    monkeypatch.setattr("sys.platform", "linux")
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("QT_QPA_PLATFORM", raising=False)
    monkeypatch.setattr(platformcheck, "run_ldd", lambda _: LDD)
    monkeypatch.setattr(platformcheck, "read_os_release", lambda: dict(UBUNTU))
    with pytest.raises(SystemExit) as info:
        main([])
    err = capsys.readouterr().err
    assert info.value.code == 1
    assert "libxcb-cursor.so.0" in err and "sudo apt-get install libxcb-cursor0" in err
