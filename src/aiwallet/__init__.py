"""aiwallet: the user's own AI gateway and wallet."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def load_ipython_extension(ip: Any) -> None:
    """``%load_ext aiwallet``: the notebook helper (aiwallet.notebook), loaded on demand."""
    from aiwallet.notebook import load_ipython_extension as load

    load(ip)


def unload_ipython_extension(ip: Any) -> None:
    from aiwallet.notebook import unload_ipython_extension as unload

    unload(ip)
