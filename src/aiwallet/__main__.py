"""``python -m aiwallet``."""

from aiwallet.cli import main

main()
