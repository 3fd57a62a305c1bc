"""Connect OpenRouter by its PKCE sign-in: real loopback servers, a real browser or httpx as
one, the fake of OpenRouter's auth side (tests/orkit/auth.py), a real keyring backend."""

from __future__ import annotations

import asyncio
import errno
import logging
import shutil
import socket
import subprocess
import threading
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from aiwallet.domain.errors import InvalidInput
from aiwallet.paths import DataDir
from aiwallet.provider_signin import connect_openrouter, connect_openrouter_async
from aiwallet.service import Wallet
from aiwallet.upstreams.openrouter_signin import (
    SignInCancelled,
    SignInFailed,
    SignInRefused,
    SignInTimeout,
    bind_callback_sockets,
    sign_in,
    start_sign_in,
)
from leakscan import register_key
from orkit.auth import AuthFakeServer, OpenRouterAuthFake, s256

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture
def auth():
    with AuthFakeServer() as server:
        yield server
    for key in server.fake.issued:  # the session's leak scan looks for these from now on
        register_key(key)


@pytest.fixture
def wallet(tmp_path):
    w = Wallet.open(DataDir(tmp_path / "data"))
    yield w
    w.close()


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 30))


def browse(url: str, **kw) -> httpx.Response:
    """httpx as the browser: follows OpenRouter's redirect to the wallet's callback."""
    with httpx.Client(follow_redirects=True, timeout=15, **kw) as client:
        return client.get(url)


def redirect_target(url: str) -> str:
    """Where the fake sends the browser back (the callback URL with its code)."""
    with httpx.Client(follow_redirects=False, timeout=15) as client:
        resp = client.get(url)
    assert resp.status_code == 302, resp.text
    return resp.headers["location"]


def bindable(port: int) -> bool:
    """Nothing listens on 127.0.0.1:port (nor on ::1:port where IPv6 is there)."""
    try:
        for sock in bind_callback_sockets(port, attempts=0) if port else []:
            sock.close()
    except Exception:
        return False
    return True


def data_files_hold(root, needle: str) -> list[str]:
    return [str(f) for f in root.rglob("*") if f.is_file() and needle.encode() in f.read_bytes()]


def chromium_opener(tmp_path, doms: list[str]):
    def open_browser(url: str) -> object:
        proc = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-extensions",
                "--disable-background-networking",
                f"--user-data-dir={tmp_path / 'chromium'}",
                "--dump-dom",
                url,
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
        doms.append(proc.stdout)
        return proc.returncode == 0

    return open_browser


# -- end to end -----------------------------------------------------------------------------
@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (.ci/run does)")
def test_headless_chromium_connects_openrouter_and_the_key_lands_only_in_the_vault(
    auth, wallet, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG)
    doms: list[str] = []
    info = connect_openrouter(
        wallet,
        open_browser=chromium_opener(tmp_path, doms),
        auth_url=auth.auth_url,
        api_base=auth.api_base,
        port=0,
        timeout_s=60,
    )
    [key] = auth.fake.issued
    [issued] = auth.fake.codes.values()
    assert issued.used and issued.key == key
    # the browser went through the fake to the wallet's callback and was told the outcome
    assert "Connected. You can close this tab." in doms[0], doms
    assert key not in doms[0]
    # stored as a typed key would be: the vault, the provider row with its hint
    assert info.name == "openrouter" and info.kind == "openrouter"
    assert info.base_url == auth.api_base and info.key_hint == f"{key[:3]}…{key[-4:]}"
    assert wallet.vault.get("provider:openrouter").reveal() == key
    assert [p.name for p in wallet.list_providers()] == ["openrouter"]
    # never in a log line, never in the data dir's files (the keyring stand-in is outside it)
    wallet.close()
    for secret in (key, issued.code):
        assert secret not in caplog.text
        assert data_files_hold(wallet.data_dir.root, secret) == []
    assert key in (tmp_path / "os-keyring" / "keyring.json").read_text()


def test_httpx_as_browser_gets_a_masked_key_and_the_server_closes(auth):
    pages: list[httpx.Response] = []
    result = run(
        sign_in(
            open_browser=lambda url: pages.append(browse(url)),
            auth_url=auth.auth_url,
            api_base=auth.api_base,
            port=0,
            timeout_s=20,
        )
    )
    [key] = auth.fake.issued
    assert result.key.reveal() == key
    assert key not in repr(result) and key not in str(result.key) and key not in f"{result.key}"
    [page] = pages
    assert page.status_code == 200 and "Connected" in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["content-type"].startswith("text/html")
    port = page.url.port
    assert bindable(port)
    with pytest.raises(httpx.ConnectError):  # replaying the callback: nobody listens any more
        browse(str(page.url))


