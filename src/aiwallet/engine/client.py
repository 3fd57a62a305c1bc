"""Finding and poking a running engine from another process (the CLI).

Nothing is sent to the address in ``engine.json`` before the listener there is checked
(listener.py: the pid is alive, this user's, the process that wrote the record and a Python or
aiwallet program; the listening socket is this user's and open in that pid). Then each admin
request is two round trips: a challenge, whose proof shows the listener knows the admin token
(an impostor is found out here, having received only a random client nonce), and the request
signed for that one nonce (adminauth.py). The token itself never leaves the data dir.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any

import httpx

from aiwallet.domain.errors import WalletError
from aiwallet.engine import adminauth, listener
from aiwallet.paths import DataDir

log = logging.getLogger(__name__)

START_HINT = "start it with 'aiwallet serve' (pending consent requests live in the running engine)"


class ProofRefused(Exception):
    """The listener could not prove that it knows the admin token."""


class AdminAuth(httpx.Auth):
    """httpx authentication for the admin API: a challenge (its proof checked), then the
    request signed for its nonce. ``instance``, when given, is the engine.json instance the
    proof must name. One retry with a new challenge if the engine no longer knows the nonce
    (a flood of challenges may have pushed it out of the engine's bounded store)."""

    requires_response_body = True

    def __init__(self, token: str, instance: str | None = None) -> None:
        self.token, self.instance = token, instance

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        for attempt in range(2):
            client_nonce = adminauth.new_nonce()
            challenge = yield httpx.Request(
                "GET",
                request.url.copy_with(
                    raw_path=f"{adminauth.CHALLENGE_PATH}?client_nonce={client_nonce}".encode()
                ),
            )
            nonce = self._check(challenge, client_nonce)
            target = request.url.raw_path.decode("ascii")
            mac = adminauth.request_mac(self.token, nonce, request.method, target, request.content)
            request.headers["Authorization"] = adminauth.auth_header(nonce, mac)
            response = yield request
            if response.status_code != 401 or attempt:
                return
            response.read()
            if "nonce" not in response.text:
                return

    def _check(self, challenge: httpx.Response, client_nonce: str) -> str:
        try:
            info = challenge.json()
            nonce, proof, instance = str(info["nonce"]), str(info["proof"]), str(info["instance"])
        except (ValueError, KeyError, TypeError):
            raise ProofRefused(
                f"it answered the challenge with HTTP {challenge.status_code} and no proof"
            ) from None
        expected = adminauth.engine_proof(self.token, client_nonce, nonce, instance)
        if not adminauth.valid_nonce(nonce) or not adminauth.same(proof, expected):
            raise ProofRefused("it does not know the admin token")
        if self.instance is not None and instance != self.instance:
            raise ProofRefused("it is another engine than the one engine.json names")
        return nonce


@dataclass(frozen=True, slots=True)
class Reach:
    """What an admin call found: the engine's answer, or why no verified engine gave one
    (``suspicious``: something that is not this wallet's engine holds its address)."""

    answered: bool
    result: Any = None
    reason: str = ""
    suspicious: bool = False


def _no_engine(reason: str, *, suspicious: bool = False) -> Reach:
    return Reach(False, reason=reason, suspicious=suspicious)


def engine_address(data_dir: DataDir) -> tuple[str, int] | None:
    """The verified engine's address; None when no verified engine runs on ``data_dir``."""
    try:
        record = listener.read_record(data_dir.engine_file)
        if record is None:
            return None
        listener.verify(record)
    except listener.Refusal:
        return None
    return record.connect_host, record.port


def reach(
    data_dir: DataDir,
    method: str,
    path: str,
    timeout_s: float = 3.0,
    body: dict[str, Any] | None = None,
) -> Reach:
    """Call the admin API of the engine running on ``data_dir``, once it is verified. A
    refusal by the verified engine is a :class:`WalletError`."""
    try:
        record = listener.read_record(data_dir.engine_file)
        if record is None:
            return _no_engine("no engine.json")
        listener.verify(record)
    except listener.Refusal as refusal:
        if refusal.stale:
            return _no_engine(f"engine.json is stale: {refusal.reason}")
        return _no_engine(refusal.reason, suspicious=True)
    try:
        token = data_dir.admin_token.read_text().strip()
    except OSError:
        return _no_engine("the engine's admin token is missing", suspicious=True)
    host = f"[{record.connect_host}]" if ":" in record.connect_host else record.connect_host
    auth = AdminAuth(token, record.instance)
    try:
        with httpx.Client(timeout=timeout_s, trust_env=False) as client:
            url = f"http://{host}:{record.port}{path}"
            resp = client.request(method, url, json=body, auth=auth)
    except ProofRefused as err:
        where = f"{record.host}:{record.port}"
        return _no_engine(
            f"the listener on {where} is not this wallet's engine ({err}); it was sent nothing "
            "but a challenge",
            suspicious=True,
        )
    except httpx.HTTPError as err:
        return _no_engine(f"the engine did not answer ({type(err).__name__})")
    if resp.status_code != 200:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {resp.status_code}"
        raise WalletError(f"the running engine refused: {message}")
    try:
        return Reach(True, resp.json())
    except json.JSONDecodeError:
        raise WalletError("the running engine answered something that is not JSON") from None


def admin_call(
    data_dir: DataDir,
    method: str,
    path: str,
    timeout_s: float = 3.0,
    body: dict[str, Any] | None = None,
) -> Any:
    """Call the admin API of the verified engine running on ``data_dir``; None when none
    answers."""
    found = reach(data_dir, method, path, timeout_s, body)
    return found.result if found.answered else None


def require_engine(
    data_dir: DataDir, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """Like :func:`admin_call`, but a missing engine is an error the user can act on."""
    found = reach(data_dir, method, path, body=body)
    if not found.answered:
        raise WalletError(
            f"no verified engine is running on this data dir ({found.reason}); {START_HINT}"
        )
    return found.result


def notify_reload(data_dir: DataDir) -> bool:
    """Tell the verified engine on ``data_dir`` to reload; False when none answers (a
    listener that is not the engine is logged as a warning: the CLI shows it)."""
    try:
        found = reach(data_dir, "POST", "/admin/v1/reload")
    except WalletError as err:
        log.warning("the running engine did not reload: %s", err)
        return False
    if found.suspicious:
        log.warning(
            "the change is saved, but no verified engine was told about it (%s)", found.reason
        )
    return found.answered
