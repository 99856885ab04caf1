"""TOML values as strict JSON: TOML has inf and nan, JSON has neither. A recipe written into
report.json (and read back by the adaptive audit) goes through these two functions."""

from __future__ import annotations

import math

NON_FINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


def to_json(recipe: dict) -> dict:
    """The recipe with TOML's inf and nan as the strings "inf", "-inf", "nan"."""

    def safe(v):
        if isinstance(v, dict):
            return {k: safe(x) for k, x in v.items()}
        if isinstance(v, list):
            return [safe(x) for x in v]
        if isinstance(v, float) and not math.isfinite(v):
            return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
        return v

    return safe(recipe)


def from_json(recipe: dict) -> dict:
    """The recipe `to_json` wrote (no recipe option takes the strings "inf" or "nan")."""

    def back(v):
        if isinstance(v, dict):
            return {k: back(x) for k, x in v.items()}
        if isinstance(v, list):
            return [back(x) for x in v]
        return NON_FINITE.get(v, v) if isinstance(v, str) else v

    return back(recipe)