def test_the_challenge_is_s256_of_a_verifier_of_pkce_length(auth):
    async def go():
        signin = await start_sign_in(auth_url=auth.auth_url, api_base=auth.api_base, port=0)
        async with signin:
            q = parse_qs(urlsplit(signin.url).query)
            verifier = signin._verifier
            assert 43 <= len(verifier) <= 128
            assert q["code_challenge"] == [s256(verifier)]
            assert q["code_challenge_method"] == ["S256"]
            [callback] = q["callback_url"]
            cb = urlsplit(callback)
            assert (cb.scheme, cb.hostname, cb.port, cb.path) == (
                "http",
                "localhost",
                signin.port,
                "/callback",
            )
            assert parse_qs(cb.query)["state"] == [signin._state]
            assert verifier not in signin.url and verifier not in repr(signin)

    run(go())


# -- state, replays, refusals ---------------------------------------------------------------
def test_a_wrong_or_missing_state_is_refused_and_the_real_callback_still_completes(auth):
    async def go():
        signin = await start_sign_in(
            auth_url=auth.auth_url, api_base=auth.api_base, port=0, timeout_s=20
        )
        async with signin:
            target = await asyncio.to_thread(redirect_target, signin.url)
            parts = urlsplit(target)
            code = parse_qs(parts.query)["code"][0]
            base = f"http://localhost:{signin.port}/callback"
            forged = [
                f"{base}?state=not-the-state&code={code}",
                f"{base}?code={code}",
                f"{base}?state={signin._state}x&code={code}",
                f"{base}?state=<script>alert(1)</script>&code={code}",
            ]
            for url in forged:
                page = await asyncio.to_thread(browse, url)
                assert page.status_code == 400
                assert "Refused" in page.text and "nothing was stored" in page.text
                assert "<script>" not in page.text and code not in page.text
            assert signin.refused_callbacks == len(forged)
            assert not auth.fake.codes[code].used  # no refused callback reached the exchange
            page = await asyncio.to_thread(browse, target)
            assert page.status_code == 200 and "Connected" in page.text
            return await signin.wait()

    result = run(go())
    assert result.key.reveal() == auth.fake.issued[0]


def test_only_one_callback_is_accepted_a_replay_or_second_code_is_refused(auth):
    gate = threading.Event()
    auth.fake.exchange_gate = gate

    async def go():
        signin = await start_sign_in(
            auth_url=auth.auth_url, api_base=auth.api_base, port=0, timeout_s=20
        )
        async with signin:
            target = await asyncio.to_thread(redirect_target, signin.url)
            first = asyncio.ensure_future(asyncio.to_thread(browse, target))
            await asyncio.to_thread(
                lambda: auth.fake.exchange_waiting.wait(10) or pytest.fail("no exchange")
            )
            replay = await asyncio.to_thread(browse, target)
            second_code = target.replace("code=", "code=other")
            second = await asyncio.to_thread(browse, second_code)
            gate.set()
            page = await first
            result = await signin.wait()
            return page, replay, second, result

    page, replay, second, result = run(go())
    assert page.status_code == 200 and "Connected" in page.text
    for refused in (replay, second):
        assert refused.status_code == 409 and "already finished" in refused.text
    assert result.key.reveal() == auth.fake.issued[0]
    assert len(auth.fake.exchanges) == 1


def test_a_used_code_is_refused_by_openrouter_and_nothing_is_stored(auth, wallet, caplog):
    caplog.set_level(logging.DEBUG)
    pages: list[httpx.Response] = []
    browser_threads: set[int] = set()  # httpx as the browser logs its own URLs (with the code)

    def browser(url: str) -> None:
        browser_threads.add(threading.get_ident())
        target = redirect_target(url)
        code = parse_qs(urlsplit(target).query)["code"][0]
        auth.fake.codes[code].used = True  # someone exchanged it already
        pages.append(browse(target))

    with pytest.raises(SignInRefused) as err:
        connect_openrouter(
            wallet,
            open_browser=browser,
            auth_url=auth.auth_url,
            api_base=auth.api_base,
            port=0,
            timeout_s=20,
        )
    assert err.value.code == "signin_refused"
    assert "HTTP 403" in str(err.value) and "already used" not in str(err.value)  # no body
    assert auth.fake.exchanges == [(403, "code already used")] and auth.fake.issued == []
    [page] = pages
    assert page.status_code == 502 and "could not connect OpenRouter" in page.text
    assert "HTTP 403" in page.text
    assert wallet.list_providers() == [] and wallet.vault.names() == []
    [code] = auth.fake.codes
    wallet_lines = [r.getMessage() for r in caplog.records if r.thread not in browser_threads]
    assert wallet_lines and not [line for line in wallet_lines if code in line]
    assert code not in str(err.value)


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [(400, SignInRefused, "signin_refused"), (500, SignInFailed, "signin_failed")],
)
def test_an_exchange_error_names_the_status_never_the_body(auth, status, error, code):
    auth.fake.refuse_exchange_with = status
    with pytest.raises(error) as err:
        run(
            sign_in(
                open_browser=browse,
                auth_url=auth.auth_url,
                api_base=auth.api_base,
                port=0,
                timeout_s=20,
            )
        )
    assert err.value.code == code and f"HTTP {status}" in str(err.value)
    assert "scripted refusal" not in str(err.value)


