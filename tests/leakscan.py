"""Leak scan: a pytest plugin that fails the session if a provider key landed in a file.

Registered from ``tests/conftest.py`` (``pytest_plugins = ["leakscan"]``). When the session
ends it scans, byte for byte (no decoding, so SQLite pages, ``-wal``/``-journal`` files,
logs, audit exports, sealed vaults and recorded responses are all covered):

- every file under the session's base temp dir (``tmp_path_factory.getbasetemp()``): every
  test's data dirs, databases, logs and whatever else tests wrote;
- every file or directory a test registered with :func:`register_path`;
- every byte an in-process fake upstream (any fixture yielding a ``FakeUpstream``) wrote back
  as a streamed response (its record is teed as it grows, because tests reset it between
  each other); the *requests* it received are not scanned: they carry the provider key by
  design, that is where the key goes. Fakes run as subprocesses are not reached. Left out:
  the records of a fake scripted to echo the key (``Script(echo_key=...)``, its record's
  ``echoes_key``): that fake writes the key on purpose, for the engine to scrub;
- every response an httpx client in this process received (which covers the openai and
  anthropic SDKs, both built on httpx): its header lines and its body bytes as they were
  read, scanned as they stream through (a tail of a key's length is kept per response, never
  the body). Left out: a response from an in-process fake upstream's own port that says
  ``x-fake-echoes-key`` (a test talking to an echoing fake directly); the engine never
  passes that header on, and its port is never a fake's, so nothing it sends is left out;
  and a fake's ``GET /_fake/served`` (marked ``x-fake-record``: the requests it received,
  which carry the key by design, as above; the engine has no such route);

for every provider key the tests configure:

- every ``"sk-..."`` string literal of 16+ characters in the test sources (``tests/**.py``),
  which covers ``fakeupstream.OPENAI_KEY`` / ``ANTHROPIC_KEY`` and the keys of the vault, CLI
  and leak tests; minus :data:`NOT_PROVIDER_KEYS` (strings tests send *as app keys* to be
  refused; they are never stored as a provider key);
- :data:`EXTRA_KEYS`, keys built by expressions rather than written as one literal;
- whatever a test passes to :func:`register_key` (in this process).

No test stores a provider key in a plaintext place on purpose (checked when this was written:
the leak and vault tests assert the opposite), so no test's key is left out.

Excluded by design: the tests' stand-in for the OS keyring, ``<tmp>/os-keyring/keyring.json``
(``tests/keyring_backend.py``): storing the key there in plaintext is its whole job, as the
real OS keyring holds it (encrypted by the OS, out of reach of this scan). Nothing else is
excluded.

On a hit the session's exit status becomes "tests failed" and each hit is reported as file,
byte offset and a hint of the key (its first characters and length), never the key itself.
``AIWALLET_LEAKSCAN=0`` switches the scan off (for debugging a run, never in CI).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

TESTS_DIR = Path(__file__).resolve().parent
KEY_LITERAL = re.compile(r"""["'](sk-[A-Za-z0-9_\-]{13,})["']""")
# Strings tests send to the engine as (wrong) app keys: refused, never stored as provider keys.
NOT_PROVIDER_KEYS = frozenset({"sk-not-a-wallet-key", "sk-ant-not-a-wallet-key"})
# Provider keys built by an expression in a test (tests/gui/test_gui_pages.py).
EXTRA_KEYS = frozenset({"sk-sealed-" + "k" * 30})
CHUNK = 8 * 1024 * 1024

_registered_keys: set[str] = set()
_registered_paths: list[Path] = []
_recorded: list[Any] = []  # fakeupstream Served records (their raw_out grows while streaming)
_fake_ports: set[int] = set()  # the in-process fakes' ports (their echo answers are exempt)
_received_hits: list[Hit] = []
_received = {"responses": 0, "bytes": 0}
_source_keys: set[str] | None = None
_STASH_HITS = pytest.StashKey[list["Hit"]]()
_STASH_STATS = pytest.StashKey["Stats"]()


@dataclass(frozen=True)
class Hit:
    where: str  # a file path, or "fake upstream response <path> #n"
    offset: int
    key: str

    def __str__(self) -> str:
        return f"{self.where} at byte {self.offset}: provider key {hint(self.key)}"


def hint(key: str) -> str:
    """Enough to tell keys apart, too little to use one."""
    return f"{key[:7]}… ({len(key)} chars)"


def register_key(key: str) -> None:
    """A provider key a test configured that the source scan cannot see."""
    _registered_keys.add(key)


def register_path(path: str | os.PathLike[str]) -> None:
    """A file or directory outside the base temp dir that must hold no provider key."""
    _registered_paths.append(Path(path))


def keys_in_sources(root: Path = TESTS_DIR) -> set[str]:
    found: set[str] = set()
    for src in sorted(root.rglob("*.py")):
        found.update(KEY_LITERAL.findall(src.read_text(encoding="utf-8", errors="replace")))
    return found - NOT_PROVIDER_KEYS


def provider_keys() -> set[str]:
    global _source_keys
    if _source_keys is None:  # the sources do not change during a session
        _source_keys = keys_in_sources()
    return _source_keys | EXTRA_KEYS | _registered_keys


def is_excluded(path: Path) -> bool:
    """The tests' OS keyring stand-in holds keys in plaintext by design (see module doc)."""
    return path.name == "keyring.json" and path.parent.name == "os-keyring"


def find_in_bytes(data: bytes, needles: Iterable[bytes]) -> Iterator[tuple[int, bytes]]:
    for needle in needles:
        start = data.find(needle)
        while start != -1:
            yield start, needle
            start = data.find(needle, start + 1)


def scan_file(path: Path, keys: Iterable[str]) -> list[Hit]:
    needles = {k.encode(): k for k in keys if k}
    if not needles:
        return []
    overlap = max(len(n) for n in needles) - 1
    hits: set[Hit] = set()
    try:
        with path.open("rb") as f:
            base, tail = 0, b""
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                window = tail + chunk
                for off, needle in find_in_bytes(window, needles):
                    hits.add(Hit(str(path), base - len(tail) + off, needles[needle]))
                base += len(chunk)
                tail = window[-overlap:] if overlap else b""
    except OSError:
        return []  # vanished or unreadable (a socket, a file being deleted): nothing to scan
    return sorted(hits, key=lambda h: (h.offset, h.key))


@dataclass
class Stats:
    files: int = 0
    size: int = 0


def scan_paths(roots: Iterable[Path], keys: Iterable[str], stats: Stats | None = None) -> list[Hit]:
    """Every regular file under ``roots`` (files or directories), minus the exclusions."""
    keys = sorted(set(keys))
    hits: list[Hit] = []
    seen: set[Path] = set()
    stats = stats if stats is not None else Stats()
    for root in roots:
        if not root.exists():
            continue
        files = [root] if root.is_file() else sorted(root.rglob("*"))
        for f in files:
            if f in seen or f.is_symlink() or not f.is_file() or is_excluded(f):
                continue
            seen.add(f)
            hits += scan_file(f, keys)
            stats.files += 1
            with contextlib.suppress(OSError):
                stats.size += f.stat().st_size
    return hits


def scan_recorded(keys: Iterable[str]) -> list[Hit]:
    needles = {k.encode(): k for k in keys if k}
    hits: list[Hit] = []
    for n, served in enumerate(_recorded):
        if getattr(served, "echoes_key", False):
            continue  # an echoing fake writes the key on purpose (see the module doc)
        data = bytes(getattr(served, "raw_out", b"") or b"")
        for off, needle in find_in_bytes(data, needles):
            where = f"fake upstream response {getattr(served, 'path', '?')} #{n}"
            hits.append(Hit(where, off, needles[needle]))
    return hits


class ReceivedScan:
    """One response a client received, scanned as its bytes go by: its header lines at once,
    its body chunk by chunk with the last ``longest key - 1`` bytes carried over, so a key cut
    across two chunks is found and memory stays bounded."""

    def __init__(self, where: str, keys: Iterable[str]) -> None:
        self.where = where
        self.needles = {k.encode(): k for k in keys if k}
        self.overlap = max((len(n) for n in self.needles), default=1) - 1
        self.base = 0
        self.tail = b""
        _received["responses"] += 1

    def headers(self, raw: Iterable[tuple[bytes, bytes]]) -> None:
        blob = b"".join(name + b": " + value + b"\r\n" for name, value in raw)
        for off, needle in find_in_bytes(blob, self.needles):
            _received_hits.append(Hit(f"{self.where} (headers)", off, self.needles[needle]))

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        _received["bytes"] += len(chunk)
        window = self.tail + chunk
        for off, needle in find_in_bytes(window, self.needles):
            if off + len(needle) > len(self.tail):  # not wholly in the tail: seen already
                _received_hits.append(
                    Hit(self.where, self.base - len(self.tail) + off, self.needles[needle])
                )
        self.base += len(chunk)
        self.tail = window[-self.overlap :] if self.overlap else b""


def received_scan(url: Any, headers: Any) -> ReceivedScan | None:
    """A scan for a response from ``url`` (None when it is an echoing fake's own answer)."""
    port = url.port
    if port in _fake_ports and headers.get("x-fake-echoes-key") == "1":
        return None
    if url.path == "/_fake/served" and headers.get("x-fake-record") == "1":
        return None  # a fake's record of the requests it received: they carry the key
    where = f"response from {url.scheme}://{url.host}:{port}{url.path}"
    scan = ReceivedScan(where, provider_keys())
    scan.headers(headers.raw)
    return scan


def _install_httpx_tap() -> None:
    """Wrap the body stream of every response httpx's own transports return."""
    try:
        import httpx
    except ImportError:  # pragma: no cover - httpx is a test dependency
        return
    if getattr(httpx.HTTPTransport.handle_request, "_leakscan", False):
        return

    class SyncTap(httpx.SyncByteStream):
        def __init__(self, inner: Any, scan: ReceivedScan) -> None:
            self.inner, self.scan = inner, scan

        def __iter__(self) -> Iterator[bytes]:
            for chunk in self.inner:
                self.scan.feed(chunk)
                yield chunk

        def close(self) -> None:
            self.inner.close()

    class AsyncTap(httpx.AsyncByteStream):
        def __init__(self, inner: Any, scan: ReceivedScan) -> None:
            self.inner, self.scan = inner, scan

        async def __aiter__(self) -> Any:
            async for chunk in self.inner:
                self.scan.feed(chunk)
                yield chunk

        async def aclose(self) -> None:
            await self.inner.aclose()

    sync_handle = httpx.HTTPTransport.handle_request
    async_handle = httpx.AsyncHTTPTransport.handle_async_request

    def handle_request(self: Any, request: Any) -> Any:
        response = sync_handle(self, request)
        scan = received_scan(request.url, response.headers)
        if scan is not None:
            response.stream = SyncTap(response.stream, scan)
        return response

    async def handle_async_request(self: Any, request: Any) -> Any:
        response = await async_handle(self, request)
        scan = received_scan(request.url, response.headers)
        if scan is not None:
            response.stream = AsyncTap(response.stream, scan)
        return response

    handle_request._leakscan = True  # type: ignore[attr-defined]
    httpx.HTTPTransport.handle_request = handle_request  # type: ignore[method-assign]
    httpx.AsyncHTTPTransport.handle_async_request = handle_async_request  # type: ignore[method-assign]


# -- hooks ----------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    if os.environ.get("AIWALLET_LEAKSCAN") != "0":
        _install_httpx_tap()


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef: Any, request: Any) -> Iterator[None]:
    """Tee every in-process fake upstream's record (any fixture that yields a
    ``FakeUpstream``), which tests reset between each other."""
    outcome = yield
    try:
        fake = outcome.get_result()
    except BaseException:
        return
    if type(fake).__name__ != "FakeUpstream":
        return
    if isinstance(getattr(fake, "port", None), int):
        _fake_ports.add(fake.port)
    record = getattr(fake, "record", None)
    add = getattr(record, "add", None)
    if record is None or add is None or getattr(add, "_leakscan", False):
        return

    def teed_add(served: Any) -> None:
        _recorded.append(served)
        add(served)

    teed_add._leakscan = True  # type: ignore[attr-defined]
    record.add = teed_add


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("AIWALLET_LEAKSCAN") == "0" or session.config.option.collectonly:
        return
    factory = getattr(session.config, "_tmp_path_factory", None)
    roots: list[Path] = []
    if factory is not None:
        with contextlib.suppress(OSError):
            roots.append(factory.getbasetemp())
    roots += _registered_paths
    keys = provider_keys()
    stats = Stats()
    hits = scan_paths(roots, keys, stats) + scan_recorded(keys) + list(_received_hits)
    session.config.stash[_STASH_HITS] = hits
    session.config.stash[_STASH_STATS] = stats
    if hits:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        if session.config.pluginmanager.get_plugin("terminalreporter") is None:
            for h in hits:
                print(f"leakscan: {h}", file=sys.stderr)


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    hits = config.stash.get(_STASH_HITS, None)
    if hits is None:
        return
    if not hits:
        stats = config.stash.get(_STASH_STATS, Stats())
        terminalreporter.write_line(
            f"leakscan: no provider key ({len(provider_keys())} known) in {stats.files} files "
            f"({stats.size / 1e6:.1f} MB), {len(_recorded)} fake upstream records or "
            f"{_received['responses']} responses received ({_received['bytes'] / 1e6:.1f} MB)"
        )
        return
    terminalreporter.section(
        "provider keys leaked into files or responses", sep="=", red=True, bold=True
    )
    for h in hits[:200]:
        terminalreporter.write_line(f"leakscan: {h}", red=True)
    if len(hits) > 200:
        terminalreporter.write_line(f"leakscan: … and {len(hits) - 200} more", red=True)
