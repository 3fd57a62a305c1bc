"""Load from Debian's ``wrk`` (C, epoll): a client that leaves the cores to what is measured.

    from wrkload import run_wrk
    r = run_wrk(url, body, headers, duration_s=10, threads=1, connections=32)
    r.check()            # raises WrkRejected on any non-2xx answer or socket error
    r.rps, r.p50_ms, r.p99_ms

Each run writes a Lua script (``wrk.method``/``wrk.body``/``wrk.headers`` for a POST of a JSON
body, and a ``done(summary, latency, requests)`` hook that prints one JSON line, prefixed with
``WRKLOAD``, with the requests, the duration, wrk's error counts (connect, read, write, status,
timeout), the non-2xx count and the latency percentiles p50/p90/p99/p99.9 in µs) and runs
``wrk -t T -c C -d D`` bounded in time (``-d``, plus a hard timeout on the process). Concurrency
1 latency is ``threads=1, connections=1``.

Bounded in count too, with ``max_requests``: a ``request()`` hook (the request is built once;
the hook only returns it) stops a thread once it has sent its share. wrk's run still lasts
``-d`` (its main thread sleeps for it), so requests / duration would not be a rate once a
thread stopped early: such a run is flagged (``capped_threads``) and rejected by ``check()``.
The bench scripts set the cap far above any rate they can reach, as a safety bound.

The non-2xx count is wrk's ``status`` error count (wrk counts answers with a status above 399;
the servers measured here send no 1xx/3xx), and a run with any of them, or any socket error or
timeout, is rejected by ``check()``: a bench run answered with 401s or 502s is fast and wrong.

Pinning: ``cpus`` runs wrk under ``taskset -c``. Measured on the 2-core machine this was
written on (shared with other jobs), bench/proxy.py --quick three times each way, alternated:
wrk on core 0 with the engine on core 1 (``--pin``) gave the engine 1,276 / 930 / 1,371 req/s
at c=32 against 1,120 / 1,191 / 1,155 unpinned, c=1 p50 1.40 / 1.57 / 1.23 ms against 1.45 /
1.48 / 1.40 ms, and the same CPU per request (0.73-0.77 ms): no difference beyond the noise,
more spread pinned (the fake and every other process then compete for the engine's core or
wrk's). So the scripts leave pinning off by default; ``--pin`` is there for a machine with
idle cores to spare.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

WRK = "/usr/bin/wrk"
MARK = "WRKLOAD "
FIRST_MARK = "WRKLOAD_FIRST_NON_2XX "
ERROR_KINDS = ("connect", "read", "write", "status", "timeout")

DONE_HOOK = r"""
local threads = {}
function setup(thread) table.insert(threads, thread) end

function done(summary, latency, requests)
  local e = summary.errors
  local capped = 0
  for _, t in ipairs(threads) do
    if t:get("capped") then capped = capped + 1 end
  end
  local function p(q) return latency:percentile(q) end
  io.write(string.format(
    'WRKLOAD {"requests":%d,"duration_us":%d,"bytes":%d,'
    .. '"errors":{"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d},'
    .. '"non_2xx":%d,"capped_threads":%d,"latency_us":{"p50":%d,"p90":%d,"p99":%d,'
    .. '"p99.9":%d,"mean":%.1f,"max":%d}}\n',
    summary.requests, summary.duration, summary.bytes,
    e.connect, e.read, e.write, e.status, e.timeout, e.status, capped,
    p(50), p(90), p(99), p(99.9), latency.mean, latency.max))
