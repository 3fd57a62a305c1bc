"""Pure logic: money, pricing, usage, budget windows, audit hashing. No I/O, no Qt, no HTTP."""
