""" "Connect OpenRouter" from the Providers page against the fake OpenRouter sign-in
(tests/orkit/auth.py) on loopback: httpx plays the browser. A full sign-in stores the key and
the provider appears; Cancel (and closing the app) leaves nothing and closes the callback."""

from __future__ import annotations

import threading
import time
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from aiwallet.gui import texts
from leakscan import register_key
from orkit.auth import AuthFakeServer

PROVIDERS_PAGE = 3


@pytest.fixture
def auth():
    server = AuthFakeServer().start()
    yield server
    for key in server.fake.issued:
        register_key(key)
    server.stop()


def browse(url: str, pages: list[httpx.Response]) -> None:
    """httpx as the browser: OpenRouter's page redirects to the wallet's callback."""
    with httpx.Client(follow_redirects=True, timeout=15) as client:
        pages.append(client.get(url))


def providers_page(desk, qtbot, auth):
    window = desk.app.window
    window.show_page(PROVIDERS_PAGE)
    page = window.providers
    qtbot.waitUntil(lambda: page.loads >= 1, timeout=10_000)
    page.signin_options = {"auth_url": auth.auth_url, "api_base": auth.api_base, "port": 0}
    return page


def test_a_full_sign_in_stores_the_key_and_shows_the_provider(desk, qtbot, auth):
    page = providers_page(desk, qtbot, auth)
    assert page.connect_button.objectName() == "primary"  # no OpenRouter yet
    pages: list[httpx.Response] = []
    threads: list[threading.Thread] = []

    def browser(url: str) -> None:  # never blocks the GUI thread
        thread = threading.Thread(target=browse, args=(url, pages), daemon=True)
        thread.start()
        threads.append(thread)

    page.open_browser = browser
    page.connect_button.click()
    dialog = page.signin
    assert dialog is not None
    qtbot.waitUntil(lambda: any(p.name == "openrouter" for p in page.providers), timeout=20_000)
    for thread in threads:
        thread.join(10)
    assert not dialog.isVisible() and dialog.result() == dialog.DialogCode.Accepted
    (key,) = auth.fake.issued
    assert desk.wallet.vault.get("provider:openrouter").reveal() == key
    info = next(p for p in page.providers if p.name == "openrouter")
    assert info.kind == "openrouter" and key not in (info.key_hint or "")
    assert page.result.text() == texts.SIGNIN_DONE.format(provider="openrouter")
    assert pages and pages[0].status_code == 200
    # the address shown was the sign-in's own, with a loopback callback
    query = parse_qs(urlsplit(dialog.url_field.text()).query)
    assert urlsplit(query["callback_url"][0]).hostname == "localhost"
    assert query["code_challenge_method"] == ["S256"]
    assert key not in dialog.url_field.text()
    qtbot.waitUntil(lambda: page.connect_button.objectName() == "", timeout=10_000)


def test_cancel_leaves_no_provider_and_closes_the_callback(desk, qtbot, auth):
    page = providers_page(desk, qtbot, auth)
    opened: list[str] = []
    page.open_browser = opened.append
    page.connect_button.click()
    dialog = page.signin
    assert dialog is not None
    qtbot.waitUntil(lambda: bool(dialog.url_field.text()), timeout=10_000)
    assert dialog.state.text() == texts.SIGNIN_WAITING
    assert opened == [dialog.url_field.text()]
    assert dialog.copy.isEnabled()
    dialog.copy.click()
    from PySide6.QtGui import QGuiApplication

    assert QGuiApplication.clipboard().text() == dialog.url_field.text()
    callback = parse_qs(urlsplit(dialog.url_field.text()).query)["callback_url"][0]
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: dialog.flow.done, timeout=10_000)
    assert not dialog.isVisible()
    assert page.result.text() == texts.SIGNIN_CANCELLED
    assert desk.wallet.providers.find("openrouter") is None
    assert desk.wallet.vault.get("provider:openrouter") is None
    assert auth.fake.issued == []
    port = urlsplit(callback).port
    with pytest.raises(httpx.ConnectError):  # nobody listens on the callback any more
        httpx.get(f"http://127.0.0.1:{port}/callback", timeout=5)


def test_a_refused_exchange_is_shown_and_stores_nothing(desk, qtbot, auth):
    auth.fake.refuse_exchange_with = 403
    page = providers_page(desk, qtbot, auth)
    pages: list[httpx.Response] = []
    threads: list[threading.Thread] = []

    def browser(url: str) -> None:
        thread = threading.Thread(target=browse, args=(url, pages), daemon=True)
        thread.start()
        threads.append(thread)

    page.open_browser = browser
    page.connect_button.click()
    dialog = page.signin
    assert dialog is not None
    qtbot.waitUntil(lambda: dialog.problem.isVisible(), timeout=20_000)
    for thread in threads:
        thread.join(10)
    assert dialog.isVisible() and dialog.cancel_button.text() == "Close"
    assert "nothing was stored" in dialog.state.text()
    assert dialog.problem.text()
    assert desk.wallet.providers.find("openrouter") is None
    dialog.cancel_button.click()
    assert not dialog.isVisible()


def test_closing_the_app_cancels_a_sign_in_under_way(desk, qtbot, auth):
    page = providers_page(desk, qtbot, auth)
    page.open_browser = lambda _url: None
    page.connect_button.click()
    dialog = page.signin
    assert dialog is not None
    qtbot.waitUntil(lambda: bool(dialog.url_field.text()), timeout=10_000)
    began = time.monotonic()
    desk.app.shutdown()  # the pool waits for its workers: the sign-in's must end first
    assert time.monotonic() - began < 15, "the shutdown waited on the browser sign-in"
    assert desk.wallet.providers.find("openrouter") is None
