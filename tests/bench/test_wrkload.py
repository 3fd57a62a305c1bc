"""bench/wrkload.py (wrk's report, the rejection of non-2xx runs) and bench/leanfake.py (its
answers as the official OpenAI SDK reads them). The tests that run wrk skip when it is missing.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import shutil
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import openai
import pytest
from aiohttp import web

from fakeupstream import OPENAI_KEY

BENCH = Path(__file__).resolve().parents[2] / "bench"


def load_bench_module(name: str) -> ModuleType:
    """bench/<name>.py, imported by path: bench/ is not put on sys.path, where its many small
    scripts (identity, prompt, sse...) could shadow other tests' imports."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


wrkload = load_bench_module("wrkload")
leanfake = load_bench_module("leanfake")

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None and not Path(wrkload.WRK).exists(),
    reason="wrk is not installed (apt-get install wrk)",
)

RECORDED = (
    'WRKLOAD {"requests":26574,"duration_us":3099364,"bytes":14271238,'
    '"errors":{"connect":0,"read":0,"write":0,"status":0,"timeout":0},"non_2xx":0,'
    '"capped_threads":0,"latency_us":{"p50":88,"p90":182,"p99":289,"p99.9":2287,'
    '"mean":123.5,"max":4063}}'
)


def report(**changes: Any) -> str:
    data = json.loads(RECORDED.removeprefix("WRKLOAD "))
    for key, value in changes.items():
        if key in wrkload.ERROR_KINDS:
            data["errors"][key] = value
        else:
            data[key] = value
    data["non_2xx"] = data["errors"]["status"]
    return "Running 3s test @ http://127.0.0.1:1/\n" + "WRKLOAD " + json.dumps(data) + "\n"


def test_a_recorded_report_parses_to_ms_and_a_rate() -> None:
    r = wrkload.parse_report("Running 3s test\n  1 threads and 1 connections\n" + RECORDED)
    assert r.requests == 26574
    assert r.duration_s == pytest.approx(3.099364)
    assert r.rps == pytest.approx(26574 / 3.099364)
    assert (r.p50_ms, r.p90_ms, r.p99_ms, r.p999_ms) == (0.088, 0.182, 0.289, 2.287)
    assert r.mean_ms == pytest.approx(0.1235)
    assert r.non_2xx == 0 and r.socket_errors == 0
    assert r.check() is r


def test_output_without_the_report_line_is_an_error() -> None:
    with pytest.raises(ValueError, match="no WRKLOAD line"):
        wrkload.parse_report("Running 3s test\nunable to connect to 127.0.0.1:1\n")


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"status": 17}, "17 of 26574 answers non-2xx"),
        ({"read": 3}, "socket errors"),
        ({"timeout": 1}, "socket errors"),
        ({"connect": 2}, "socket errors"),
        ({"capped_threads": 1}, "hit the request cap"),
        ({"requests": 0}, "no request completed"),
    ],
)
def test_a_run_with_non_2xx_or_errors_is_rejected(changes: dict[str, int], says: str) -> None:
    r = wrkload.parse_report(report(**changes))
    with pytest.raises(wrkload.WrkRejected, match=says):
        r.check("c=32 engine")


def test_lua_strings_escape_quotes_backslashes_and_non_ascii() -> None:
    assert wrkload.lua_string('a"b\\c') == '"a\\"b\\\\c"'
    assert wrkload.lua_string("é\n") == '"\\195\\169\\010"'
    script = wrkload.lua_script({"q": 'say "hi"'}, {"Authorization": "Bearer k"}, 10)
    assert 'wrk.method = "POST"' in script
    assert 'wrk.headers["Content-Type"] = "application/json"' in script
    assert 'wrk.headers["Authorization"] = "Bearer k"' in script
    assert "local cap = 10" in script and "function done(" in script


