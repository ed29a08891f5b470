"""modelops control plane: the code that runs in the Function App (and the local platform)."""

__version__ = "0.1.0"
