"""A task on the engine's loop that runs every ``interval_s``, and sooner when poked (the
reconciler of payments, the keeper of per-app provider keys, the provider watch).

A poke during a run asks for another run right after it; a run that fails is logged and
tried again at the next; :meth:`stop` cancels the task and waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

log = logging.getLogger(__name__)


class Periodic:
    interval_s: float = 60.0
    wait_first = False  # True: the first run comes after the first interval (or poke)
    what = "a periodic task"  # for the log

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def poke(self) -> None:
        """Run again now."""
        self._wake.set()

    async def tick(self, poked: bool) -> None:  # pragma: no cover - each subclass has its own
        raise NotImplementedError

    async def _loop(self) -> None:
        poked = False
        if self.wait_first:
            poked = await self._wait()
        while True:
            self._wake.clear()  # before the run: a poke during it asks for another
            try:
                await self.tick(poked)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s failed; trying again later", self.what)
            poked = await self._wait()

    async def _wait(self) -> bool:
        """Until poked (True) or the interval passed (False)."""
        try:
            await asyncio.wait_for(self._wake.wait(), timeout=self.interval_s)
            return True
        except TimeoutError:
            return False
