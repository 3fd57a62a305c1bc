"""Start the desktop app at login, minimised to the tray.

One switch, three mechanisms:

* Linux and the BSDs: an XDG autostart entry, ``$XDG_CONFIG_HOME/autostart/aiwallet.desktop``
  (``~/.config`` when ``XDG_CONFIG_HOME`` is unset or not absolute). Its content is
  ``packaging/aiwallet-autostart.desktop`` with the ``Exec`` line of the actual command.
* macOS: a LaunchAgent, ``~/Library/LaunchAgents/dev.aiwallet.plist``, run at load in the
  user's GUI (Aqua) session.
* Windows: the ``aiwallet`` value under ``HKCU\\Software\\Microsoft\\Windows\\CurrentVersion\\Run``.

Nothing here imports Qt: the CLI and tests use it without a display.
"""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from configparser import ConfigParser
from pathlib import Path

if sys.platform == "win32":
    import winreg

APP_ID = "aiwallet"
LAUNCH_AGENT_LABEL = "dev.aiwallet"
MINIMIZED_FLAG = "--minimized"
WINDOWS_RUN_KEY = r"Software\Microsoft\Windows\CurrentVersion\Run"

# Every key of the autostart entry but Exec, in file order (Exec goes after Comment).
_ENTRY_HEAD = (
    ("Type", "Application"),
    ("Name", "aiwallet"),
    ("GenericName", "AI Wallet"),
    ("Comment", "Your own AI gateway: provider keys, budgets and consent on your machine"),
)
_ENTRY_TAIL = (
    ("Icon", "aiwallet"),
    ("Terminal", "false"),
    ("Categories", "Utility;Finance;Network;"),
    ("Keywords", "AI;LLM;gateway;proxy;budget;wallet;OpenAI;Anthropic;"),
    ("StartupWMClass", "aiwallet"),
    ("X-GNOME-Autostart-enabled", "true"),
)

# Desktop Entry spec, "The Exec key": an argument holding any of these must be quoted.
_EXEC_RESERVED = frozenset(" \t\n\"'\\><~|&;$*?#()`")
# Inside a quoted argument these are escaped with a backslash.
_EXEC_ESCAPED = frozenset('"`$\\')


def default_command() -> list[str]:
    """The command that starts the app minimised to the tray.

    The ``aiwallet`` console script next to the running interpreter when there is one (a venv,
    a pipx install), otherwise ``python -m aiwallet`` with the running interpreter.
    """
    python = Path(sys.executable)
    script = python.with_name("aiwallet.exe" if sys.platform == "win32" else "aiwallet")
    if script.is_file():
        return [str(script), MINIMIZED_FLAG]
    return [str(python), "-m", "aiwallet", MINIMIZED_FLAG]


def is_enabled() -> bool:
    """Whether the app is set to start at login."""
    if sys.platform == "win32":
        return _windows_get() is not None
    if sys.platform == "darwin":
        return launch_agent_path().is_file()
    return _xdg_entry_enabled(xdg_autostart_path())


def enable(command: list[str]) -> Path | str:
    """Start ``command`` at login; return what was written.

    The file written (Linux, BSD, macOS) or, on Windows, the registry value's full name.
    Replaces an existing entry, so enabling again updates the command.
    """
    if not command:
        raise ValueError("autostart needs a command to run")
    if sys.platform == "win32":
        _windows_set(subprocess.list2cmdline(command))
        return f"HKEY_CURRENT_USER\\{WINDOWS_RUN_KEY}\\{APP_ID}"
    if sys.platform == "darwin":
        path = launch_agent_path()
        _write_atomically(path, launch_agent_plist(command))
        return path
    path = xdg_autostart_path()
    _write_atomically(path, desktop_entry(command).encode("utf-8"))
    return path


def disable() -> bool:
    """Stop starting at login; False if it was not set up."""
    if sys.platform == "win32":
        return _windows_delete()
    path = launch_agent_path() if sys.platform == "darwin" else xdg_autostart_path()
    try:
        path.unlink()
    except FileNotFoundError:
        return False
    return True


# -- Linux and the BSDs: XDG autostart -------------------------------------------------------


