"""A fake OpenRouter on loopback: inference with usage.cost, keys, credits and models
(server.py), and the sign-in side (auth.py)."""
