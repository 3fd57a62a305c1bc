"""Finding and poking a running engine from another process (the CLI)."""

from __future__ import annotations

import json
import logging

import httpx

from aiwallet.paths import DataDir

log = logging.getLogger(__name__)


def engine_address(data_dir: DataDir) -> tuple[str, int] | None:
    try:
        info = json.loads(data_dir.engine_file.read_text())
        return str(info["host"]), int(info["port"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def admin_call(data_dir: DataDir, method: str, path: str, timeout_s: float = 3.0) -> dict | None:  # type: ignore[type-arg]
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
        )
    except httpx.HTTPError:
        return None
    if resp.status_code != 200:
        log.warning("engine admin call %s answered %s", path, resp.status_code)
        return None
    result: dict = resp.json()  # type: ignore[type-arg]
    return result


def notify_reload(data_dir: DataDir) -> bool:
    return admin_call(data_dir, "POST", "/admin/v1/reload") is not None
