"""A fake OpenRouter on loopback: inference with usage.cost, keys, credits, models, sign-in."""
