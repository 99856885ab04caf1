"""The registry of engine kinds, and the typed plan every backend reads.

A planned integer graph (meta["planned"], written by the `plan` pass) carries on each node that
becomes an engine the annotation `engine` (a registered kind that computes the node's op) and
that engine's `plan_fields` (multipliers, p_co, delta_bits, ...). `check_plan` verifies all of
it; Graph.validate calls it for planned graphs, so a backend never meets a missing or
inconsistent plan and never falls back to a default.
"""

from __future__ import annotations

from compiler.hw.base import Engine, PlanError
from compiler.ir import Graph, IRError, Node

ENGINES: dict[str, Engine] = {}


# op -> how to pick among several engines that compute it (see compiler/passes/plan.py)
CHOOSERS: dict = {}


def register_choice(op: str, choose) -> None:
    """`choose(graph, node, planned: {kind: Planned}, budget, forced_kind | None) -> annotations`
    for an op that more than one engine computes."""
    CHOOSERS[op] = choose


def register(cls: type[Engine]) -> type[Engine]:
    if not cls.kind or cls.kind in ENGINES:
        raise ValueError(f"engine kind {cls.kind!r} missing or registered twice")
    ENGINES[cls.kind] = cls()
    return cls


def engine(kind: str) -> Engine:
    if kind not in ENGINES:
        raise PlanError(f"unknown engine {kind!r} (known: {', '.join(ENGINES)})")
    return ENGINES[kind]


def engines_for(op: str) -> list[Engine]:
    """The engines that compute `op`, the default first."""
    return sorted((e for e in ENGINES.values() if op in e.ops), key=lambda e: not e.default)


def engine_ops() -> set[str]:
    """Ops that become an engine instance."""
    return {op for e in ENGINES.values() for op in e.ops}


def planned_engine(node: Node) -> Engine:
    """The engine a planned node runs on (check_plan has verified it)."""
    return engine(node.annotations["engine"])


def plan_problems(graph: Graph) -> list[str]:
    """Every missing or inconsistent plan field, each naming its node."""
    problems = []
    ops = engine_ops()
    for node in graph.nodes:
        if node.op not in ops:
            continue
        kind = node.annotations.get("engine")
        runs = [e.kind for e in engines_for(node.op)]
        if kind not in runs:
            problems.append(
                f"node {node.name!r} ({node.op}): plan names engine {kind!r}; a {node.op} runs on {' or '.join(runs)}"
            )
            continue
        eng = ENGINES[kind]
        bad = [f"{key} {why}" for key, check in eng.plan_fields.items() if (why := check(node.annotations.get(key)))]
        if not bad and (why := eng.check_plan(graph, node)):
            bad.append(why)
        problems += [f"node {node.name!r} ({kind} engine): plan field {b}" for b in bad]
    return problems


def check_plan(graph: Graph) -> None:
    """IRError listing every plan problem of a planned graph (registered with compiler.ir)."""
    if not graph.meta.get("planned"):
        return
    problems = plan_problems(graph)
    if problems:
        raise IRError("inconsistent hardware plan (rerun the plan pass): " + "; ".join(problems))


def require_plan(graph: Graph) -> None:
    """For backends: the graph must be integer and planned, and its plan sound."""
    if not graph.is_integer:
        raise PlanError("the graph is not an integer graph: run lower, then plan")
    if not graph.meta.get("planned"):
        raise PlanError("the integer graph has no hardware plan: run the plan pass after lower")
    check_plan(graph)
