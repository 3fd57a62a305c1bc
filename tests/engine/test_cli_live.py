"""CLI changes reach a running engine at once; the admin API wants its token."""

import json
import stat

import httpx
import openai
import pytest

from aiwallet.engine.client import AdminAuth
from engine.conftest import cli

MSGS = [{"role": "user", "content": "hi"}]


def test_apps_add_use_budget_usage_revoke_pause(capsys, rig):
    code, out, _ = cli(
        capsys,
        rig,
        "apps",
        "add",
        "notebook",
        "--budget",
        "1/day",
        "--models",
        "gpt-4o-mini",
        "--json",
    )
    assert code == 0
    created = json.loads(out)
    key = created["key"]
    assert key.startswith("aw_app_") and created["models"] == ["gpt-4o-mini"]
    client = rig.openai(key)
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    code, out, _ = cli(capsys, rig, "usage", "--json")
    usage = json.loads(out)
    assert usage["total_usd"] == "0.000008400"  # 8 × 0.15 + 12 × 0.60 per 1M
    assert usage["rows"][0]["key"] == "notebook"
    code, out, _ = cli(capsys, rig, "apps", "show", "notebook", "--json")
    shown = json.loads(out)
    assert shown["spent_usd"] == "0.000008400" and shown["remaining_usd"] == "0.999991600"
    cli(capsys, rig, "budget", "set", "notebook", "0.000001/day")
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.status_code == 402
    cli(capsys, rig, "budget", "set", "notebook", "5/day")
    cli(capsys, rig, "pause")
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    assert err.value.status_code == 423
    cli(capsys, rig, "resume")
    client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    cli(capsys, rig, "apps", "revoke", "notebook")
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    code, out, _ = cli(capsys, rig, "apps", "list", "--json")
    assert json.loads(out)[0]["status"] == "revoked"


def test_admin_token_file_and_guard(rig):
    """The token file is 0600; the admin API takes signed requests only: no header, a wrong
    bearer and even the right token sent as a bearer are refused."""
    token_file = rig.data_dir.admin_token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text()
    assert httpx.get(rig.url + "/admin/v1/status").status_code == 401
    bad = httpx.get(rig.url + "/admin/v1/status", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401
    bearer = httpx.get(rig.url + "/admin/v1/status", headers={"Authorization": f"Bearer {token}"})
    assert bearer.status_code == 401
    assert bearer.json()["error"]["code"] == "admin_token_required"
    good = httpx.get(rig.url + "/admin/v1/status", auth=AdminAuth(token))
    assert good.status_code == 200 and good.json()["port"] == rig.engine.port


def test_engine_refuses_non_loopback_listen(rig):
    from aiwallet.domain.errors import WalletError

    with pytest.raises(WalletError, match="loopback"):
        rig.wallet.new_engine(host="0.0.0.0", port=0)
