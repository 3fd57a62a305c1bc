"""aiwallet in Jupyter: connect from a cell, see the budget live, and the cost of every cell.

    import aiwallet.notebook as aw          # or: %load_ext aiwallet
    aw.connect("my-analysis", budget="1/day", models=["gpt-4o-mini"], purpose="...")
    aw.budget()                             # the budget widget (text where widgets cannot run)
    %aiwallet                               # this session's totals; %aiwallet off / on

The helper talks to a running wallet over HTTP only (see ``wallet.py``) and imports nothing of
aiwallet but ``domain``.
"""

from __future__ import annotations

from aiwallet.notebook.session import (
    budget,
    cells,
    connect,
    current,
    disconnect,
    load_ipython_extension,
    magic,
    totals,
    unload_ipython_extension,
)

__all__ = [
    "budget",
    "cells",
    "connect",
    "current",
    "disconnect",
    "load_ipython_extension",
    "magic",
    "totals",
    "unload_ipython_extension",
]
