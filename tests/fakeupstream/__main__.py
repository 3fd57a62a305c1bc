"""``python -m fakeupstream [--port N]``: run the fake in its own process; prints its port."""

import argparse
import asyncio
import contextlib
import sys

from fakeupstream.server import FakeUpstream


async def main(port: int) -> None:
    fake = FakeUpstream()
    await fake.start(port)
    print(fake.port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args()
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main(args.port))
    sys.exit(0)
