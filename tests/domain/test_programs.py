"""Which script an interpreter or launcher runs (domain/programs.py): the argv parsing behind a
keyless caller's identity."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aiwallet.domain.programs import (
    INLINE,
    display_name,
    is_resolved,
    script_of,
)

CWD = "/home/me/work"


@pytest.mark.parametrize(
    ("exe", "argv", "expected"),
    [
        # python: scripts, options with and without values, modules, inline code
        ("/usr/bin/python3.11", ["python3", "a.py"], "/home/me/work/a.py"),
        ("/usr/bin/python3.11", ["python3", "./agents/../a.py", "--x"], "/home/me/work/a.py"),
        ("/usr/bin/python3", ["python3", "/opt/tool.py", "-c", "x"], "/opt/tool.py"),
        ("/usr/bin/python3", ["python3", "-u", "-B", "a.py"], "/home/me/work/a.py"),
        ("/usr/bin/python3", ["python3", "-uB", "a.py"], "/home/me/work/a.py"),
        ("/usr/bin/python3", ["python3", "-X", "dev", "-W", "error", "a.py"], "/home/me/work/a.py"),
        ("/usr/bin/python3", ["python3", "-Xdev", "-Wd", "a.py"], "/home/me/work/a.py"),
        ("/usr/bin/python3", ["python3", "-X", "a.py", "b.py"], "/home/me/work/b.py"),
        (
            "/usr/bin/python3",
            ["python3", "--check-hash-based-pycs", "never", "a.py"],
            "/home/me/work/a.py",
        ),
        ("/usr/bin/python3", ["python3", "-m", "http.server", "8000"], "-m http.server"),
        ("/usr/bin/python3", ["python3", "-mhttp.server"], "-m http.server"),
        ("/usr/bin/python3", ["python3", "-u", "-m", "pytest", "a.py"], "-m pytest"),
        ("/usr/bin/python3", ["python3", "-c", "import a", "b.py"], INLINE),
        ("/usr/bin/python3", ["python3", "-uc", "print(1)"], INLINE),
        ("/usr/bin/python3", ["python3", "-"], INLINE),
        ("/usr/bin/python3", ["python3", "-i"], None),  # a REPL: no script
        ("/usr/bin/python3", ["python3", "--", "a.py"], "/home/me/work/a.py"),
        ("/usr/bin/pypy3", ["pypy3", "a.py"], "/home/me/work/a.py"),
        (
            "/venv/bin/python",
            ["/venv/bin/python", "/venv/bin/jupyter-lab"],
            "/venv/bin/jupyter-lab",
        ),
        ("C:\\Python312\\python.exe", ["python", "C:\\x\\a.py"], "C:\\x\\a.py"),
        # node, deno, bun
        ("/usr/bin/node", ["node", "--inspect", "app.js"], "/home/me/work/app.js"),
        (
            "/usr/bin/node",
            ["node", "--inspect=9229", "-r", "dotenv/config", "app.mjs"],
            "/home/me/work/app.mjs",
        ),
        ("/usr/bin/node", ["node", "-e", "fetch()"], INLINE),
        ("/usr/bin/node", ["node", "--print", "1"], INLINE),
        ("/usr/bin/node", ["node"], None),
        ("/usr/bin/deno", ["deno", "run", "--allow-net", "agent.ts"], "/home/me/work/agent.ts"),
        ("/usr/bin/deno", ["deno", "eval", "1"], INLINE),
        ("/usr/bin/bun", ["bun", "run", "index.ts"], "/home/me/work/index.ts"),
        ("/usr/bin/bun", ["bun", "x", "cowsay"], "run cowsay"),
        # ruby, perl, php
        ("/usr/bin/ruby", ["ruby", "-I", "lib", "bot.rb"], "/home/me/work/bot.rb"),
        ("/usr/bin/ruby", ["ruby", "-e", "puts 1"], INLINE),
        ("/usr/bin/perl", ["perl", "-w", "x.pl"], "/home/me/work/x.pl"),
        ("/usr/bin/perl", ["perl", "-E", "say 1"], INLINE),
        ("/usr/bin/php", ["php", "-d", "x=1", "s.php"], "/home/me/work/s.php"),
        ("/usr/bin/php", ["php", "-f", "s.php"], "/home/me/work/s.php"),
        ("/usr/bin/php", ["php", "-r", "echo 1;"], INLINE),
        # shells
        ("/bin/bash", ["bash", "run.sh"], "/home/me/work/run.sh"),
        ("/bin/bash", ["bash", "-e", "-o", "pipefail", "run.sh"], "/home/me/work/run.sh"),
        ("/bin/bash", ["bash", "-lc", "curl x"], INLINE),
        ("/usr/bin/zsh", ["zsh", "-c", "curl x"], INLINE),
        ("/bin/sh", ["sh"], None),
        # java
        ("/usr/lib/jvm/bin/java", ["java", "-Xmx1g", "-jar", "tool.jar"], "/home/me/work/tool.jar"),
        ("/usr/lib/jvm/bin/java", ["java", "-cp", "x.jar", "com.acme.Main"], "-m com.acme.Main"),
        ("/usr/lib/jvm/bin/java", ["java", "-m", "acme.app/acme.Main"], "-m acme.app"),
        # launchers
        ("/usr/bin/uv", ["uv", "run", "agent.py"], "/home/me/work/agent.py"),
        ("/usr/bin/uv", ["uv", "run", "--with", "rich", "jupyter-lab"], "run jupyter-lab"),
        ("/usr/bin/uv", ["uv", "run", "python", "-m", "mytool"], "-m mytool"),
        ("/usr/bin/uv", ["uv", "run", "python", "b.py"], "/home/me/work/b.py"),
        ("/usr/bin/uv", ["uv", "sync"], None),
        ("/usr/bin/uvx", ["uvx", "llm", "hi"], "run llm"),
        ("/usr/bin/pipx", ["pipx", "run", "--spec", "x", "llm"], "run llm"),
        ("/usr/bin/npx", ["npx", "-y", "cowsay"], "run cowsay"),
        ("/usr/bin/poetry", ["poetry", "run", "python", "a.py"], "/home/me/work/a.py"),
        ("/usr/bin/env", ["env", "A=1", "python3", "a.py"], "/home/me/work/a.py"),
        # not an interpreter
        ("/usr/bin/curl", ["curl", "http://x"], None),
        ("/opt/agent/agent", ["agent", "script.py"], None),
    ],
)
def test_script_of(exe: str, argv: list[str], expected: str | None) -> None:
    assert script_of(exe, argv, CWD) == expected


def test_a_relative_script_without_cwd_is_unresolved() -> None:
    script = script_of("/usr/bin/python3", ["python3", "a.py"], None)
    assert script == "a.py" and not is_resolved(script)
    assert all(is_resolved(s) for s in (None, INLINE, "-m x", "run llm", "/a.py", "C:\\a.py"))


@pytest.mark.parametrize(
    ("script", "name"),
    [
        ("/home/me/research_agent.py", "research_agent.py"),
        ("-m http.server", "http.server"),
        ("run jupyter-lab", "jupyter-lab"),
        ("/venv/bin/jupyter-lab", "jupyter-lab"),
        (INLINE, "python3.11 (inline code)"),
        (None, "python3.11"),
    ],
)
def test_display_name(script: str | None, name: str) -> None:
    assert display_name("/usr/bin/python3.11", script) == name


_ARG = st.text(st.characters(codec="utf-8", exclude_characters="\0"), max_size=12)
_OPTS = st.sampled_from(["-u", "-B", "-O", "-X", "dev", "-W", "ignore", "-E", "-s", "-I"])


@given(
    st.lists(_ARG, max_size=8),
    st.sampled_from(
        [
            "python3",
            "node",
            "bash",
            "ruby",
            "perl",
            "php",
            "java",
            "uv",
            "deno",
            "bun",
            "npx",
            "curl",
        ]
    ),
)
def test_any_argv_gives_an_answer_and_never_a_relative_script_with_a_cwd(
    argv: list[str], exe: str
) -> None:
    script = script_of("/usr/bin/" + exe, [exe, *argv], CWD)
    assert script is None or (isinstance(script, str) and is_resolved(script))


@given(
    st.lists(
        st.sampled_from(["-u", "-B", "-O", "-E", "-s", "-I", "-X dev", "-W ignore"]), max_size=5
    ),
    st.from_regex(r"[a-z_]{1,10}\.py", fullmatch=True),
    st.lists(_ARG, max_size=4),
)
def test_python_options_before_a_script_never_change_it(
    opts: list[str], name: str, rest: list[str]
) -> None:
    argv = ["python3", *" ".join(opts).split(), name, *rest]
    assert script_of("/usr/bin/python3", argv, CWD) == f"{CWD}/{name}"


@given(st.from_regex(r"[a-z_]{1,10}\.py", fullmatch=True), st.text(max_size=20))
def test_inline_code_is_never_a_script(name: str, code: str) -> None:
    for flag in (["-c", code], ["-uc", code]):
        assert script_of("/usr/bin/python3", ["python3", *flag, name], CWD) == INLINE