end
"""


class WrkRejected(Exception):
    """A run that got non-2xx answers or socket errors: its figures mean nothing."""


def lua_string(text: str) -> str:
    """``text`` as a Lua string literal (every byte outside printable ASCII escaped)."""
    out = ['"']
    for b in text.encode():
        c = chr(b)
        if c in '"\\':
            out.append("\\" + c)
        elif 32 <= b < 127:
            out.append(c)
        else:
            out.append(f"\\{b:03d}")
    out.append('"')
    return "".join(out)


def lua_script(
    body: Any,
    headers: dict[str, str],
    per_thread: int | None,
    *,
    more_bodies: Sequence[Any] = (),
    show_first_non_2xx: bool = False,
) -> str:
    """The script for one run: a POST of ``body`` as JSON with ``headers`` (cycling through
    ``body`` and ``more_bodies`` request by request when there are several), the count cap
    (``per_thread`` requests per thread; None: only the time bound), the report hook, and with
    ``show_first_non_2xx`` a ``response()`` hook that prints each thread's first answer above
    299 (it makes wrk parse every answer: only where refusals are expected)."""
    lines = ['wrk.method = "POST"', f"wrk.body = {lua_string(json.dumps(body))}"]
    all_headers = {"Content-Type": "application/json", **headers}
    for k, v in all_headers.items():
        lines.append(f"wrk.headers[{lua_string(k)}] = {lua_string(v)}")
    bodies = [body, *more_bodies]
    if per_thread is not None or len(bodies) > 1:
        listed = ", ".join(lua_string(json.dumps(b)) for b in bodies)
        lines += [
            f"local cap = {per_thread if per_thread is not None else 'nil'}",
            f"local bodies = {{{listed}}}",
            "local sent = 0",
            "local reqs = nil",
            "capped = false",
            "function request()",
            "  if reqs == nil then",
            "    reqs = {}",
            "    for i, b in ipairs(bodies) do reqs[i] = wrk.format(nil, nil, nil, b) end",
            "  end",
            "  sent = sent + 1",
            "  if cap ~= nil and sent >= cap then capped = true; wrk.thread:stop() end",
            "  return reqs[(sent - 1) % #reqs + 1]",
            "end",
        ]
    if show_first_non_2xx:
        lines += [
            "local shown = false",
            "function response(status, headers, body)",
            "  if status > 299 and not shown then",
            "    shown = true",
            "    local text = string.gsub(string.sub(body, 1, 300), '[\\r\\n]', ' ')",
            f'    io.write("{FIRST_MARK}" .. status .. " " .. text .. "\\n")',
            "  end",
            "end",
        ]
    return "\n".join(lines) + "\n" + DONE_HOOK


@dataclass(frozen=True)
class WrkResult:
    """One wrk run: completed requests, errors, latency percentiles (ms)."""

    requests: int
    duration_s: float
    errors: dict[str, int]
    non_2xx: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    p999_ms: float
    mean_ms: float
    max_ms: float
    capped_threads: int = 0  # threads that hit the count cap before the time bound
    command: list[str] = field(default_factory=list)
    first_non_2xx: str = ""  # with show_first_non_2xx: the first such answer, cut short

    @property
    def rps(self) -> float:
        """Completed requests per second (all answers; ``check()`` makes them 2xx)."""
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")

    def check(self, what: str = "wrk run") -> WrkResult:
        """This result, or WrkRejected when any answer was non-2xx or any socket failed."""
        if self.requests == 0:
            raise WrkRejected(f"{what}: no request completed")
        if self.capped_threads:
            raise WrkRejected(
                f"{what}: {self.capped_threads} thread(s) hit the request cap before the time "
                "bound, so requests / duration is not a rate; raise max_requests"
            )
        if self.non_2xx or self.socket_errors:
            raise WrkRejected(
                f"{what}: {self.non_2xx} of {self.requests} answers non-2xx, socket errors "
                f"{ {k: v for k, v in self.errors.items() if k != 'status'} }; not reported"
            )
        return self


def parse_report(stdout: str) -> WrkResult:
    """The WrkResult in wrk's stdout (the ``WRKLOAD {...}`` line the done hook printed)."""
    for line in stdout.splitlines():
        if line.startswith(MARK):
            data = json.loads(line[len(MARK) :])
            break
    else:
        raise ValueError(f"no {MARK.strip()} line in wrk's output: {stdout[-500:]!r}")
    lat = data["latency_us"]
    errors = {k: int(data["errors"][k]) for k in ERROR_KINDS}
    return WrkResult(
        requests=int(data["requests"]),
        duration_s=int(data["duration_us"]) / 1e6,
        errors=errors,
        non_2xx=int(data["non_2xx"]),
        p50_ms=lat["p50"] / 1000,
        p90_ms=lat["p90"] / 1000,
        p99_ms=lat["p99"] / 1000,
        p999_ms=lat["p99.9"] / 1000,
        mean_ms=float(lat["mean"]) / 1000,
        max_ms=lat["max"] / 1000,
        capped_threads=int(data.get("capped_threads", 0)),
        first_non_2xx=next(
            (
                line[len(FIRST_MARK) :]
                for line in stdout.splitlines()
                if line.startswith(FIRST_MARK)
            ),
            "",
        ),
    )