@pytest.fixture
def tiny_server() -> Iterator[tuple[str, list[tuple[str, bytes, str]]]]:
    """An aiohttp server on 127.0.0.1 in a thread: ``/ok`` answers 200, ``/fail`` 503; it
    records (path, body, Authorization) of each request."""
    seen: list[tuple[str, bytes, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append((request.path, await request.read(), request.headers.get("Authorization", "")))
        return web.json_response({"ok": True}, status=200 if request.path == "/ok" else 503)

    ready = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        app = web.Application()
        app.router.add_post("/ok", handle)
        app.router.add_post("/fail", handle)
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        site = web.TCPSite(runner, "127.0.0.1", 0)
        loop.run_until_complete(site.start())
        state["port"] = runner.addresses[0][1]
        state["loop"] = loop
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="tiny-server", daemon=True)
    thread.start()
    assert ready.wait(10), "the tiny server did not start"
    yield f"http://127.0.0.1:{state['port']}", seen
    state["loop"].call_soon_threadsafe(state["loop"].stop)
    thread.join(10)


@needs_wrk
def test_a_real_wrk_run_posts_the_body_and_reports(
    tiny_server: tuple[str, list[tuple[str, bytes, str]]],
) -> None:
    base, seen = tiny_server
    body = {"model": "m", "messages": [{"role": "user", "content": 'say "é"'}]}
    r = wrkload.run_wrk(
        f"{base}/ok", body, {"Authorization": "Bearer test"}, duration_s=1, connections=2
    )
    assert r.check() is r
    assert r.requests > 0 and r.non_2xx == 0 and r.capped_threads == 0
    assert 0 < r.p50_ms <= r.p90_ms <= r.p99_ms <= r.p999_ms <= r.max_ms
    assert len(seen) >= r.requests
    path, raw, auth = seen[0]
    assert (path, json.loads(raw), auth) == ("/ok", body, "Bearer test")


@needs_wrk
def test_a_real_wrk_run_against_503s_is_rejected(
    tiny_server: tuple[str, list[tuple[str, bytes, str]]],
) -> None:
    base, _ = tiny_server
    r = wrkload.run_wrk(f"{base}/fail", {"x": 1}, {}, duration_s=1, connections=2)
    assert r.requests > 0 and r.non_2xx == r.requests
    with pytest.raises(wrkload.WrkRejected, match="non-2xx"):
        r.check()


@needs_wrk
def test_two_runs_at_once_cycle_their_bodies_and_show_the_first_refusal(
    tiny_server: tuple[str, list[tuple[str, bytes, str]]],
) -> None:
    """What bench/shared_pg.py does: two wrk processes at once, whole and streamed bodies in
    turn, each thread's first answer above 299 shown (cut short, on one line)."""
    base, seen = tiny_server
    whole, streamed = {"stream": False}, {"stream": True}
    runs = [
        wrkload.start_wrk(
            f"{base}/{path}",
            whole,
            {"Authorization": f"Bearer {path}"},
            more_bodies=[streamed],
            duration_s=1,
            connections=2,
            show_first_non_2xx=True,
        )
        for path in ("ok", "fail")
    ]
    ok, fail = (r.finish() for r in runs)
    assert ok.check() is ok and ok.first_non_2xx == ""
    assert fail.non_2xx == fail.requests > 0
    assert fail.first_non_2xx.startswith('503 {"ok": true}')
    for path in ("/ok", "/fail"):
        bodies = [json.loads(raw) for p, raw, _ in seen if p == path]
        assert {b["stream"] for b in bodies} == {False, True}
        assert abs(bodies.count(whole) - bodies.count(streamed)) <= 2  # in turn, per thread


@needs_wrk
def test_the_count_cap_stops_the_run_and_is_rejected(
    tiny_server: tuple[str, list[tuple[str, bytes, str]]],
) -> None:
    base, seen = tiny_server
    r = wrkload.run_wrk(f"{base}/ok", {}, {}, duration_s=1, connections=2, max_requests=20)
    assert r.capped_threads == 1 and r.requests <= len(seen) <= 21
    with pytest.raises(wrkload.WrkRejected, match="request cap"):
        r.check()


def test_missing_wrk_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wrkload, "WRK", "/nonexistent/wrk")
    monkeypatch.setattr(wrkload.shutil, "which", lambda name: None)
    with pytest.raises(SystemExit, match="apt-get install wrk"):
        wrkload.require_wrk()


@pytest.fixture
def lean_fake() -> Iterator[str]:
    """bench/leanfake.py's app on 127.0.0.1 in a thread; its /v1 base URL."""
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(leanfake.make_app(), access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", 0).start())
        state["port"] = runner.addresses[0][1]
        state["loop"] = loop
        ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    thread = threading.Thread(target=run, name="lean-fake", daemon=True)
    thread.start()
    assert ready.wait(10), "the lean fake did not start"
    yield f"http://127.0.0.1:{state['port']}/v1"
    state["loop"].call_soon_threadsafe(state["loop"].stop)
    thread.join(10)


MESSAGES: Any = [{"role": "user", "content": "say hello to the benchmark"}]


def test_the_lean_fake_answers_as_openai_with_usage(lean_fake: str) -> None:
    client = openai.OpenAI(base_url=lean_fake, api_key=OPENAI_KEY, max_retries=0)
    c = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
    assert c.object == "chat.completion" and c.model == "gpt-4o-mini"
    assert c.choices[0].message.role == "assistant"
    assert c.choices[0].message.content == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert c.choices[0].finish_reason == "stop"
    assert c.usage is not None
    assert (c.usage.prompt_tokens, c.usage.completion_tokens, c.usage.total_tokens) == (12, 8, 20)
    short = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, max_tokens=3)
    assert short.choices[0].finish_reason == "length"
    assert short.usage is not None and short.usage.completion_tokens == 3


def test_the_lean_fake_streams_as_openai_with_usage_last(lean_fake: str) -> None:
    client = openai.OpenAI(base_url=lean_fake, api_key=OPENAI_KEY, max_retries=0)
    chunks = list(
        client.chat.completions.create(
            model="gpt-4o-mini",
            messages=MESSAGES,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "w0 w1 w2 w3 w4 w5 w6 w7 "
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert all(c.usage is None for c in chunks[:-1])
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens) == (12, 8)
    plain = list(
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, stream=True)
    )
    assert all(c.usage is None and c.choices for c in plain)  # no usage unless asked, as OpenAI


def test_the_lean_fake_refuses_a_wrong_key(lean_fake: str) -> None:
    client = openai.OpenAI(base_url=lean_fake, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
