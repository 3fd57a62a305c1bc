"""The budget widget's state, from Python: it follows a real engine while calls run (spend,
paused, revoked), its figures are exact, and the helper's edges (no wallet, remembered grants,
what it imports) hold."""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import statistics
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import keyring.backends.null
import pytest

import aiwallet.notebook as aw
from aiwallet.domain.money import format_usd, parse_budget_spec
from aiwallet.engine.client import AdminAuth
from aiwallet.notebook import session as nbsession
from aiwallet.notebook.grants import FILE_NAME, GrantStore, Remembered
from aiwallet.notebook.status import CallsCost, budget_view, sum_requests
from aiwallet.notebook.wallet import START_HINT, WalletClient, data_dir
from aiwallet.notebook.widget import BudgetWidget, Feed
from aiwallet.paths import resolve_data_dir
from engine.conftest import make_rig
from waiting import wait_until

MSGS = [{"role": "user", "content": "hi"}]
PACKAGE = Path(aw.__file__).parent


def _spent(rig) -> int:
    return sum(r["amount_nano"] for r in rig.ledger_rows() if r["kind"] == "spend")


def test_the_widget_follows_the_wallet_while_calls_run(rig):
    key = rig.app("notebook", budget="1/day")
    feed = Feed(lambda: WalletClient(rig.url, key))
    widget = BudgetWidget()
    changes: list[tuple[float, str]] = []
    widget.observe(lambda ch: changes.append((time.monotonic(), ch["new"])), names="spent")
    feed.add(widget)
    try:
        wait_until(lambda: widget.state == "ok", what="the first reading")
        assert widget.spent == "$0.00" and widget.budget == "$1.00/day"
        assert widget.left == "$1.00" and widget.resets.startswith("in ")
        client = rig.openai(key)
        delays = []
        for _ in range(5):
            client.chat.completions.create(model="gpt-4o-mini", messages=MSGS)
            answered = time.monotonic()
            want = format_usd(_spent(rig), places=None)
            wait_until(lambda w=want: widget.spent == w, what=f"the widget at {want}")
            delays.append(next(t for t, v in changes if v == want) - answered)
        spent = _spent(rig)
        assert widget.left == format_usd(10**9 - spent, places=None)
        assert widget.used_fraction == pytest.approx(spent / 10**9)
        assert widget.burn.startswith("burning $")
        assert widget.curve and widget.curve[-1][1] == pytest.approx(spent / 10**9)
        # what the front end is sent: text and geometry, no integer past 2**53
        state = widget.get_state()
        assert state["spent"] == widget.spent and "spent_nano" not in state
        print(f"widget update after a call: median {statistics.median(delays) * 1000:.0f} ms")

        rig.wallet.set_paused(True)
        wait_until(lambda: widget.state == "paused", what="the paused state")
        assert "paused" in widget.message
        rig.wallet.set_paused(False)
        wait_until(lambda: widget.state == "ok", what="resumed")
        rig.wallet.revoke_app("notebook")
        wait_until(lambda: widget.state == "revoked", what="the revoked state")
        assert "revoked" in widget.message and "aw.connect" in widget.message
    finally:
        feed.stop()


def test_a_used_up_budget_shows_as_exhausted(rig):
    key = rig.app("notebook", budget="1/day")
    rig.openai(key).chat.completions.create(model="gpt-4o-mini", messages=MSGS)
    rig.wallet.set_budget(parse_budget_spec("0.000001/day"), "notebook")  # below what it spent
    view = budget_view(WalletClient(rig.url, key).me(series=24))
    assert view.state == "exhausted" and view.runout == "nothing left"
    assert view.left == "$0.00"


def test_budget_view_figures_are_exact():
    now = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
    start, end = now.replace(hour=0), now.replace(hour=0) + timedelta(days=1)
    edges = [start + timedelta(hours=h) for h in range(25)]
    spent = ["0.000000000"] * 24
    spent[11] = "0.400000001"  # 11:00-12:00
    me = {
        "app": "nb",
        "models": ["gpt-4o-mini"],
        "wallet_paused": False,
        "app_paused": False,
        "now": now.isoformat(),
        "budgets": [
            {
                "scope": "app",
                "budget": "1.00/day",
                "amount_nano": 10**9,
                "spent_usd": "0.400000001",
                "remaining_usd": "0.599999999",
                "window_start": start.isoformat(),
                "resets_at": end.isoformat(),
            }
        ],
        "series": {"edges": [e.isoformat() for e in edges], "spent_usd": spent},
        "last_hour": {"seconds": 3600, "spent_usd": "0.200000000"},
    }
    view = budget_view(me, now)
    assert (view.spent, view.left, view.budget) == ("$0.400000001", "$0.599999999", "$1.00/day")
    assert view.burn == "burning $0.20/h"
    # 0.599999999 left at 0.2/h: about 3 h, before the reset at midnight
    assert view.runout.startswith("runs out in 2 h 59 min")
    assert view.runout_fraction == pytest.approx(15 / 24, abs=0.001)
    assert view.now_fraction == pytest.approx(0.5)
    assert view.curve[-1] == [0.5, pytest.approx(0.400000001)]
    assert view.curve[0] == [0.0, 0.0] and len(view.curve) == 13
    me["last_hour"]["spent_usd"] = "0.010000000"
    assert budget_view(me, now).runout == "lasts until the reset at this rate"
    me["wallet_paused"] = True
    assert budget_view(me, now).state == "paused"
    assert "spent $0.400000001 of $1.00/day" in budget_view(me, now).text()


