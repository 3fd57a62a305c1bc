"""Changes another wallet made to a shared PostgreSQL ledger, picked up by this engine.

Several wallets (data dirs) may share one PostgreSQL ledger, and with it the settings, apps,
providers and routes kept there. A change made through one wallet reaches its own engine at
once (the admin API's reload), but another wallet's engine would see it only at its next
reload: a pause would not stop it. Every such change is audited, so the engine looks at the
audit log's newest entry number every ``interval_s`` (one indexed read) and reloads when it
moved. Its own changes move it too, and cost one more reload each.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiwallet.engine.periodic import Periodic
from aiwallet.engine.state import EngineState

log = logging.getLogger(__name__)

INTERVAL_S = 2.0


class LedgerWatch(Periodic):
    what = "looking for changes made to the shared ledger"
    wait_first = True  # ``seen`` is set at start, before the engine's first reload

    def __init__(
        self,
        state: EngineState,
        reload: Callable[[], Awaitable[None]],
        interval_s: float = INTERVAL_S,
    ) -> None:
        super().__init__()
        self.state = state
        self.reload = reload
        self.interval_s = interval_s
        self.seen: int | None = None  # the audit log's head at the last look
        self.reloads = 0

    async def tick(self, poked: bool) -> None:
        seq = await self.state.db(self.state.port.audit_seq)
        if self.seen is not None and seq != self.seen:
            log.info("the shared ledger changed (audit entry %d): reloading", seq)
            await self.reload()
            self.reloads += 1
        self.seen = seq
