"""The Pareto set: the points no other point beats on every objective.

Point a dominates point b when a is at least as good as b on every objective and strictly better on
one ("good" per the objective's direction). The Pareto set is the points no point dominates.
Points missing a value of some objective (a failed build, a metric the build lacks) are neither in
the set nor dominate anything. Points with equal values on every objective do not dominate each
other: all of them are in the set or none.
"""

from __future__ import annotations

from collections.abc import Sequence


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether a dominates b; both oriented so that higher is better."""
    return all(x >= y for x, y in zip(a, b)) and any(x > y for x, y in zip(a, b))


def pareto_mask(values: Sequence[Sequence[float | None]], signs: Sequence[float]) -> list[bool]:
    """values[i][j]: point i's value of objective j (None: missing); signs[j]: +1 to maximize
    objective j, -1 to minimize it. Returns whether each point is in the Pareto set."""
    oriented = [
        None if any(v is None for v in row) else [s * float(v) for s, v in zip(signs, row)]  # type: ignore[arg-type]
        for row in values
    ]
    complete = [row for row in oriented if row is not None]
    return [row is not None and not any(dominates(other, row) for other in complete) for row in oriented]