def require_wrk() -> str:
    """wrk's path, or SystemExit saying how to install it."""
    path = WRK if Path(WRK).exists() else shutil.which("wrk")
    if not path:
        raise SystemExit("wrk is not installed: apt-get install wrk (Debian's wrk 4)")
    return path


@dataclass
class WrkRun:
    """A wrk process started by :func:`start_wrk`; :meth:`finish` waits for its report."""

    proc: subprocess.Popen[str]
    cmd: list[str]
    seconds: int
    timeout_s: float
    tmp: tempfile.TemporaryDirectory[str]

    def finish(self) -> WrkResult:
        """Wait (bounded) for wrk to end and parse its report; not checked (see ``check()``)."""
        try:
            out, err = self.proc.communicate(timeout=self.seconds + self.timeout_s + 30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=10)
            raise RuntimeError(f"{self.cmd} did not end in time") from None
        finally:
            self.tmp.cleanup()
        if self.proc.returncode != 0:
            raise RuntimeError(
                f"{self.cmd} exited with {self.proc.returncode}: {err.strip()[:500]}"
            )
        if ".lua:" in err or ".lua:" in out:  # wrk goes on without a script that fails
            raise RuntimeError(f"{self.cmd}: the Lua script failed: {(err or out).strip()[:500]}")
        result = parse_report(out)
        return WrkResult(**{**result.__dict__, "command": self.cmd})


def start_wrk(
    url: str,
    body: Any,
    headers: dict[str, str],
    *,
    duration_s: float,
    threads: int = 1,
    connections: int = 1,
    max_requests: int | None = None,
    timeout_s: float = 10.0,
    cpus: str | None = None,
    more_bodies: Sequence[Any] = (),
    show_first_non_2xx: bool = False,
) -> WrkRun:
    """Start wrk POSTing ``body`` (as JSON; cycling through ``more_bodies`` too) to ``url``
    for ``duration_s`` seconds (and at most about ``max_requests``, split across threads);
    ``cpus`` (e.g. "0") pins wrk with taskset. Several runs may go at once."""
    wrk = require_wrk()
    threads = max(1, min(threads, connections))
    per_thread = None if max_requests is None else max(1, math.ceil(max_requests / threads))
    seconds = max(1, math.ceil(duration_s))
    tmp = tempfile.TemporaryDirectory(prefix="wrkload-")
    script = Path(tmp.name) / "load.lua"
    script.write_text(
        lua_script(
            body,
            headers,
            per_thread,
            more_bodies=more_bodies,
            show_first_non_2xx=show_first_non_2xx,
        )
    )
    cmd = [wrk, f"-t{threads}", f"-c{connections}", f"-d{seconds}s"]
    cmd += [f"--timeout={max(1, math.ceil(timeout_s))}s", "-s", str(script), url]
    if cpus is not None:
        cmd = ["taskset", "-c", cpus, *cmd]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return WrkRun(proc, cmd, seconds, timeout_s, tmp)


def run_wrk(
    url: str,
    body: Any,
    headers: dict[str, str],
    *,
    duration_s: float,
    threads: int = 1,
    connections: int = 1,
    max_requests: int | None = None,
    timeout_s: float = 10.0,
    cpus: str | None = None,
) -> WrkResult:
    """POST ``body`` (as JSON) to ``url`` with wrk for ``duration_s`` seconds (and at most
    about ``max_requests``, split across threads); ``cpus`` (e.g. "0") pins wrk with taskset.
    Not checked: call ``.check()`` to reject non-2xx answers and socket errors."""
    return start_wrk(
        url,
        body,
        headers,
        duration_s=duration_s,
        threads=threads,
        connections=connections,
        max_requests=max_requests,
        timeout_s=timeout_s,
        cpus=cpus,
    ).finish()
