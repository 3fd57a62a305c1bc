"""A real offline Solana + x402 test kit (filled in below)."""
