"""aiwallet: the user's own AI gateway and wallet."""

__version__ = "0.1.0"
