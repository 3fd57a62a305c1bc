"""Talking to upstream providers: adapters, health probes, balance look-ups."""
