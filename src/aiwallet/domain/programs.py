"""Which script an interpreter or launcher runs: the part of a keyless caller's identity that
tells ``python a.py`` from ``python b.py``.

Pure: given the executable's name, the process's argv and its working directory, the script
as one string:

- an absolute path (``/home/me/research_agent.py``; a relative one is joined to the cwd);
- ``-m name`` for a module (``python -m http.server``; ``java -m``, a main class);
- ``run name`` for a command a launcher runs by name (``uv run jupyter-lab``, ``npx cowsay``);
- ``inline code`` for code given on the command line (``python -c``, ``node -e``, ``sh -c``)
  or on stdin: the interpreter itself is the identity then, never a script;
- None: not an interpreter or launcher we know, or one with no script (a REPL).

A script that is relative while the cwd is unknown stays relative: :func:`is_resolved` says
it cannot name a program (no remembered rule may match it).
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Sequence

INLINE = "inline code"
MODULE = "-m "
LAUNCHED = "run "

_PYTHON = re.compile(r"^(python|pypy)[0-9.]*[dmtu]?(\.exe)?$")
_NODE = frozenset({"node", "nodejs", "node.exe"})
_SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "fish", "ash"})

# Options that take the next argument (when not written as --opt=value or -Xvalue).
_PY_ARG = frozenset("WXQ")
_PY_LONG_ARG = frozenset({"--check-hash-based-pycs"})
_NODE_ARG = frozenset(
    {
        "-r",
        "--require",
        "--import",
        "--loader",
        "--experimental-loader",
        "-C",
        "--conditions",
        "--title",
        "--input-type",
        "--env-file",
        "--inspect-port",
        "--debug-port",
        "--stack-size",
        "--max-old-space-size",
    }
)
_NODE_INLINE = frozenset({"-e", "--eval", "-p", "--print"})
_DENO_ARG = frozenset({"-c", "--config", "-L", "--log-level", "--import-map", "--lock", "--cert"})
_BUN_ARG = frozenset({"-r", "--preload", "--cwd", "--config", "-c", "--env-file", "--tsconfig"})
_RUBY_ARG = frozenset({"-I", "-r", "-C", "-E", "--encoding"})
_PERL_ARG = frozenset({"-I", "-M", "-m", "-x", "-C"})
_PHP_ARG = frozenset({"-c", "-d", "-z", "-t", "-S"})
_JAVA_ARG = frozenset(
    {"-cp", "-classpath", "--class-path", "-p", "--module-path", "--add-modules", "-splash"}
)
_SHELL_ARG = frozenset({"-o", "+o", "-O", "+O"})
# launcher → the words before the command it runs (a subcommand such as "run")
_LAUNCHERS: dict[str, tuple[str, ...]] = {
    "uv": ("run",),
    "uvx": (),
    "pipx": ("run",),
    "npx": (),
    "bunx": (),
    "poetry": ("run",),
    "pdm": ("run",),
    "hatch": ("run",),
    "pnpm": ("dlx", "exec"),
    "yarn": ("dlx", "exec"),
    "npm": ("exec",),
    "env": (),
}
_LAUNCHER_ARG = frozenset(
    {"--with", "-w", "--python", "-p", "--directory", "--project", "--package", "--from",
     "--spec", "-e", "--env", "--env-file", "--index", "--index-url", "-C", "--cwd", "-u",
     "--unset", "-S", "--split-string"}
)  # fmt: skip


def base_name(path: str) -> str:
    """The last component of a path written with / or \\."""
    return re.split(r"[/\\]", path)[-1]


def _absolute(script: str, cwd: str | None) -> str:
    if script.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", script):
        return posixpath.normpath(script) if script.startswith("/") else script
    if cwd and cwd.startswith("/"):
        return posixpath.normpath(posixpath.join(cwd, script))
    return script  # unresolved: see is_resolved


def _after_options(
    args: Sequence[str], with_arg: frozenset[str], inline: frozenset[str]
) -> tuple[str | None, int]:
    """(the first argument that is not an option, its index); ``INLINE`` for an inline-code
    option, None when there is none."""
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            return (args[i + 1], i + 1) if i + 1 < len(args) else (None, i)
        if a in inline:
            return INLINE, i
        if a == "-" or not a.startswith(("-", "+")) or a == "+":
            return (INLINE, i) if a == "-" else (a, i)
        if "=" in a and a.startswith("--"):
            i += 1
            continue
        i += 2 if a in with_arg else 1
    return None, i


def _python(args: Sequence[str]) -> str | None:
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-" or not a.startswith("-"):
            return INLINE if a == "-" else a
        if a == "--":
            return args[i + 1] if i + 1 < len(args) else None
        if a.startswith("--"):
            i += 2 if a in _PY_LONG_ARG else 1
            continue
        # a cluster of one-letter flags: -uB, -Wd, -c CODE, -mhttp.server
        for j, flag in enumerate(a[1:], start=1):
            rest = a[j + 1 :]
            if flag == "c":
                return INLINE
            if flag == "m":
                name = rest or (args[i + 1] if i + 1 < len(args) else "")
                return MODULE + name if name else None
            if flag in _PY_ARG:
                if not rest:
                    i += 1  # the value is the next argument
                break
        i += 1
    return None


def _java(args: Sequence[str]) -> str | None:
    i = 0
    while i < len(args):
        a = args[i]
        if a == "-jar":
            return args[i + 1] if i + 1 < len(args) else None
        if a in ("-m", "--module"):
            return MODULE + args[i + 1].split("/", 1)[0] if i + 1 < len(args) else None
        if a.startswith("--module="):
            return MODULE + a.split("=", 1)[1].split("/", 1)[0]
        if not a.startswith("-"):
            return MODULE + a  # a main class
        i += 2 if a in _JAVA_ARG else 1
    return None


def _launched(name: str, args: Sequence[str], cwd: str | None) -> str | None:
    """What a launcher runs: the command after its subcommand and options."""
    rest = list(args)
    sub = _LAUNCHERS[name]
    if sub:
        if not rest or rest[0] not in sub:
            return None
        rest = rest[1:]
    cmd, i = _after_options(rest, _LAUNCHER_ARG, frozenset())
    if name == "env":  # env NAME=VALUE... command
        while cmd is not None and "=" in cmd and not cmd.startswith("/"):
            cmd, j = _after_options(rest[i + 1 :], _LAUNCHER_ARG, frozenset())
            i += 1 + j
    if cmd is None or cmd == INLINE:
        return cmd
    inner = script_of(base_name(cmd), [cmd, *rest[i + 1 :]], cwd)
    if inner is not None:
        return inner  # uv run python a.py, poetry run python -m x
    if "/" in cmd or cmd.endswith((".py", ".js", ".mjs", ".ts", ".rb", ".sh")):
        return _absolute(cmd, cwd)
    return LAUNCHED + cmd


def script_of(exe: str, argv: Sequence[str], cwd: str | None) -> str | None:
    """The script, module or command the program ``exe`` (its name or path) runs with
    ``argv`` (argv[0] included), as described in the module's docstring."""
    name = base_name(exe).lower()
    if name.endswith(".exe"):
        name = name[:-4]
    args = list(argv[1:])
    found: str | None
    if _PYTHON.match(name):
        found = _python(args)
    elif name in _NODE:
        found, _ = _after_options(args, _NODE_ARG, _NODE_INLINE)
    elif name == "deno":
        if args and args[0] == "eval":
            return INLINE
        if args and args[0] in ("run", "serve"):
            args = args[1:]
        found, _ = _after_options(args, _DENO_ARG, frozenset())
    elif name == "bun":
        if args and args[0] in ("x",):
            return _launched("bunx", args[1:], cwd)
        if args and args[0] == "run":
            args = args[1:]
        found, _ = _after_options(args, _BUN_ARG, frozenset({"-e", "--eval", "-p", "--print"}))
    elif name == "ruby":
        found, _ = _after_options(args, _RUBY_ARG, frozenset({"-e"}))
    elif name == "perl":
        found, _ = _after_options(args, _PERL_ARG, frozenset({"-e", "-E"}))
    elif name == "php":
        if "-f" in args[:-1]:
            return _absolute(args[args.index("-f") + 1], cwd)
        found, _ = _after_options(args, _PHP_ARG, frozenset({"-r"}))
    elif name in _SHELLS:
        shell_inline = any(
            a.startswith("-") and not a.startswith("--") and "c" in a[1:]
            for a in args[: _first_operand(args)]
        )
        if shell_inline:
            return INLINE
        found, _ = _after_options(args, _SHELL_ARG, frozenset())
    elif name == "java":
        found = _java(args)
    elif name in _LAUNCHERS:
        return _launched(name, args, cwd)
    else:
        return None
    if found is None or found == INLINE or found.startswith(MODULE):
        return found
    return _absolute(found, cwd)


def _first_operand(args: Sequence[str]) -> int:
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--" or not a.startswith(("-", "+")):
            return i
        i += 2 if a in _SHELL_ARG else 1
    return i


def is_resolved(script: str | None) -> bool:
    """Whether ``script`` names one program on this machine (None does: no script at all)."""
    if script is None or script == INLINE or script.startswith((MODULE, LAUNCHED)):
        return True
    return script.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", script) is not None


def display_name(exe: str | None, script: str | None) -> str:
    """What an app is called after its program: the script's file name, the module or the
    launched command; the interpreter's name for inline code or no script."""
    program = base_name(exe or "") or "unknown program"
    if script is None:
        return program
    if script == INLINE:
        return f"{program} (inline code)"
    if script.startswith(MODULE):
        return script[len(MODULE) :] or program
    if script.startswith(LAUNCHED):
        return script[len(LAUNCHED) :] or program
    return base_name(script) or program
