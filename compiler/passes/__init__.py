"""Passes: one module per pass, registered by name (see base.py for the contract and flows)."""

from compiler.passes import (
    admm,
    canonicalize,
    circulant,
    dp_sgd,
    fine_prune,
    lower,
    mia_quant,
    minmax,
    plan,
    privacy_admm,
    prune,
)
