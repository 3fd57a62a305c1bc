"""The notebook tests use the engine tests' rig (a real engine in front of the fake upstream)."""

from engine.conftest import rig  # noqa: F401  (the fixture)