def test_a_callback_from_a_foreign_host_name_is_refused(auth):
    async def go():
        signin = await start_sign_in(
            auth_url=auth.auth_url, api_base=auth.api_base, port=0, timeout_s=20
        )
        async with signin:
            url = f"http://127.0.0.1:{signin.port}/callback?state={signin._state}&code=abc"
            page = await asyncio.to_thread(
                browse, url, headers={"Host": f"rebound.example:{signin.port}"}
            )
            assert page.status_code == 400 and not signin.done
            assert signin.refused_callbacks == 0

    run(go())


def test_a_browser_that_resolves_localhost_to_ipv6_reaches_the_callback(auth):
    async def go():
        signin = await start_sign_in(
            auth_url=auth.auth_url, api_base=auth.api_base, port=0, timeout_s=20
        )
        async with signin:
            if "::1" not in signin.addresses:
                pytest.skip("no IPv6 loopback here")
            target = await asyncio.to_thread(redirect_target, signin.url)
            via_v6 = target.replace("//localhost:", "//[::1]:")
            page = await asyncio.to_thread(browse, via_v6)
            assert page.status_code == 200 and "Connected" in page.text
            return await signin.wait()

    assert run(go()).key.reveal() == auth.fake.issued[0]


def test_a_browser_that_fails_to_open_leaves_the_url_to_open_by_hand(auth, caplog):
    urls: list[str] = []

    def broken(url: str) -> None:
        urls.append(url)
        raise OSError("no display")

    async def go():
        task = asyncio.ensure_future(
            sign_in(
                open_browser=broken,
                auth_url=auth.auth_url,
                api_base=auth.api_base,
                port=0,
                timeout_s=20,
            )
        )
        while not urls:
            await asyncio.sleep(0.01)  # polls for the (failed) opening
        page = await asyncio.to_thread(browse, urls[0])  # the user pastes the URL
        assert page.status_code == 200
        return await task

    assert run(go()).key.reveal() == auth.fake.issued[0]
    assert "could not open a browser (OSError)" in caplog.text


# -- cancel, timeout, ports -----------------------------------------------------------------
def test_cancel_from_another_thread_ends_it_stores_nothing_and_frees_the_port(auth, wallet):
    async def go():
        connect = await wallet.start_connect_openrouter(
            auth_url=auth.auth_url, api_base=auth.api_base, port=0, timeout_s=20
        )
        port = connect.port
        assert f"localhost%3A{port}" in connect.url
        assert not bindable(port)
        threading.Thread(target=connect.cancel).start()  # a GUI button on another thread
        with pytest.raises(SignInCancelled) as err:
            await connect.wait()
        assert err.value.code == "signin_cancelled"
        return port

    port = run(go())
    assert bindable(port)
    assert wallet.list_providers() == [] and wallet.vault.names() == []


def test_a_cancel_event_ends_the_whole_flow(auth, wallet):
    async def go():
        cancel = asyncio.Event()
        urls: list[str] = []

        def open_browser(url: str) -> None:
            urls.append(url)

        task = asyncio.ensure_future(
            connect_openrouter_async(
                wallet,
                open_browser=open_browser,
                auth_url=auth.auth_url,
                api_base=auth.api_base,
                port=0,
                cancel=cancel,
            )
        )
        while not urls:
            await asyncio.sleep(0.01)  # polls for the browser having been opened
        cancel.set()
        with pytest.raises(SignInCancelled):
            await task
        return urlsplit(parse_qs(urlsplit(urls[0]).query)["callback_url"][0]).port

    port = run(go())
    assert bindable(port)
    assert wallet.list_providers() == []


def test_timeout_ends_it_with_its_own_error_and_frees_the_port(auth):
    ports: list[int] = []

    def open_browser(url: str) -> None:
        ports.append(urlsplit(parse_qs(urlsplit(url).query)["callback_url"][0]).port)

    with pytest.raises(SignInTimeout) as err:
        run(
            sign_in(
                open_browser=open_browser,
                auth_url=auth.auth_url,
                api_base=auth.api_base,
                port=0,
                timeout_s=0.3,
            )
        )
    assert err.value.code == "signin_timeout" and "nothing was stored" in str(err.value)
    assert bindable(ports[0])


