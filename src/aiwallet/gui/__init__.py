"""The desktop app: main window, tray, consent prompts and spend charts.

It talks only to :class:`aiwallet.service.Wallet` (blocking calls run on a worker thread) and
to the engine's events (through :mod:`aiwallet.gui.bridge`); it never blocks the engine's
loop and the engine never touches a widget.
"""
