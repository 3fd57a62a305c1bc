"""The user's Solana wallet and the x402 client: keys, balances, payments, chain look-ups.

Imports only ``aiwallet.domain`` and ``aiwallet.vault`` of ours (and solana, solders, x402).
Functions documented as blocking make RPC calls through sync clients: the engine runs them
on its own threads, never on an event loop.
"""
