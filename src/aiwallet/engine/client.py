"""Finding and poking a running engine from another process (the CLI)."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx

from aiwallet.domain.errors import WalletError
from aiwallet.paths import DataDir

log = logging.getLogger(__name__)


def engine_address(data_dir: DataDir) -> tuple[str, int] | None:
    try:
        info = json.loads(data_dir.engine_file.read_text())
        return str(info["host"]), int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def admin_call(
    data_dir: DataDir,
    method: str,
    path: str,
    timeout_s: float = 3.0,
    body: dict[str, Any] | None = None,
) -> Any:
    """Call the admin API of the engine running on ``data_dir``; None when none answers."""
    address = engine_address(data_dir)
    if address is None:
        return None
    try:
        token = data_dir.admin_token.read_text().strip()
    except OSError:
        return None
    host, port = address
    try:
        resp = httpx.request(
            method,
            f"http://{host}:{port}{path}",
            headers={"Authorization": f"Bearer {token}"},
            timeout=timeout_s,
            json=body,
        )
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = f"HTTP {resp.status_code}"
        raise WalletError(f"the running engine refused: {message}")
    return resp.json()


def require_engine(
    data_dir: DataDir, method: str, path: str, body: dict[str, Any] | None = None
) -> Any:
    """Like :func:`admin_call`, but a missing engine is an error the user can act on."""
    result = admin_call(data_dir, method, path, body=body)
    if result is None:
        raise WalletError(
            "no engine is running on this data dir; start it with 'aiwallet serve' "
            "(pending consent requests live in the running engine)"
        )
    return result


def notify_reload(data_dir: DataDir) -> bool:
    try:
        return admin_call(data_dir, "POST", "/admin/v1/reload") is not None
    except WalletError:
        return False
