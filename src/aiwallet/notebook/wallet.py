"""Talking to a running wallet over HTTP, as any app does: connect, ``/me``, own requests.

The notebook helper imports nothing of aiwallet but ``domain``: it finds the wallet the way
the command line does (``--data-dir`` / ``AIWALLET_HOME`` / the platform's user data dir,
then the running engine's ``engine.json`` there) and speaks only the wallet API.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import platformdirs
import psutil

ENV_HOME = "AIWALLET_HOME"  # as aiwallet.paths
DEFAULT_URL = "http://127.0.0.1:8402"
START_HINT = (
    "No wallet is running: start it with `aiwallet` (the desktop app) or `aiwallet serve` "
    "(headless), then run this cell again."
)


class WalletUnavailable(Exception):
    """No wallet answers (not started, or stopped)."""

    def __init__(self, message: str = START_HINT) -> None:
        super().__init__(message)


class WalletRefused(Exception):
    """The wallet answered with one of its errors (``code`` from its error table)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


def data_dir(explicit: str | os.PathLike[str] | None = None) -> Path:
    """The wallet's data dir, chosen like the CLI chooses it (aiwallet.paths)."""
    if explicit:
        return Path(explicit).expanduser().resolve()
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser().resolve()
    return Path(platformdirs.user_data_dir("aiwallet", appauthor=False))


def engine_url(root: Path) -> str | None:
    """The running engine's URL from its ``engine.json``; None when none was started, or when
    the file is a crashed engine's (its port may be another program's now, which must not be
    sent this notebook's key)."""
    try:
        info = json.loads((root / "engine.json").read_text())
        host, port = str(info["host"]), int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not _writer_alive(info):
        return None
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _writer_alive(info: dict[str, Any]) -> bool:
    """The process that wrote ``engine.json`` still runs (same pid, same start time, this OS
    user's). The CLI checks more (the socket's owner: aiwallet.engine.listener)."""
    try:
        proc = psutil.Process(int(info["pid"]))
        if hasattr(os, "getuid") and proc.uids().real != os.getuid():
            return False
        return abs(proc.create_time() - float(info["process_started"])) <= 1.0
    except (KeyError, TypeError, ValueError, psutil.Error):
        return False


@dataclass(frozen=True, slots=True)
class ConnectAnswer:
    id: str
    status: str  # pending | approved | denied | expired | cancelled
    body: dict[str, Any]

    poll_secret: str | None = None  # from the 202 answer; only the asker has it

    @property
    def key(self) -> str | None:
        key = self.body.get("key")
        return key if isinstance(key, str) else None


class WalletClient:
    """One wallet at ``url``; ``key`` is this app's key once it has one."""

    def __init__(self, url: str, key: str | None = None, *, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.key = key
        self._http = httpx.Client(base_url=self.url, timeout=timeout_s, trust_env=False)

    def close(self) -> None:
        self._http.close()

    # -- plumbing ---------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        path: str,
        *,
        params: dict[str, Any] | None = None,
        body: dict[str, Any] | None = None,
        timeout_s: float | None = None,
        auth: bool = True,
        bearer: str | None = None,
    ) -> Any:
        token = bearer or (self.key if auth else None)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            resp = self._http.request(
                method,
                path,
                params=params,
                json=body,
                headers=headers,
                timeout=timeout_s if timeout_s is not None else httpx.USE_CLIENT_DEFAULT,
            )
        except httpx.TransportError:
            raise WalletUnavailable() from None
        except RuntimeError:  # this client was closed (its session ended)
            raise WalletUnavailable("this notebook's session with the wallet ended") from None
        if resp.status_code >= 400:
            raise _refusal(resp)
        return resp.json()

    def healthy(self) -> bool:
        try:
            return bool(self._call("GET", "/healthz", auth=False, timeout_s=3.0).get("ok"))
        except (WalletUnavailable, WalletRefused, ValueError):
            return False

    # -- connect ----------------------------------------------------------------------------
    def ask(
        self,
        name: str,
        *,
        purpose: str | None,
        models: list[str] | None,
        budget: str | None,
        lifetime_s: int | None,
    ) -> ConnectAnswer:
        body: dict[str, Any] = {"app_name": name, "purpose": purpose, "budget": budget}
        if models:
            body["models"] = list(models)
        if lifetime_s is not None:
            body["lifetime_s"] = lifetime_s
        out = self._call("POST", "/wallet/v1/connect", body=body, auth=False)
        secret = out.get("poll_secret")
        return ConnectAnswer(
            str(out["id"]), str(out["status"]), out, secret if isinstance(secret, str) else None
        )

    def answer(self, asked: ConnectAnswer, wait_s: float) -> ConnectAnswer:
        """The answer to ``asked`` (long-polled with its poll secret)."""
        out = self._call(
            "GET",
            f"/wallet/v1/connect/{asked.id}",
            params={"wait": wait_s},
            timeout_s=wait_s + 10.0,
            auth=False,
            bearer=asked.poll_secret,
        )
        return ConnectAnswer(str(out["id"]), str(out["status"]), out, asked.poll_secret)

    # -- the app itself ---------------------------------------------------------------------
    def me(self, series: int = 0) -> dict[str, Any]:
        params = {"series": series} if series else None
        out: dict[str, Any] = self._call("GET", "/wallet/v1/me", params=params)
        return out

    def requests_page(
        self,
        after: str | None,
        *,
        limit: int = 500,
        wait_s: float = 0.0,
        settling: list[str] | None = None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {"limit": limit}
        if after:
            params["after"] = after
        if wait_s:
            params["wait"] = wait_s
        if settling:
            params["settling"] = ",".join(settling[:16])
        out: dict[str, Any] = self._call(
            "GET", "/wallet/v1/me/requests", params=params, timeout_s=wait_s + 15.0
        )
        return out

    def requests_since(self, after: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Every request of this app after ``after``, page by page, and what the last page
        said is in flight."""
        rows: list[dict[str, Any]] = []
        cursor: str | None = after
        while True:
            page = self.requests_page(cursor)
            rows += page["requests"]
            cursor = page["next"]
            if not page["more"]:
                return rows, list(page["in_flight"])


def _refusal(resp: httpx.Response) -> WalletRefused:
    code, message = "http_error", f"HTTP {resp.status_code}"
    try:
        err = resp.json()["error"]
        code = str(err.get("code") or code)
        message = str(err.get("message") or message)
    except (ValueError, KeyError, TypeError, AttributeError):
        pass
    return WalletRefused(resp.status_code, code, message)


def find_wallet(explicit_url: str | None = None, home: str | None = None) -> WalletClient:
    """A client for the running wallet (``explicit_url``, else the data dir's engine);
    :class:`WalletUnavailable` when none answers."""
    url = explicit_url or os.environ.get("AIWALLET_URL") or engine_url(data_dir(home))
    if url is None:
        raise WalletUnavailable()
    client = WalletClient(url)
    if not client.healthy():
        client.close()
        raise WalletUnavailable()
    return client