def xdg_autostart_path() -> Path:
    """``$XDG_CONFIG_HOME/autostart/aiwallet.desktop``."""
    configured = Path(os.environ.get("XDG_CONFIG_HOME", ""))
    # The XDG Base Directory spec: a relative path is invalid and must be ignored.
    config = configured if configured.is_absolute() else Path.home() / ".config"
    return config / "autostart" / f"{APP_ID}.desktop"


def desktop_entry(command: list[str]) -> str:
    """The autostart entry that runs ``command``."""
    lines = ["[Desktop Entry]"]
    lines += [f"{key}={value}" for key, value in _ENTRY_HEAD]
    lines.append(f"Exec={exec_line(command)}")
    lines += [f"{key}={value}" for key, value in _ENTRY_TAIL]
    return "\n".join(lines) + "\n"


def exec_line(command: list[str]) -> str:
    """``command`` as the value of a Desktop Entry ``Exec`` key.

    An argument with a reserved character is put in double quotes with ``"`$\\`` escaped;
    ``%`` is doubled (it starts field codes); then the string-value escapes apply on top
    (a backslash becomes ``\\\\``, a newline ``\\n``), as the spec requires.
    """
    return _escape_string_value(" ".join(_quote_exec_argument(arg) for arg in command))


def _quote_exec_argument(arg: str) -> str:
    arg = arg.replace("%", "%%")
    if arg and not _EXEC_RESERVED.intersection(arg):
        return arg
    escaped = "".join(f"\\{c}" if c in _EXEC_ESCAPED else c for c in arg)
    return f'"{escaped}"'


def _escape_string_value(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    )


def _xdg_entry_enabled(path: Path) -> bool:
    """An entry counts unless it is hidden or switched off (as GNOME's settings do)."""
    parser = ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    try:
        if not parser.read(path, encoding="utf-8"):
            return False
    except (OSError, UnicodeDecodeError, ValueError):
        return False
    if not parser.has_section("Desktop Entry"):
        return False
    entry = parser["Desktop Entry"]
    if entry.get("Hidden", "false").strip().lower() == "true":
        return False
    return entry.get("X-GNOME-Autostart-enabled", "true").strip().lower() != "false"


# -- macOS: a LaunchAgent ---------------------------------------------------------------------


def launch_agent_path() -> Path:
    """``~/Library/LaunchAgents/dev.aiwallet.plist``."""
    return Path.home() / "Library" / "LaunchAgents" / f"{LAUNCH_AGENT_LABEL}.plist"


def launch_agent_plist(command: list[str]) -> bytes:
    """The LaunchAgent that runs ``command`` once at login, in the GUI session."""
    agent: dict[str, object] = {
        "Label": LAUNCH_AGENT_LABEL,
        "ProgramArguments": list(command),
        "RunAtLoad": True,
        "KeepAlive": False,
        "ProcessType": "Interactive",
        "LimitLoadToSessionType": "Aqua",
    }
    return plistlib.dumps(agent, fmt=plistlib.FMT_XML, sort_keys=True)


# -- shared ------------------------------------------------------------------------------------


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_bytes(data)
    partial.replace(path)


# -- Windows: the Run key ----------------------------------------------------------------------

if sys.platform == "win32":

    def _windows_get() -> str | None:
        try:
            with winreg.OpenKey(winreg.HKEY_CURRENT_USER, WINDOWS_RUN_KEY) as key:
                value, _kind = winreg.QueryValueEx(key, APP_ID)
        except FileNotFoundError:
            return None
        return str(value)

    def _windows_set(command_line: str) -> None:
        with winreg.CreateKeyEx(
            winreg.HKEY_CURRENT_USER, WINDOWS_RUN_KEY, 0, winreg.KEY_SET_VALUE
        ) as key:
            winreg.SetValueEx(key, APP_ID, 0, winreg.REG_SZ, command_line)

    def _windows_delete() -> bool:
        try:
            with winreg.OpenKey(
                winreg.HKEY_CURRENT_USER, WINDOWS_RUN_KEY, 0, winreg.KEY_SET_VALUE
            ) as key:
                winreg.DeleteValue(key, APP_ID)
        except FileNotFoundError:
            return False
        return True
