"""Passes: one module per pass, registered by name (see base.py for the contract and flows)."""

from compiler.passes import admm, canonicalize, circulant, fine_prune, lower, minmax, plan, privacy_admm, prune
