"""A real kernel (ipykernel, driven by nbclient) runs docs/notebook-example.ipynb against a
real engine: it connects, is approved from the CLI, calls the openai SDK (plain and streamed)
and the anthropic SDK through the wallet; the per-cell lines equal the ledger to the
nano-dollar; a second run (a new kernel) does not ask again; a paused wallet and a revoked
grant are said plainly.

One module-scoped run of each kernel, shared by the assertions (a kernel start is seconds).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import httpx
import nbformat
import pytest
from nbclient import NotebookClient

import leakscan
from aiwallet.domain.money import parse_usd
from aiwallet.engine.client import AdminAuth
from aiwallet.notebook.grants import FILE_NAME
from engine.conftest import make_rig
from waiting import wait_until

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "notebook-example.ipynb"
TESTS = ROOT / "tests"
AIWALLET = Path(sys.executable).with_name("aiwallet")
LINE = re.compile(r"aiwallet · (\d+) calls? · ([\d,]+) → ([\d,]+) tokens · \$([\d.,]+) · (.+)")
CELL_TIMEOUT_S = 90
KERNEL = "aiwallet-tests"


class RecordingClient(NotebookClient):
    """nbclient, keeping every display message's text (an updated line shows only its last
    state in the notebook; the waiting state is seen here)."""

    seen: list[str]

    def process_message(self, msg, cell, cell_index):
        text = msg.get("content", {}).get("data", {}).get("text/plain")
        if text:
            self.seen.append(text)
        return super().process_message(msg, cell, cell_index)


@dataclass
class Run:
    nb: nbformat.NotebookNode
    seen: list[str]
    extra: dict[str, list] = field(default_factory=dict)
    seconds: float = 0.0
    asked: int = 0


def _texts(cell) -> str:
    out = []
    for o in cell.get("outputs", []):
        if o.get("output_type") == "stream":
            out.append(o["text"])
        elif "data" in o:
            out.append(o["data"].get("text/plain", ""))
        elif o.get("output_type") == "error":
            out.append("TRACEBACK " + o.get("ename", "") + " " + "\n".join(o.get("traceback", [])))
    return "\n".join(out)


def _code_cells(nb) -> list:
    return [c for c in nb.cells if c.cell_type == "code"]


@pytest.fixture(scope="module")
def notebook_rig(tmp_path_factory, fake):
    mp = pytest.MonkeyPatch()
    base = tmp_path_factory.mktemp("notebook")
    mp.setenv("AIWALLET_HOME", str(base / "wallet"))
    mp.delenv("AIWALLET_DATABASE_URL", raising=False)
    mp.setenv("PYTHON_KEYRING_BACKEND", "keyring_backend.TestFileKeyring")
    mp.setenv("AIWALLET_TEST_KEYRING_FILE", str(base / "os-keyring" / "keyring.json"))
    mp.setenv("PYTHONPATH", os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]))
    for name in ("OPENAI_BASE_URL", "OPENAI_API_KEY", "ANTHROPIC_BASE_URL", "ANTHROPIC_API_KEY"):
        mp.delenv(name, raising=False)
    # the kernel is this interpreter (a kernelspec of its own: no system-wide "python3"
    # kernel can stand in), its connection files in the test's temp dir
    kernels = base / "jupyter" / "kernels" / KERNEL
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(
        json.dumps(
            {
                "argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                "display_name": "aiwallet tests",
                "language": "python",
            }
        )
    )
    mp.setenv("JUPYTER_PATH", str(base / "jupyter"))
    mp.setenv("JUPYTER_RUNTIME_DIR", str(base / "jupyter-runtime"))
    import keyring.core

    keyring.core._keyring_backend = None
    fake.reset()
    rig = make_rig(base, fake, consent_timeout_s=60)
    notebook = base / "work" / "analysis.ipynb"
    notebook.parent.mkdir()
    shutil.copy(EXAMPLE, notebook)
    mp.setenv("JPY_SESSION_NAME", str(notebook))  # what JupyterLab gives a notebook's kernel
    yield rig, notebook, base
    rig.engine.stop()
    rig.wallet.close()
    mp.undo()
    keyring.core._keyring_backend = None


def _pending(rig) -> list[dict]:
    resp = httpx.get(
        rig.url + "/admin/v1/consent/pending",
        auth=AdminAuth(rig.engine.admin_token),
        timeout=10,
    )
    return resp.json()


def _approve_from_cli(rig, done: dict) -> None:
    """What the wallet's owner does on a headless box: `aiwallet consent approve ID`."""
    try:
        (req,) = wait_until(lambda: _pending(rig), timeout_s=60, what="the notebook's request")
        done["request"] = req
        proc = subprocess.run(
            [str(AIWALLET), "--data-dir", str(rig.data_dir.root), "consent", "approve", req["id"]],
            capture_output=True,
            text=True,
            timeout=60,
        )
        done["cli"] = proc
    except BaseException as exc:  # the test thread reports it
        done["error"] = exc


