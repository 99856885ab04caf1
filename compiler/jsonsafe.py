"""TOML values as strict JSON: TOML has inf and nan, JSON has neither. A recipe written into
report.json (and read back by the adaptive audit) goes through these two functions."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def to_json(recipe: dict) -> dict:
    """The recipe with TOML's inf and nan as the strings "inf", "-inf", "nan"."""
    return _map_leaves(recipe, _encode)


def from_json(recipe: dict) -> dict:
    """The recipe `to_json` wrote (no recipe option takes the strings "inf" or "nan")."""
    return _map_leaves(recipe, lambda v: NON_FINITE.get(v, v) if isinstance(v, str) else v)


def _encode(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return v


def _map_leaves(v: Any, leaf: Callable[[Any], Any]) -> Any:
    if isinstance(v, dict):
        return {k: _map_leaves(x, leaf) for k, x in v.items()}
    if isinstance(v, list):
        return [_map_leaves(x, leaf) for x in v]
    return leaf(v)
