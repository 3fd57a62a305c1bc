"""pytest fixtures: ``from chainkit.fixtures import chain`` (or ``pytest_plugins =
["chainkit.fixtures"]``) in a test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chainkit import ChainKit


@pytest.fixture
def chain() -> Iterator[ChainKit]:
    """A fresh chain (LiteSVM), facilitator, router and fake upstream for one test."""
    with ChainKit() as kit:
        yield kit