def _run(rig, notebook: Path, *, approve: bool, extra: dict[str, list[str]] | None = None) -> Run:
    nb = nbformat.read(notebook, as_version=4)
    dump = nbformat.v4.new_code_cell(
        'import json\nprint("AIWALLET-CELLS " + json.dumps(aw.cells()))\n'
        'print("AIWALLET-TOTAL " + json.dumps(aw.totals().to_json()))'
    )
    nb.cells.append(dump)
    client = RecordingClient(
        nb,
        timeout=CELL_TIMEOUT_S,
        kernel_name=KERNEL,
        resources={"metadata": {"path": str(notebook.parent)}},
        record_timing=True,
    )
    client.seen = []
    done: dict = {}
    approver = None
    if approve:
        approver = threading.Thread(target=_approve_from_cli, args=(rig, done), daemon=True)
        approver.start()
    asked_before = len(rig.engine.consent.requests)
    t0 = time.monotonic()
    run = Run(nb, client.seen)
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        run.seconds = time.monotonic() - t0
        for name, steps in (extra or {}).items():
            cells = []
            for step in steps:
                if callable(step):
                    step()
                    continue
                cell = nbformat.v4.new_code_cell(step)
                cell.metadata["tags"] = ["raises-exception"]
                nb.cells.append(cell)
                client.execute_cell(cell, len(nb.cells) - 1)
                cells.append(cell)
            run.extra[name] = cells
    run.asked = len(rig.engine.consent.requests) - asked_before
    if approver is not None:
        approver.join(60)
        assert "error" not in done, done.get("error")
        assert done["cli"].returncode == 0, done["cli"].stderr
    nbformat.write(nb, notebook.with_name(f"executed-{int(time.time() * 1000)}.ipynb"))
    return run


def _dump(run: Run, tag: str):
    (cell,) = [c for c in _code_cells(run.nb) if "AIWALLET-CELLS" in c.source]
    text = _texts(cell)
    for line in text.splitlines():
        if line.startswith(tag + " "):
            return json.loads(line[len(tag) + 1 :])
    raise AssertionError(f"no {tag} in {text!r}")


@pytest.fixture(scope="module")
def first(notebook_rig):
    rig, notebook, _ = notebook_rig
    return _run(rig, notebook, approve=True)


@pytest.fixture(scope="module")
def second(notebook_rig, first):
    rig, notebook, _ = notebook_rig
    msgs = (
        'client.chat.completions.create(model="gpt-4o-mini", '
        'messages=[{"role": "user", "content": "hi"}])'
    )
    connect = _code_cells(first.nb)[1].source
    return _run(
        rig,
        notebook,
        approve=False,
        extra={
            "paused": [
                lambda: rig.wallet.set_paused(True),
                msgs,
                lambda: rig.wallet.set_paused(False),
            ],
            "off": ["%aiwallet off", msgs, "%aiwallet on", msgs],
            "revoked": [lambda: rig.wallet.revoke_app(_app_name(rig)), msgs, connect],
        },
    )


def _app_name(rig) -> str:
    (app,) = [a for a in rig.wallet.apps.list() if a.name.startswith("notebook-example")]
    return app.name


def _ledger(rig) -> dict[str, dict]:
    return {r["request_id"]: r for r in rig.ledger_rows() if r["kind"] == "spend"}


def _cell_lines(run: Run) -> list[tuple[int, re.Match]]:
    out = []
    for i, cell in enumerate(_code_cells(run.nb)):
        for line in _texts(cell).splitlines():
            m = LINE.fullmatch(line.strip())
            if m:
                out.append((i, m))
    return out