def test_a_cells_cost_is_summed_exactly():
    rows = [
        {"id": "a", "input_tokens": 100, "cache_read_tokens": 20, "cache_write_tokens": 0,
         "output_tokens": 7, "cost_usd": "0.000000001", "model": "gpt-4o-mini", "status": 200},
        {"id": "b", "input_tokens": 2040, "cache_read_tokens": 0, "cache_write_tokens": 0,
         "output_tokens": 505, "cost_usd": "0.004123499", "model": "gpt-4o-mini", "status": 200},
        {"id": "c", "input_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0,
         "output_tokens": 0, "cost_usd": "0.000000000", "model": None, "status": 402,
         "error_code": "budget_exceeded"},
    ]  # fmt: skip
    cost = sum_requests(rows)
    assert cost.cost_nano == 4_123_500 and cost.calls == 3
    assert cost.line() == "3 calls · 2,160 → 512 tokens · $0.0041235 · gpt-4o-mini · 1 refused"
    assert sum_requests(rows[2:]).line() == "1 call refused (budget_exceeded) · $0.00"
    assert CallsCost().calls == 0


def test_no_running_wallet_is_one_clear_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("AIWALLET_HOME", str(tmp_path / "nowhere"))
    assert aw.connect("nb") is None
    out = capsys.readouterr().out.strip()
    assert out == f"aiwallet: {START_HINT}"
    # a stale engine.json (the engine died) says the same
    (tmp_path / "nowhere").mkdir()
    (tmp_path / "nowhere" / "engine.json").write_text(json.dumps({"host": "127.0.0.1", "port": 9}))
    aw.connect("nb")
    assert capsys.readouterr().out.strip() == f"aiwallet: {START_HINT}"


def test_connect_says_expired_and_denied_plainly(rig, tmp_path, capsys, fake):
    """Outside a kernel the same states are printed: here nobody answers (the rig's prompts
    time out at once), then the owner denies."""
    home = str(rig.data_dir.root)
    aw.connect("nb", budget="1/day", home=home, notebook=str(tmp_path / "a.ipynb"))
    out = capsys.readouterr().out
    assert "waiting for the wallet's owner to allow 'nb'" in out
    assert "aiwallet consent approve cr_" in out
    assert "the request expired: nobody answered in time" in out
    assert nbsession.current() is None and "OPENAI_API_KEY" not in os.environ

    patient = make_rig(tmp_path / "patient", fake, consent_timeout_s=30)
    try:
        admin = AdminAuth(patient.engine.admin_token)

        def deny() -> None:
            (req,) = wait_until(
                lambda: httpx.get(patient.url + "/admin/v1/consent/pending", auth=admin).json(),
                what="the request",
            )
            httpx.post(patient.url + f"/admin/v1/consent/{req['id']}/deny", auth=admin)

        th = threading.Thread(target=deny)
        th.start()
        aw.connect("nb", home=str(patient.data_dir.root), notebook=str(tmp_path / "a.ipynb"))
        th.join(30)
        assert "denied: the wallet's owner said no" in capsys.readouterr().out
    finally:
        patient.engine.stop()
        patient.wallet.close()


def test_connecting_to_a_paused_wallet_says_so(rig, tmp_path, capsys):
    key = rig.app("nb", budget="1/day")
    store = GrantStore(rig.data_dir.root)
    asked = {"name": "nb", "budget": "1/day", "models": [], "purpose": None}
    nb = str(tmp_path / "a.ipynb")
    store.put(Remembered(nb, "nb", ["*"], "1.00/day", None, "", key[:12], asked), key)
    rig.wallet.set_paused(True)
    try:
        aw.connect("nb", home=str(rig.data_dir.root), notebook=nb)
        out = capsys.readouterr().out
        assert "connected as 'nb'" in out and "remembered for this notebook" in out
        assert "paused: calls are refused until the wallet's owner resumes it" in out
        assert os.environ["OPENAI_API_KEY"] == key
    finally:
        aw.disconnect()
        rig.wallet.set_paused(False)
    assert "OPENAI_API_KEY" not in os.environ and store.get(nb) is None
    assert "forgot this notebook's grant" in capsys.readouterr().out


def test_data_dir_is_found_like_the_cli_finds_it(tmp_path, monkeypatch):
    assert data_dir() == resolve_data_dir().root
    assert data_dir(tmp_path / "x") == resolve_data_dir(tmp_path / "x").root
    monkeypatch.delenv("AIWALLET_HOME")
    assert data_dir() == resolve_data_dir().root


