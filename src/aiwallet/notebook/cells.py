"""The cost of every cell, from the wallet's ledger.

A cell's calls are this app's requests that the wallet stamped between the cell's start and
its end (``pre_run_cell`` / ``post_run_cell``; the wallet and the kernel read the same
clock). After the cell the meter asks ``GET /wallet/v1/me/requests`` from the cell's start:
the wallet first waits for the settlements already under way, so every call whose answer the
cell saw is listed with the ledger's amount, and a call still out (a stream left open) is in
``in_flight``: the line says so and is rewritten once it is settled. Nothing is estimated on
the client: streamed and cut calls cost what the ledger says.
"""

from __future__ import annotations

import contextlib
import html
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiwallet.notebook.status import CallsCost, in_span, sum_requests
from aiwallet.notebook.wallet import WalletClient, WalletRefused, WalletUnavailable

FOLLOW_UP_S = 600.0  # how long a line waits for a call the cell left running


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass
class CellCost:
    execution_count: int | None
    started_us: int
    ended_us: int
    cost: CallsCost

    def to_json(self) -> dict[str, Any]:
        return {"execution_count": self.execution_count, **self.cost.to_json()}


class CostLine:
    """One cell's line, as text and as a quiet line of HTML."""

    def __init__(self, text: str) -> None:
        self.text = text

    def _repr_mimebundle_(self, **_: Any) -> dict[str, str]:
        return {
            "text/plain": f"aiwallet · {self.text}",
            "text/html": '<div class="aiwallet-cost" style="font: 12px var(--jp-code-font-family, '
            'monospace); color: var(--jp-ui-font-color2, #666); padding: 2px 0">'
            f"aiwallet · {html.escape(self.text)}</div>",
        }


def measure(client: WalletClient, lo_us: int, hi_us: int) -> tuple[CallsCost, list[str]]:
    """This app's requests started in ``[lo_us, hi_us)``, summed from the ledger, and the ids
    of those of them still in flight."""
    rows, in_flight = client.requests_since(str(lo_us))
    flying = [str(f["id"]) for f in in_flight if lo_us <= int(f["at"]) < hi_us]
    settled = in_span(rows, lo_us, hi_us)
    return sum_requests(settled, still_running=len(flying)), flying


@dataclass
class CellMeter:
    """``pre_run_cell`` / ``post_run_cell`` hooks that print each cell's cost."""

    client_factory: Callable[[], WalletClient | None]
    show: Callable[[CostLine], Any]  # displays a line; returns a handle with .update()
    on_refusal: Callable[[WalletRefused], None] = lambda _err: None
    enabled: bool = True
    cells: list[CellCost] = field(default_factory=list)
    _started: int | None = None
    _unavailable_said: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def pre_run_cell(self, info: Any = None) -> None:
        self._started = now_us()

    def post_run_cell(self, result: Any = None) -> None:
        started, self._started = self._started, None
        if started is None or not self.enabled:
            return
        ended = now_us()
        client = self.client_factory()
        if client is None:
            return
        try:
            cost, flying = measure(client, started, ended)
        except WalletUnavailable:
            if not self._unavailable_said:
                self._unavailable_said = True
                self.show(CostLine("the wallet stopped answering: this cell's cost is not known"))
            return
        except WalletRefused as err:
            self.enabled = False  # this key will not be answered again: stop asking
            self.on_refusal(err)
            return
        self._unavailable_said = False
        if cost.calls == 0 and not flying:
            return
        count = getattr(getattr(result, "info", None), "execution_count", None)
        if count is None:
            count = getattr(result, "execution_count", None)
        cell = CellCost(count, started, ended, cost)
        with self._lock:
            self.cells.append(cell)
        handle = self.show(CostLine(cost.line()))
        if flying:
            threading.Thread(
                target=self._follow_up,
                args=(cell, flying, handle),
                name="aiwallet-cell-follow-up",
                daemon=True,
            ).start()

    def _follow_up(self, cell: CellCost, flying: list[str], handle: Any) -> None:
        """Rewrite ``cell``'s line once the calls it left running are settled."""
        client = self.client_factory()  # httpx clients may be shared between threads
        if client is None:
            return
        deadline = time.monotonic() + FOLLOW_UP_S
        with contextlib.suppress(WalletUnavailable, WalletRefused):
            while flying and time.monotonic() < deadline:
                # holds while any of them is in flight (woken when one is logged)
                client.requests_page(str(now_us()), limit=1, wait_s=30.0, settling=flying)
                cost, flying = measure(client, cell.started_us, cell.ended_us)
                with self._lock:
                    cell.cost = cost
                if handle is not None:
                    handle.update(CostLine(cost.line()))

    def totals(self) -> CallsCost:
        """What the metered cells cost together."""
        with self._lock:
            cells = list(self.cells)
        ids: list[str] = []
        tin = tout = cost = refused = running = 0
        models: list[str] = []
        codes: list[str] = []
        for c in cells:
            ids += c.cost.request_ids
            tin += c.cost.input_tokens
            tout += c.cost.output_tokens
            cost += c.cost.cost_nano
            refused += c.cost.refused
            running += c.cost.still_running
            models += [m for m in c.cost.models if m not in models]
            codes += [r for r in c.cost.refusals if r not in codes]
        return CallsCost(tuple(ids), tin, tout, cost, tuple(models), refused, running, tuple(codes))