def _hold(family: socket.AddressFamily, host: str, port: int) -> socket.socket | None:
    sock = socket.socket(family, socket.SOCK_STREAM)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            return None  # taken by someone else: taken all the same
        if family == socket.AF_INET6:
            pytest.skip(f"no IPv6 loopback here ({exc})")
        raise
    sock.listen(1)
    return sock


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")]
)
def test_port_3000_taken_on_either_address_falls_back_to_a_free_port(auth, family, host):
    held = _hold(family, host, 3000)

    async def go():
        signin = await start_sign_in(auth_url=auth.auth_url, api_base=auth.api_base)
        async with signin:
            assert signin.port != 3000
            assert f"localhost%3A{signin.port}%2Fcallback" in signin.url
            assert "127.0.0.1" in signin.addresses
            page = await asyncio.to_thread(browse, signin.url)
            assert page.status_code == 200
            return await signin.wait()

    try:
        result = run(go())
    finally:
        if held is not None:
            held.close()
    assert result.key.reveal() == auth.fake.issued[0]


def test_port_3000_is_the_default_where_it_is_free(auth):
    if not bindable(3000):
        pytest.skip("port 3000 is in use on this machine")

    async def go():
        signin = await start_sign_in(auth_url=auth.auth_url, api_base=auth.api_base)
        async with signin:
            assert signin.port == 3000
            assert signin.callback_url.startswith("http://localhost:3000/callback?state=")

    run(go())
    assert bindable(3000)


# -- the facade's checks ------------------------------------------------------------------------
def test_the_name_is_checked_before_any_browser_opens(auth, wallet):
    register_key(existing := "sk-or-v1-" + "0" * 64)
    wallet.add_provider("openrouter", kind="openrouter", api_key=existing, base_url=auth.api_base)
    opened: list[str] = []
    with pytest.raises(InvalidInput, match="--replace"):
        connect_openrouter(
            wallet, open_browser=opened.append, auth_url=auth.auth_url, api_base=auth.api_base
        )
    with pytest.raises(InvalidInput, match="usable provider name"):
        connect_openrouter(wallet, name="Bad Name!", open_browser=opened.append)
    assert opened == []


def test_replace_rotates_the_key_of_an_existing_provider(auth, wallet):
    old = "sk-or-v1-" + "1" * 64
    register_key(old)
    wallet.add_provider("work", kind="openrouter", api_key=old, base_url=auth.api_base)
    info = connect_openrouter(
        wallet,
        name="work",
        replace=True,
        open_browser=browse,
        auth_url=auth.auth_url,
        api_base=auth.api_base,
        port=0,
        timeout_s=20,
    )
    [key] = auth.fake.issued
    assert info.name == "work" and wallet.vault.get("provider:work").reveal() == key


def test_plain_http_is_refused_for_a_remote_exchange():
    with pytest.raises(InvalidInput, match="https"):
        run(start_sign_in(api_base="http://openrouter.example/api/v1", port=0))


# -- the fake itself ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "query",
    [
        "callback_url=http://localhost:1/cb&code_challenge={c}&code_challenge_method=plain",
        "callback_url=http://localhost:1/cb&code_challenge_method=S256",
        "callback_url=https://evil.example/cb&code_challenge={c}&code_challenge_method=S256",
    ],
)
def test_the_fake_refuses_what_openrouter_would(auth, query):
    c = s256("v" * 50)
    with httpx.Client(follow_redirects=False) as client:
        resp = client.get(f"{auth.auth_url}?{query.format(c=c)}")
    assert resp.status_code == 400


def test_the_fake_redirects_with_a_code_and_checks_the_verifier(auth):
    verifier = "v" * 50
    with httpx.Client(follow_redirects=False) as client:
        resp = client.get(
            auth.auth_url,
            params={
                "callback_url": "http://127.0.0.1:9/cb",
                "code_challenge": s256(verifier),
                "code_challenge_method": "S256",
            },
        )
        assert resp.status_code == 302
        code = parse_qs(urlsplit(resp.headers["location"]).query)["code"][0]
        assert resp.headers["location"] == f"http://127.0.0.1:9/cb?code={code}"
        body = {"code": code, "code_challenge_method": "S256"}
        keys = f"{auth.api_base}/auth/keys"
        assert client.post(keys, json={**body, "code_verifier": "w" * 50}).status_code == 400
        ok = client.post(keys, json={**body, "code_verifier": verifier})
        assert ok.status_code == 200 and ok.json()["key"] == auth.fake.issued[0]
        assert client.post(keys, json={**body, "code_verifier": verifier}).status_code == 403


def test_the_fake_mounts_on_another_app():
    from aiohttp import web

    app = web.Application()
    OpenRouterAuthFake().add_routes(app)
    paths = {r.resource.canonical for r in app.router.routes()}
    assert {"/auth", "/api/v1/auth/keys"} <= paths