def test_remembered_grants_keep_the_key_out_of_the_data_dir(tmp_path):
    store = GrantStore(tmp_path)
    meta = Remembered(
        "/nb/a.ipynb", "nb", ["*"], "1.00/day", None, "2026-12-01T00:00:00+00:00", "aw_app_abcd",
        {"name": "nb"},
    )  # fmt: skip
    key = "aw_app_" + "k" * 40
    assert store.put(meta, key)
    assert store.get("/nb/a.ipynb") == (meta, key)
    text = (tmp_path / FILE_NAME).read_text()
    assert key not in text and "/nb/a.ipynb" in text
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o077 == 0
    assert store.forget("/nb/a.ipynb") and store.get("/nb/a.ipynb") is None
    assert not store.forget("/nb/a.ipynb")
    # no secure keyring: nothing is remembered, nothing is written
    plain = GrantStore(tmp_path / "plain", backend=keyring.backends.null.Keyring())
    assert not plain.can_remember and not plain.put(meta, key)
    assert not (tmp_path / "plain" / FILE_NAME).exists()
    assert not meta.expired()
    assert dataclasses.replace(meta, expires_at="2026-01-01T00:00:00+00:00").expired()


def test_the_notebook_helper_imports_only_domain_of_ours():
    """...and the keyring rule it shares with the vault (a leaf module: keyring only)."""
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name == "aiwallet" or name.startswith("aiwallet."):
                    assert name == "aiwallet.keyringrules" or name.startswith(
                        ("aiwallet.domain", "aiwallet.notebook")
                    ), (
                        path.name,
                        name,
                    )


def test_session_hooks_leave_no_state_behind():
    """Outside IPython the helper prints and keeps no hooks (and disconnect is safe)."""
    assert nbsession.current() is None
    aw.disconnect(notebook="/nowhere.ipynb")
    assert aw.cells() == [] and aw.totals().calls == 0


def test_feed_threads_stop(rig):
    key = rig.app("notebook")
    feed = Feed(lambda: WalletClient(rig.url, key), poll_s=0.5)
    widget = BudgetWidget()
    feed.add(widget)
    wait_until(lambda: widget.state == "ok", what="a reading")
    feed.stop()  # the thread leaves at its next turn (at most one long-poll later)
    thread = feed._thread
    assert thread is not None
    thread.join(10)
    assert not thread.is_alive()


class _Handle:
    def __init__(self, shown: list) -> None:
        self.shown = shown

    def update(self, obj) -> None:
        self.shown.append(obj.text)


def test_a_cut_stream_is_counted_as_the_ledger_settled_it(rig):
    """A cell breaks off a slow stream: the line counts it once the wallet has settled it (at
    once, or rewritten when the follow-up sees it), equal to the ledger."""
    from aiwallet.notebook.cells import CellMeter
    from fakeupstream.script import Script

    key = rig.app("notebook", budget="1/day")
    shown: list[str] = []

    def show(line):
        shown.append(line.text)
        return _Handle(shown)

    meter = CellMeter(client_factory=lambda: WalletClient(rig.url, key), show=show)
    rig.fake.script(Script(event_delay_s=0.3))
    meter.pre_run_cell()
    stream = rig.openai(key).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True
    )
    next(iter(stream))
    stream.close()  # the cell leaves after the first chunk
    meter.post_run_cell()
    final = wait_until(
        lambda: shown and "still running" not in shown[-1] and shown[-1], what="the settled line"
    )
    (row,) = [r for r in rig.ledger_rows() if r["kind"] == "spend"]
    (logged,) = rig.requests()
    assert logged["status"] == 499 and logged["token_source"] == "estimated"
    assert final.startswith("1 call · ")
    assert format_usd(row["amount_nano"], places=None) in final
    (cell,) = meter.cells
    assert cell.cost.cost_nano == row["amount_nano"] and cell.cost.still_running == 0

    # a stream the cell leaves open: the line says so, and is rewritten once it is settled
    shown.clear()
    rig.fake.script(Script(event_delay_s=0.3))
    meter.pre_run_cell()
    stream = rig.openai(key).chat.completions.create(
        model="gpt-4o-mini", messages=MSGS, stream=True
    )
    next(iter(stream))
    meter.post_run_cell()
    assert len(shown) == 1 and shown[0].endswith("· 1 still running")
    stream.close()  # later, the notebook lets go of it
    final = wait_until(
        lambda: len(shown) > 1 and "still running" not in shown[-1] and shown[-1],
        what="the line rewritten",
    )
    second = [r for r in rig.ledger_rows() if r["kind"] == "spend"][1]
    assert format_usd(second["amount_nano"], places=None) in final and final.startswith("1 call")
    assert meter.cells[1].cost.cost_nano == second["amount_nano"]


def test_every_plain_refusal_is_a_code_of_the_engines_table():
    """The notebook's plain lines name codes the engine really answers with (a renamed code
    would fall back to a traceback)."""
    from aiwallet.engine.errors import CODES
    from aiwallet.notebook.session import PLAIN

    assert set(PLAIN) <= set(CODES)
    assert {"consent_denied", "expensive_request_denied", "too_many_pending"} <= set(PLAIN)
