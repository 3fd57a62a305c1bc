"""The chain kit's fixture (a fresh LiteSVM chain, facilitator and router per test)."""

from chainkit.fixtures import chain

__all__ = ["chain"]
