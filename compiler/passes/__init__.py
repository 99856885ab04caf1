"""Passes: one module per pass, registered by name (see base.py for the contract and flows)."""
from compiler.passes import admm, canonicalize, lower  # noqa: F401  (importing registers them)
