"""Subcommand groups of the ``aiwallet`` command."""
