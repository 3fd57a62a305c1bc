"""The wallet's Solana side: its key, its balances, paying x402 offers and finding payments.

* :mod:`~aiwallet.payments.keys`: the wallet's Solana key (``SolanaKey``, vault entry name);
* :mod:`~aiwallet.payments.balances`: SOL and token balances over RPC (async);
* :mod:`~aiwallet.payments.x402pay`: read a 402's offer, choose, sign (blocking), read the
  receipt;
* :mod:`~aiwallet.payments.chainlookup`: did a signed payment land (async);
* :mod:`~aiwallet.payments.rpcfail`: RPC failures in a few words, naming the RPC by host only.

Imports only ``aiwallet.domain`` and ``aiwallet.vault`` of the wallet (DESIGN.md's parts
table), plus solana-py, solders and the x402 SDK. Blocking calls (solana-py's sync client, which
the x402 SDK signs with) are in functions that say so; the engine runs them in an executor.
"""
