"""A fake upstream that speaks OpenAI's and Anthropic's wire formats exactly, over loopback.

Start it in a thread (``FakeUpstream().start_in_thread()``) or as a process
(``python -m fakeupstream --port 0`` prints its port). Script faults with :class:`Script`
(globally, for the next N requests, or per request with an ``x-fake-script`` JSON header) and
read back what it served in :attr:`FakeUpstream.served`.

Token counts are a pure function of the request (see :mod:`fakeupstream.tokens`), so tests
can predict them; with ``Script(hostile=True)`` they are the largest a real provider could bill
for that request (see :mod:`fakeupstream.hostile`).
"""

from fakeupstream.script import Script, Served
from fakeupstream.server import ANTHROPIC_KEY, OPENAI_KEY, FakeUpstream

__all__ = ["ANTHROPIC_KEY", "OPENAI_KEY", "FakeUpstream", "Script", "Served"]
