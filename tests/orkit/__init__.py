"""Fakes of OpenRouter's own API on loopback (its sign-in side: :mod:`orkit.auth`)."""