def test_connects_after_the_cli_approves_and_sets_the_sdk_variables(first, notebook_rig):
    _rig, notebook, base = notebook_rig
    assert first.asked == 1
    connect = _texts(_code_cells(first.nb)[1])
    waiting = [t for t in first.seen if "waiting for the wallet's owner" in t]
    assert waiting and "aiwallet consent approve cr_" in waiting[0]
    assert "connected as 'notebook-example'" in connect
    assert "remembered for this notebook" in connect
    assert "TRACEBACK" not in "\n".join(_texts(c) for c in _code_cells(first.nb))
    print(f"kernel start + notebook run: {first.seconds:.1f} s (asked, approved from the CLI)")
    # the budget widget was shown by connect, with its text fallback
    outputs = _code_cells(first.nb)[1].outputs
    widget = [o for o in outputs if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
    assert widget and "spent" in widget[0]["data"]["text/plain"]
    assert "spent" in widget[0]["data"]["text/html"]  # what nbconvert's HTML shows
    # the key: in the (stand-in) OS keyring, never in the data dir's note
    note = json.loads((base / "wallet" / FILE_NAME).read_text())
    assert list(note["grants"]) == [str(notebook)]
    store = json.loads((base / "os-keyring" / "keyring.json").read_text())
    (key,) = [v for k, v in store.items() if k.startswith("aiwallet-notebook/")]
    assert key.startswith("aw_app_") and key not in (base / "wallet" / FILE_NAME).read_text()
    leakscan.register_key(key)  # and in no other file the session wrote (the outputs included)


def test_each_cells_line_equals_the_ledger_to_the_nano_dollar(first, notebook_rig):
    rig, _, _ = notebook_rig
    ledger = _ledger(rig)
    log = {r["id"]: r for r in rig.requests()}
    cells = _dump(first, "AIWALLET-CELLS")
    lines = _cell_lines(first)
    code = _code_cells(first.nb)
    assert [i for i, _ in lines] == [2, 3, 4]  # plain, streamed, anthropic: one line each
    assert len(cells) == 3
    all_ids = []
    for (index, m), cell in zip(lines, cells, strict=True):
        ids = cell["request_ids"]
        all_ids += ids
        assert int(m.group(1)) == len(ids) == 1
        assert parse_usd(m.group(4)) == sum(ledger[i]["amount_nano"] for i in ids) > 0
        assert cell["cost_nano"] == parse_usd(m.group(4))
        rows = [log[i] for i in ids]
        tin = sum(
            r["input_tokens"] + r["cache_read_tokens"] + r["cache_write_tokens"] for r in rows
        )
        assert int(m.group(2).replace(",", "")) == tin
        assert int(m.group(3).replace(",", "")) == sum(r["output_tokens"] for r in rows)
        assert m.group(5) == ", ".join(sorted({r["model"] for r in rows}))
        # independently: the wallet stamped these requests while this cell ran
        timing = code[index].metadata["execution"]
        lo = datetime.fromisoformat(timing["iopub.execute_input"].replace("Z", "+00:00"))
        hi = datetime.fromisoformat(timing["shell.execute_reply"].replace("Z", "+00:00"))
        assert all(lo <= r["ts"] <= hi for r in rows)
    assert [log[i]["stream"] for i in all_ids] == [False, True, False]
    assert [log[i]["endpoint"] for i in all_ids][2] == "/v1/messages"
    # every call of the notebook's app is in exactly one line
    app_id = log[all_ids[0]]["app_id"]
    assert sorted(all_ids) == sorted(i for i, r in log.items() if r["app_id"] == app_id)
    total = _dump(first, "AIWALLET-TOTAL")
    assert total["cost_nano"] == sum(ledger[i]["amount_nano"] for i in all_ids)
    magic = _texts(code[-2])
    assert "3 calls · " in magic and total["line"] in magic


def test_the_budget_widget_cell_shows_the_spend(first, notebook_rig):
    rig, _, _ = notebook_rig
    (out,) = [o for o in _code_cells(first.nb)[5].outputs if "data" in o]
    assert "application/vnd.jupyter.widget-view+json" in out["data"]
    text = out["data"]["text/plain"]
    spent = sum(r["amount_nano"] for r in _ledger(rig).values())
    assert "of $1.00/day" in text and f"spent {_money(spent)}" in text


def _money(nano: int) -> str:
    from aiwallet.domain.money import format_usd

    return format_usd(nano, places=None)


def test_a_second_run_does_not_ask_again(second, notebook_rig):
    assert second.asked == 0
    connect = _texts(_code_cells(second.nb)[1])
    assert "connected as 'notebook-example'" in connect and "waiting" not in connect
    assert not any("waiting for the wallet's owner" in t for t in second.seen)
    assert [i for i, _ in _cell_lines(second)][:3] == [2, 3, 4]


def test_aiwallet_off_stops_the_lines(second):
    off, silent, on, loud = (_texts(c) for c in second.extra["off"])
    assert "cost lines off" in off and "cost lines on" in on
    assert "aiwallet ·" not in silent
    assert LINE.search(loud) and "1 call" in loud


def test_a_paused_wallet_and_a_revoked_grant_are_said_plainly(second, notebook_rig):
    _rig, _notebook, base = notebook_rig
    (paused,) = second.extra["paused"]
    text = _texts(paused)
    assert "aiwallet: the wallet is paused" in text and "Nothing was sent or billed" in text
    assert "TRACEBACK" not in text and "Traceback" not in text
    assert "aiwallet · 1 call refused (wallet_paused) · $0.00" in text
    call, reconnect = second.extra["revoked"]
    text = _texts(call)
    assert "aiwallet: the wallet's owner revoked this app's access" in text
    assert "aw.connect(...)" in text and "TRACEBACK" not in text
    assert text.count("revoked") == 1  # said once, not again by the cost line
    text = _texts(reconnect)
    assert "revoked this notebook's access" in text and "forgotten here" in text
    assert "TRACEBACK" not in text and text.count("revoked") == 1
    note = json.loads((base / "wallet" / FILE_NAME).read_text())
    assert note["grants"] == {}
    print(f"kernel start + notebook run: {second.seconds:.1f} s (remembered grant)")
