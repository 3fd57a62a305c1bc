"""What went wrong talking to a Solana RPC, said in a few words that never carry its URL.

RPC URLs often hold an API key (``https://host/?api-key=...``, ``https://host/v2/<key>``), and
the errors solana-py raises can quote them (an HTTP status error names the URL), so a failure
is described from its kind alone, with only :attr:`Network.rpc_host` named.

One trap: solders parses RPC answers in Rust, and some malformed error answers (a -32005
without its ``data``, for one) make it *panic*: ``pyo3_runtime.PanicException``, a
``BaseException``, not an ``Exception``. :func:`is_failure` counts it as an RPC failure, so a
hostile or broken RPC cannot crash the caller; everything else that is not an ``Exception``
(cancellation, KeyboardInterrupt) is not.
"""

from __future__ import annotations

import re

from aiwallet.domain.chains import Network

_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_MAX_MESSAGE = 100


def is_failure(exc: BaseException) -> bool:
    """An exception a failed RPC exchange raises (a solders panic included)."""
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def describe(exc: BaseException, net: Network, timeout_s: float | None = None) -> str:
    """A short reason for a screen or a log line; names the RPC by host only."""
    where = f"the Solana RPC at {net.rpc_host}"
    chain = _causes(exc)
    names = [type(e).__name__ for e in chain]
    if any(
        isinstance(e, TimeoutError) or "Timeout" in n for e, n in zip(chain, names, strict=True)
    ):
        limit = f" within {timeout_s:g} s" if timeout_s else " in time"
        return f"{where} did not answer{limit}"
    if "PanicException" in names:
        return f"{where} sent an answer this wallet cannot read"
    for e in chain:
        status = getattr(getattr(e, "response", None), "status_code", None)
        if isinstance(status, int):
            return f"{where} answered HTTP {status}"
    if any("Connect" in n for n in names):
        return f"could not reach {where}"
    if "RPCException" in names:
        rpc_err = chain[names.index("RPCException")]
        detail = getattr(rpc_err.args[0], "message", "") if rpc_err.args else ""
        return f"{where} answered an error: {clean(str(detail)) or 'no message'}"
    if any(n in ("RemoteProtocolError", "ReadError", "WriteError") for n in names):
        return f"{where} dropped the connection"
    return f"{where} failed ({names[0]})"


def clean(text: str, limit: int = _MAX_MESSAGE) -> str:
    """Untrusted text made safe to show: URLs out, control characters out, at most
    ``limit`` characters."""
    text = _URL.sub("<url>", text)
    text = "".join(c if c.isprintable() else " " for c in text).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _causes(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(out) < 10:
        out.append(seen)
        seen = seen.__cause__ or seen.__context__
    return out
