"""Start at login: the XDG autostart entry (run here) and the macOS LaunchAgent (built only)."""

from __future__ import annotations

import configparser
import plistlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from aiwallet import autostart

ROOT = Path(__file__).resolve().parent.parent
PACKAGED_AUTOSTART = ROOT / "packaging" / "aiwallet-autostart.desktop"
PACKAGED_LAUNCHER = ROOT / "packaging" / "aiwallet.desktop"

linux_only = pytest.mark.skipif(
    sys.platform in ("win32", "darwin"), reason="the XDG autostart path is Linux and BSD"
)


@pytest.fixture
def xdg_config(tmp_path, monkeypatch):
    config = tmp_path / "xdg-config"
    monkeypatch.setenv("XDG_CONFIG_HOME", str(config))
    return config


def read_entry(path: Path) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read_string(path.read_text(encoding="utf-8"))
    return parser["Desktop Entry"]


def exec_arguments(value: str) -> list[str]:
    """Undo an Exec value the way the Desktop Entry spec says a launcher reads it."""
    unescaped, i = [], 0
    while i < len(value):  # the string-value escapes first
        if value[i] == "\\" and i + 1 < len(value):
            unescaped.append(
                {"s": " ", "n": "\n", "t": "\t", "r": "\r"}.get(value[i + 1], value[i + 1])
            )
            i += 2
        else:
            unescaped.append(value[i])
            i += 1
    text, args, current, quoted, started, i = "".join(unescaped), [], [], False, False, 0
    while i < len(text):
        c = text[i]
        if quoted and c == "\\":
            current.append(text[i + 1])
            i += 1
        elif c == '"':
            quoted, started = not quoted, True
        elif c == " " and not quoted:
            if started or current:
                args.append("".join(current))
            current, started = [], False
        else:
            current.append(c)
        i += 1
    if started or current:
        args.append("".join(current))
    return [a.replace("%%", "%") for a in args]


@linux_only
def test_enable_writes_an_autostart_entry(xdg_config):
    command = ["/usr/bin/aiwallet", "--minimized"]
    written = autostart.enable(command)
    assert written == xdg_config / "autostart" / "aiwallet.desktop"
    entry = read_entry(written)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "aiwallet"
    assert entry["Icon"] == "aiwallet"
    assert entry["Exec"] == "/usr/bin/aiwallet --minimized"
    assert entry["X-GNOME-Autostart-enabled"] == "true"
    assert entry["Terminal"] == "false"
    assert not list(written.parent.glob(".*partial"))


@linux_only
def test_enable_is_enabled_disable(xdg_config):
    assert not autostart.is_enabled()
    autostart.enable(["aiwallet", "--minimized"])
    assert autostart.is_enabled()
    assert autostart.disable() is True
    assert not autostart.is_enabled()
    assert not (xdg_config / "autostart" / "aiwallet.desktop").exists()
    assert autostart.disable() is False


@linux_only
def test_enabling_again_replaces_the_command(xdg_config):
    autostart.enable(["/old/aiwallet", "--minimized"])
    path = autostart.enable(["/new/aiwallet", "--minimized"])
    assert read_entry(path)["Exec"] == "/new/aiwallet --minimized"


@linux_only
def test_an_entry_switched_off_by_the_desktop_is_not_enabled(xdg_config):
    path = autostart.enable(["aiwallet", "--minimized"])
    path.write_text(path.read_text().replace("Autostart-enabled=true", "Autostart-enabled=false"))
    assert not autostart.is_enabled()
    path.write_text(path.read_text().replace("Autostart-enabled=false", "Autostart-enabled=true"))
    path.write_text(path.read_text() + "Hidden=true\n")
    assert not autostart.is_enabled()


@linux_only
def test_relative_xdg_config_home_is_ignored(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", "relative/config")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert autostart.xdg_autostart_path() == tmp_path / "home/.config/autostart/aiwallet.desktop"


@linux_only
def test_a_path_with_spaces_is_quoted(xdg_config):
    command = ["/home/me/My Apps/venv/bin/python", "-m", "aiwallet", "--minimized"]
    entry = read_entry(autostart.enable(command))
    assert entry["Exec"] == '"/home/me/My Apps/venv/bin/python" -m aiwallet --minimized'
    assert exec_arguments(entry["Exec"]) == command


@pytest.mark.parametrize(
    "command",
    [
        ["/opt/a$b/aiwallet", "--minimized"],
        ["C:\\odd path\\aiwallet", "--minimized"],
        ["/opt/100%/aiwallet", "--minimized"],
        ['/opt/say "hi"/aiwallet', "--x=`y`"],
        ["/opt/it's/aiwallet", ""],
    ],
)
def test_exec_quoting_round_trips(command):
    assert exec_arguments(autostart.exec_line(command)) == command


def test_a_backslash_in_a_quoted_argument_is_four_backslashes():
    assert autostart.exec_line(["/a b\\c"]) == '"/a b\\\\\\\\c"'


def test_the_entry_is_the_packaged_autostart_file_but_for_exec():
    generated = autostart.desktop_entry(["/somewhere/aiwallet", "--minimized"]).splitlines()
    packaged = PACKAGED_AUTOSTART.read_text(encoding="utf-8").splitlines()
    assert [line for line in generated if not line.startswith("Exec=")] == [
        line for line in packaged if not line.startswith("Exec=")
    ]
    assert "Exec=aiwallet --minimized" in packaged
    assert autostart.desktop_entry(["aiwallet", "--minimized"]).splitlines() == packaged


@pytest.mark.parametrize("path", [PACKAGED_LAUNCHER, PACKAGED_AUTOSTART])
def test_packaged_desktop_files_are_valid(path):
    entry = read_entry(path)
    for key in ("Type", "Name", "GenericName", "Comment", "Exec", "Icon", "Categories"):
        assert entry[key]
    assert entry["Type"] == "Application"
    assert entry["Terminal"] == "false"
    assert entry["Categories"].endswith(";")
    assert entry["Keywords"].endswith(";")
    if shutil.which("desktop-file-validate"):
        result = subprocess.run(
            ["desktop-file-validate", str(path)], capture_output=True, text=True, check=False
        )
        assert result.returncode == 0, result.stdout + result.stderr


def test_generated_entry_passes_desktop_file_validate(tmp_path):
    if not shutil.which("desktop-file-validate"):
        pytest.skip("desktop-file-validate is not installed")
    path = tmp_path / "aiwallet.desktop"
    path.write_text(autostart.desktop_entry(["/a b/python", "-m", "aiwallet", "--minimized"]))
    result = subprocess.run(
        ["desktop-file-validate", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_launch_agent_plist_round_trips():
    command = ["/Applications/aiwallet.app/Contents/MacOS/aiwallet", "--minimized"]
    agent = plistlib.loads(autostart.launch_agent_plist(command))
    assert agent["Label"] == "dev.aiwallet"
    assert agent["ProgramArguments"] == command
    assert agent["RunAtLoad"] is True
    assert agent["KeepAlive"] is False
    assert autostart.launch_agent_path().name == "dev.aiwallet.plist"


def test_default_command_starts_minimised(tmp_path, monkeypatch):
    python = tmp_path / "bin" / "python"
    python.parent.mkdir()
    python.touch()
    monkeypatch.setattr(sys, "executable", str(python))
    assert autostart.default_command() == [str(python), "-m", "aiwallet", "--minimized"]
    script = python.with_name("aiwallet.exe" if sys.platform == "win32" else "aiwallet")
    script.touch()
    assert autostart.default_command() == [str(script), "--minimized"]


def test_enable_refuses_an_empty_command():
    with pytest.raises(ValueError, match="needs a command"):
        autostart.enable([])
